"""The object stores keep the ObjectStore contract, locally and on a real S3 server (moto)."""

from __future__ import annotations

import errno
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ConfigError, ObjectExistsError, ObjectNotFoundError, ObjectStoreError
from engine.ports import ObjectStore
from engine.settings import Settings
from storage.objects import (
    MIB,
    TEMP_PREFIX,
    LocalObjectStore,
    S3ObjectStore,
    open_object_store,
    validate_key,
)
from tests.s3_server import FaultyProxy, make_s3_store

# --- the contract, on both stores -------------------------------------------------------------


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    return request.getfixturevalue("s3_store")


@pytest.fixture(params=["local", "s3"])
def offline_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """A store whose every request would fail: what it rejects, it rejected before any I/O."""
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    return make_s3_store(f"http://127.0.0.1:{_closed_port()}", "any-bucket", max_attempts=1)


def _closed_port() -> int:
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_stores_implement_the_port(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_put_then_get_returns_the_same_bytes(store: ObjectStore) -> None:
    store.put("videos/syn_000001/frames/00000.jpg", b"\xff\xd8jpeg")
    store.put("empty", b"")
    assert store.get("videos/syn_000001/frames/00000.jpg") == b"\xff\xd8jpeg"
    assert store.get("empty") == b""


def test_put_overwrites_by_default(store: ObjectStore) -> None:
    store.put("a/b", b"old")
    store.put("a/b", b"new")
    assert store.get("a/b") == b"new"


def test_put_without_overwrite_refuses_and_keeps_the_old_object(store: ObjectStore) -> None:
    store.put("a/b", b"first", overwrite=False)
    with pytest.raises(ObjectExistsError, match="a/b"):
        store.put("a/b", b"second", overwrite=False)
    assert store.get("a/b") == b"first"


def test_put_file_and_get_file_round_trip(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(100_000))
    store.put_file("videos/v1/source.mp4", source)
    target = tmp_path / "downloads" / "nested" / "copy.bin"
    store.get_file("videos/v1/source.mp4", target)
    assert target.read_bytes() == source.read_bytes()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_put_file_without_overwrite_refuses(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"new")
    store.put("k", b"old")
    with pytest.raises(ObjectExistsError):
        store.put_file("k", source, overwrite=False)
    assert store.get("k") == b"old"


def test_keys_with_spaces_and_non_ascii_round_trip(store: ObjectStore) -> None:
    keys = ["exports/my video (1).mp4", "é/ü.png", "a+b=c&d"]
    for key in keys:
        store.put(key, key.encode())
    assert [store.get(key) for key in keys] == [key.encode() for key in keys]
    assert list(store.list()) == sorted(keys)


def test_put_file_of_a_missing_source_names_it(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectStoreError, match="source file .*does-not-exist"):
        store.put_file("k", tmp_path / "does-not-exist")
    assert not store.exists("k")


def test_missing_key_is_not_found(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError, match="nothing/here"):
        store.get("nothing/here")
    target = tmp_path / "target.bin"
    with pytest.raises(ObjectNotFoundError):
        store.get_file("nothing/here", target)
    assert not target.exists()
    assert not store.exists("nothing/here")


def test_exists_and_delete(store: ObjectStore) -> None:
    store.put("a/b/c", b"x")
    assert store.exists("a/b/c")
    assert not store.exists("a/b")  # a prefix of a key is not an object
    store.delete("a/b/c")
    assert not store.exists("a/b/c")
    store.delete("a/b/c")  # absent: not an error
    assert list(store.list()) == []


def test_list_is_lexicographic_and_filters_by_prefix(store: ObjectStore) -> None:
    keys = ["b", "a0", "a/b/c", "a.txt", "a-b", "a/a", "videos/syn_000001/x", "videos/syn_000002/y"]
    for key in keys:
        store.put(key, key.encode())
    assert list(store.list()) == sorted(keys)
    assert list(store.list("a/")) == ["a/a", "a/b/c"]
    assert list(store.list("a")) == ["a-b", "a.txt", "a/a", "a/b/c", "a0"]
    assert list(store.list("videos/syn_0")) == ["videos/syn_000001/x", "videos/syn_000002/y"]
    assert list(store.list("nothing/")) == []


def test_delete_prefix_removes_only_that_prefix(store: ObjectStore) -> None:
    for key in ["videos/v1/a", "videos/v1/b/c", "videos/v10/a", "other"]:
        store.put(key, b"x")
    assert store.delete_prefix("videos/v1/") == 2
    assert list(store.list()) == ["other", "videos/v10/a"]
    assert store.delete_prefix("nothing/") == 0


BAD_KEYS = [
    "",
    "/abs/path",
    "a//b",
    "a/",
    "a/../b",
    "../escape",
    "./a",
    "a\\b",
    "a\x00b",
    "a\nb",
    "x" * 1100,
    "a/" + "y" * 300,
    f"a/{TEMP_PREFIX}half-written",
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_bad_keys_are_rejected_before_any_io(
    offline_store: ObjectStore, key: str, tmp_path: Path
) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    for attempt in (
        lambda: offline_store.put(key, b"x"),
        lambda: offline_store.put_file(key, source),
        lambda: offline_store.get(key),
        lambda: offline_store.get_file(key, tmp_path / "out"),
        lambda: offline_store.exists(key),
        lambda: offline_store.delete(key),
    ):
        with pytest.raises(ObjectStoreError, match="invalid object key"):
            attempt()


@pytest.mark.parametrize("prefix", ["/a", "a//", "../", "a/../b/", "a\\b"])
def test_bad_prefixes_are_rejected(offline_store: ObjectStore, prefix: str) -> None:
    with pytest.raises(ObjectStoreError, match="invalid key prefix"):
        list(offline_store.list(prefix))
    with pytest.raises(ObjectStoreError, match="invalid key prefix"):
        offline_store.delete_prefix(prefix)


def test_validate_key_accepts_ordinary_keys() -> None:
    for key in ["a", "videos/syn_000001/frames/00000.jpg", ".hidden", "a/..b", "é/ü.png"]:
        assert validate_key(key) == key


# --- local: atomicity and OS errors -----------------------------------------------------------


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


@pytest.mark.parametrize(
    ("failing", "overwrite", "error", "expected"),
    [
        ("os.replace", True, errno.ENOSPC, "No space left on device.*free some disk"),
        ("os.link", False, errno.ENOSPC, "No space left on device.*free some disk"),
        ("os.fsync", True, errno.EIO, "Input/output error"),
        ("os.replace", True, errno.EACCES, "Permission denied.*check the permissions"),
    ],
)
def test_local_failed_write_leaves_old_object_and_no_temp_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
    overwrite: bool,
    error: int,
    expected: str,
) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("a/b", b"old")
    if not overwrite:
        store.delete("a/b")

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(failing, fail)
    with pytest.raises(ObjectStoreError, match=rf"'a/b'.*{expected}"):
        store.put("a/b", b"new", overwrite=overwrite)
    monkeypatch.undo()
    assert _temp_files(tmp_path) == []
    assert list(store.list()) == (["a/b"] if overwrite else [])
    if overwrite:
        assert store.get("a/b") == b"old"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_local_permission_denied_names_key_and_reason(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.put("k", b"x")
    (tmp_path / "objects").chmod(0o500)
    try:
        with pytest.raises(ObjectStoreError, match=r"'other'.*Permission denied"):
            store.put("other", b"x")
    finally:
        (tmp_path / "objects").chmod(0o700)


def test_local_concurrent_create_only_writes_have_one_winner(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def write(n: int) -> None:
        start.wait()
        try:
            store.put("claim", str(n).encode(), overwrite=False)
            outcomes.append("won")
        except ObjectExistsError:
            outcomes.append("refused")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * 7 + ["won"]
    assert _temp_files(tmp_path) == []


def test_local_key_that_is_a_folder_of_other_keys_is_refused_clearly(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("a/b", b"x")
    with pytest.raises(ObjectStoreError, match="cannot hold both"):
        store.put("a", b"y")
    with pytest.raises(ObjectStoreError, match="cannot hold both"):
        store.put("a/b/c", b"y")


def test_local_delete_leaves_no_empty_folders(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.put("a/b/c", b"x")
    store.delete_prefix("a/")
    assert list((tmp_path / "objects").iterdir()) == []
    store.put("a", b"now a file")  # possible only because a/ is gone
    assert store.get("a") == b"now a file"


# --- S3: multipart, conditional writes, errors, retries ---------------------------------------


@pytest.mark.s3
def test_s3_large_file_goes_up_in_parts_and_reads_back(
    s3_store: S3ObjectStore, s3_admin: Any, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(5 * MIB + 1))
    s3_store.put_file("videos/v1/source.mp4", source)
    head = s3_admin.head_object(
        Bucket=s3_store.bucket, Key=f"{s3_store.prefix}/videos/v1/source.mp4"
    )
    assert head["ETag"].strip('"').endswith("-2")  # two parts: 5 MiB and 1 byte
    assert s3_store.get("videos/v1/source.mp4") == source.read_bytes()
    copy = tmp_path / "copy.bin"
    s3_store.get_file("videos/v1/source.mp4", copy)
    assert copy.read_bytes() == source.read_bytes()


@pytest.mark.s3
def test_s3_multipart_completion_refuses_to_overwrite(
    s3_store: S3ObjectStore, s3_admin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(5 * MIB + 1))
    s3_store.put("claimed", b"first")
    # Skip the existence shortcut, as a concurrent writer would: the conditional
    # CompleteMultipartUpload alone must refuse.
    monkeypatch.setattr(s3_store, "exists", lambda key: False)
    with pytest.raises(ObjectExistsError, match="claimed"):
        s3_store.put_file("claimed", source, overwrite=False)
    assert s3_store.get("claimed") == b"first"
    uploads = s3_admin.list_multipart_uploads(Bucket=s3_store.bucket)
    assert uploads.get("Uploads", []) == []  # the failed upload's parts were aborted


@pytest.mark.s3
def test_s3_uploads_carry_a_checksum(s3_store: S3ObjectStore, s3_admin: Any) -> None:
    # moto stores the checksum but, unlike S3, does not verify it against the body: this shows
    # that the checksum is sent, not that a corrupted upload is refused.
    s3_store.put("k", b"checked")
    head = s3_admin.head_object(
        Bucket=s3_store.bucket, Key=f"{s3_store.prefix}/k", ChecksumMode="ENABLED"
    )
    assert head.get("ChecksumCRC32")


@pytest.mark.s3
def test_s3_store_prefix_isolates_keys(s3_server: str, s3_bucket: str) -> None:
    one = S3ObjectStore(s3_bucket, "one", endpoint_url=s3_server)
    two = S3ObjectStore(s3_bucket, "/two/", endpoint_url=s3_server)
    one.put("k", b"1")
    two.put("k", b"2")
    assert (one.get("k"), two.get("k")) == (b"1", b"2")
    assert one.delete_prefix("") == 1
    assert list(two.list()) == ["k"]
    assert two.url == f"s3://{s3_bucket}/two"


@pytest.mark.s3
def test_s3_missing_bucket_says_which_and_how_to_create_it(s3_server: str) -> None:
    store = make_s3_store(s3_server, "no-such-bucket-here")
    for attempt in (lambda: store.exists("k"), lambda: store.put("k", b"x")):
        with pytest.raises(ObjectStoreError, match=r"'no-such-bucket-here' does not exist.*create"):
            attempt()


@pytest.mark.usefixtures("fake_aws_credentials")
def test_s3_unreachable_endpoint_is_reported_as_such() -> None:
    port = _closed_port()
    store = make_s3_store(f"http://127.0.0.1:{port}", "any-bucket", max_attempts=1)
    with pytest.raises(ObjectStoreError, match=rf"endpoint http://127.0.0.1:{port} is unreachable"):
        store.put("k", b"x")


@pytest.mark.s3
def test_s3_retries_5xx_answers(s3_bucket: str, faulty_proxy: FaultyProxy) -> None:
    store = make_s3_store(faulty_proxy.url, s3_bucket, max_attempts=3)
    assert not store.exists("k")  # through the proxy, no faults yet
    faulty_proxy.fail_next(503, 500)
    store.put("k", b"survived")
    faulty_proxy.fail_next(500)
    assert store.get("k") == b"survived"
    assert faulty_proxy.faults_sent == 3


@pytest.mark.s3
def test_s3_5xx_surfaces_as_object_store_error_without_retries(
    s3_bucket: str, faulty_proxy: FaultyProxy
) -> None:
    store = make_s3_store(faulty_proxy.url, s3_bucket, max_attempts=1)
    assert not store.exists("k")
    faulty_proxy.fail_next(503)
    with pytest.raises(ObjectStoreError, match=r"'k'.*ServiceUnavailable.*HTTP 503"):
        store.put("k", b"lost")
    assert not store.exists("k")


# --- open_object_store ------------------------------------------------------------------------


def test_open_relative_file_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_object_store(Settings(object_store_url="file://data/objects"))
    assert isinstance(store, LocalObjectStore)
    assert store.root == tmp_path / "data" / "objects"
    assert store.url == f"file://{tmp_path}/data/objects"


def test_open_absolute_file_url(tmp_path: Path) -> None:
    store = open_object_store(Settings(object_store_url=f"file://{tmp_path}/objects"))
    assert isinstance(store, LocalObjectStore)
    assert store.root == tmp_path / "objects"


def test_open_s3_url_uses_the_s3_settings() -> None:
    settings = Settings(
        object_store_url="s3://my-bucket/datasets/sav",
        s3_endpoint_url="http://127.0.0.1:9000",
        s3_max_attempts=4,
        s3_multipart_threshold_mb=8,
    )
    store = open_object_store(settings)  # builds a client; no request is made
    assert isinstance(store, S3ObjectStore)
    assert (store.bucket, store.prefix) == ("my-bucket", "datasets/sav")
    assert store.url == "s3://my-bucket/datasets/sav"
    assert store.endpoint_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    "url", ["s3://", "s3:///prefix", "s3://Bad_Bucket/x", "s3://bucket/a/../b", "file://", "gs://bucket/x"]
)
def test_open_rejects_unusable_urls(url: str) -> None:
    settings = Settings().model_copy(update={"object_store_url": url})  # bypass the scheme check
    with pytest.raises(ConfigError):
        open_object_store(settings)
