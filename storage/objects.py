"""Object stores: a local folder and S3, behind :class:`engine.ports.ObjectStore`.

Both keep the port's promises: keys are validated the same way, every write is atomic (a
reader sees the old object, the new one, or nothing), ``overwrite=False`` is race-free, and
every failure reaches the caller as one of our own errors naming the key and the reason.
:func:`open_object_store` builds the one that ``object_store_url`` names.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import botocore.session
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.loaders import Loader, create_loader
from s3transfer.exceptions import RetriesExceededError
from s3transfer.manager import TransferManager

from engine.errors import ConfigError, ObjectExistsError, ObjectNotFoundError, ObjectStoreError
from engine.ports import ObjectStore
from engine.settings import Settings

MIB = 1024 * 1024
MAX_KEY_BYTES = 1024  # S3's limit on a key's UTF-8 length
MAX_SEGMENT_BYTES = 255  # NAME_MAX of common filesystems, so any key fits a local store too
TEMP_PREFIX = ".tmp-"  # reserved: half-written local files carry it and are never listed
S3_MIN_PART_BYTES = 5 * MIB  # S3 refuses smaller parts (except the last)
S3_DELETE_BATCH = 1000  # most keys one DeleteObjects call accepts
S3_CHECKSUM = "CRC32"  # cheap, and computed by botocore without reading the data twice
COPY_BUFFER_BYTES = MIB

_KEY_EXAMPLE = "videos/syn_000001/frames/00000.jpg"
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


# --- keys -------------------------------------------------------------------------------------


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid object key, else raise ObjectStoreError.

    One rule set for every store, so a dataset written locally can move to S3 (and back)
    without a key becoming unusable or escaping its root.
    """
    reason = _key_problem(key)
    if reason is not None:
        raise ObjectStoreError(
            f"invalid object key {key!r}: {reason}; keys are relative '/'-separated paths "
            f"such as {_KEY_EXAMPLE!r}"
        )
    return key


def _key_problem(key: object) -> str | None:
    problem = _characters_problem(key)
    if problem is not None:
        return problem
    for segment in str(key).split("/"):
        problem = _segment_problem(segment)
        if problem is not None:
            return problem
    return None


def _characters_problem(text: object) -> str | None:
    if not isinstance(text, str):
        return f"it is a {type(text).__name__}, not a string"
    if not text:
        return "it is empty"
    if len(text.encode("utf-8")) > MAX_KEY_BYTES:
        return f"it is longer than {MAX_KEY_BYTES} bytes"
    if "\\" in text:
        return "it contains a backslash (use '/' between segments)"
    if _CONTROL_CHARS.search(text):
        return "it contains a NUL or control character"
    if text.startswith("/"):
        return "it starts with '/' (keys are relative)"
    return None


def _segment_problem(segment: str) -> str | None:
    if not segment:
        return "it has an empty segment ('//' or a trailing '/')"
    if segment in (".", ".."):
        return f"it has a {segment!r} segment"
    if segment.startswith(TEMP_PREFIX):
        return f"segments starting with {TEMP_PREFIX!r} are reserved for temporary files"
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        return f"a segment is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if some valid key could start with it, else raise ObjectStoreError.

    Unlike a key, a prefix may be empty, end with '/', or stop inside a segment
    (``videos/syn_0``); only its complete segments are held to the key rules.
    """
    if prefix == "":
        return prefix
    complete, _, _ = prefix.rpartition("/")
    problem = _characters_problem(prefix)
    if problem is None and complete:
        problem = _key_problem(complete)
    if problem is not None:
        raise ObjectStoreError(f"invalid key prefix {prefix!r}: {problem}")
    return prefix


def _could_extend(candidate: str, prefix: str) -> bool:
    """Whether keys under the folder ``candidate`` (ending in '/') can start with ``prefix``."""
    return candidate.startswith(prefix) or prefix.startswith(candidate)


# --- local files ------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno != errno.EINVAL:  # some filesystems cannot fsync a directory at all
            raise
    finally:
        os.close(fd)


def _make_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents, each one durably."""
    missing: list[Path] = []
    while not directory.is_dir():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            if not path.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
            continue  # created by a concurrent writer
        _fsync_dir(path.parent)


def _create_temp(directory: Path) -> tuple[int, Path]:
    """Open a new, uniquely named temporary file in ``directory`` (created if missing).

    ``os.open`` with mode 0o666 rather than ``mkstemp``, so the finished object gets the
    permissions the umask asks for, not mkstemp's 0o600.
    """
    for _ in range(8):
        _make_dirs(directory)
        path = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
        except (FileExistsError, FileNotFoundError):
            continue  # a name clash, or a concurrent delete pruned the empty folder: try again
    raise OSError(errno.EAGAIN, "could not create a temporary file", str(directory))


def write_file_atomically(
    dest: Path, fill: Callable[[BinaryIO], object], *, overwrite: bool = True
) -> None:
    """Write ``dest`` so that readers see the old file, the new one, or none, never a part.

    ``fill`` writes the content into a temporary file next to ``dest``; it is flushed and
    fsynced, then renamed over ``dest`` (or, with ``overwrite=False``, hard-linked to it,
    which fails atomically with FileExistsError when ``dest`` exists). The temporary file
    is removed whatever happens. OSErrors propagate for the caller to name.
    """
    fd, tmp = _create_temp(dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(tmp, dest)
        else:
            os.link(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(dest.parent)


_OS_HINTS = {
    errno.ENOSPC: "; free some disk space or point object_store_url at a larger disk",
    errno.EDQUOT: "; the disk quota is exhausted",
    errno.EACCES: "; check the permissions of the store's folder",
    errno.EPERM: "; check the permissions of the store's folder (and that hard links are allowed)",
    errno.EROFS: "; the store's folder is on a read-only filesystem",
    errno.ENOTDIR: "; another object's key is a prefix of this one (a local store cannot hold "
    "both 'a' and 'a/b')",
    errno.EISDIR: "; other objects' keys start with this key plus '/' (a local store cannot hold "
    "both 'a' and 'a/b')",
}


def _os_error(action: str, what: str, err: OSError) -> ObjectStoreError:
    reason = err.strerror or str(err)
    return ObjectStoreError(f"cannot {action} {what}: {reason}{_OS_HINTS.get(err.errno or 0, '')}")


class LocalObjectStore:
    """Objects as files under a folder: ``ROOT/videos/syn_000001/frames/00000.jpg``.

    For one machine (or a shared filesystem). Writes go through a fsynced temporary file and
    a rename, so a crash never leaves a partial object under a real key; leftover temporary
    files start with ``.tmp-`` and are never listed.
    """

    def __init__(self, root: Path) -> None:
        # absolute now, so a later chdir cannot move the store
        self.root = Path(root).expanduser().absolute()
        self.url = f"file://{self.root}"

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def _describe(self, key: str) -> str:
        return f"object {key!r} in {self.url}"

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> None:
        self._write(key, lambda out: out.write(data), overwrite=overwrite)

    def put_file(self, key: str, path: Path, *, overwrite: bool = True) -> None:
        self._path(key)
        try:
            source = open(path, "rb")  # noqa: SIM115 - closed below, after the write
        except OSError as err:
            raise _os_error("read", f"source file {str(path)!r} for {key!r}", err) from err
        with source:
            self._write(
                key,
                lambda out: shutil.copyfileobj(source, out, COPY_BUFFER_BYTES),
                overwrite=overwrite,
            )

    def _write(self, key: str, fill: Callable[[BinaryIO], object], *, overwrite: bool) -> None:
        path = self._path(key)
        try:
            write_file_atomically(path, fill, overwrite=overwrite)
        except FileExistsError as err:
            if path.is_dir():  # a folder holding other objects, not this object
                conflict = IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
                raise _os_error("write", self._describe(key), conflict) from err
            raise ObjectExistsError(
                f"{self._describe(key)} already exists and overwrite=False"
            ) from err
        except OSError as err:
            raise _os_error("write", self._describe(key), err) from err

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
            raise ObjectNotFoundError(f"no {self._describe(key)}") from err
        except OSError as err:
            raise _os_error("read", self._describe(key), err) from err

    def get_file(self, key: str, path: Path) -> None:
        source_path = self._path(key)
        try:
            source = open(source_path, "rb")  # noqa: SIM115 - closed below, after the copy
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
            raise ObjectNotFoundError(f"no {self._describe(key)}") from err
        except OSError as err:
            raise _os_error("read", self._describe(key), err) from err
        with source:
            try:
                write_file_atomically(
                    Path(path), lambda out: shutil.copyfileobj(source, out, COPY_BUFFER_BYTES)
                )
            except OSError as err:
                raise _os_error("copy", f"{self._describe(key)} to {str(path)!r}", err) from err

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._unlink(key)

    def _unlink(self, key: str) -> bool:
        """Remove the object's file and any folders that leaves empty; False if it was absent."""
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False
        except OSError as err:
            raise _os_error("delete", self._describe(key), err) from err
        self._prune_empty_dirs(path.parent)
        return True

    def _prune_empty_dirs(self, directory: Path) -> None:
        # Empty folders are invisible to list(), but left behind they would make a later
        # 'a' impossible after 'a/b' was deleted.
        while directory != self.root and self.root in directory.parents:
            try:
                os.rmdir(directory)
            except OSError:
                break  # not empty (or already gone): the folders above are not empty either
            directory = directory.parent
        with contextlib.suppress(OSError):
            _fsync_dir(directory)

    def delete_prefix(self, prefix: str) -> int:
        # Collect first: deleting while walking would prune folders under the walk.
        return sum(self._unlink(key) for key in list(self.list(prefix)))

    def list(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        head, slash, _ = prefix.rpartition("/")
        start = self.root / head if slash else self.root
        return self._walk(start, head + slash, prefix)

    def _walk(self, directory: Path, relative: str, prefix: str) -> Iterator[str]:
        """Keys under ``directory`` in lexicographic key order, lazily.

        Folders sort as ``name + '/'``, so ``a.txt`` < ``a/b`` < ``a0`` come out in the same
        order as S3 lists them, without collecting the whole tree first.
        """
        for sort_name, entry in self._entries(directory):
            key = relative + entry.name
            if sort_name.endswith("/"):
                if _could_extend(key + "/", prefix):
                    yield from self._walk(Path(entry.path), key + "/", prefix)
            elif key.startswith(prefix):
                yield key

    def _entries(self, directory: Path) -> list[tuple[str, os.DirEntry[str]]]:
        try:
            with os.scandir(directory) as scan:
                entries = [
                    (entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name, entry)
                    for entry in scan
                    if not entry.name.startswith(TEMP_PREFIX)
                    and (entry.is_dir(follow_symlinks=False) or entry.is_file())
                ]
        except (FileNotFoundError, NotADirectoryError):
            return []  # nothing stored under this prefix (yet), or deleted meanwhile
        except OSError as err:
            raise _os_error("list", f"{str(directory)!r} in {self.url}", err) from err
        return sorted(entries, key=lambda pair: pair[0])


# --- S3 ---------------------------------------------------------------------------------------


class S3ObjectStore:
    """Objects in an S3 bucket (AWS, MinIO, moto...) under an optional key prefix.

    Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
    ``AWS_PROFILE``, instance roles). S3 makes single writes atomic by itself; this class adds
    bounded retries with backoff, checksums on upload, multipart uploads for large files, and
    ``If-None-Match: *`` for writes that must not overwrite.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        # None: AWS's own endpoints; set for MinIO or a test server (path-style addressing)
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        # per call, first try included: S3 answers 503 SlowDown under load and expects retries
        max_attempts: int = 8,
        # files at least this large go up in parts of this size, in parallel and resumable per part
        multipart_threshold_bytes: int = 16 * MIB,
        # a dead endpoint should fail in seconds, not hang a flow
        connect_timeout_s: float = 5.0,
        # a large part on a slow link needs time between bytes, but not forever
        read_timeout_s: float = 60.0,
    ) -> None:
        _check_bucket_name(bucket)
        if max_attempts < 1:
            raise ConfigError(f"s3_max_attempts must be at least 1, not {max_attempts}")
        if multipart_threshold_bytes < S3_MIN_PART_BYTES:
            raise ConfigError(
                f"the multipart threshold must be at least {S3_MIN_PART_BYTES // MIB} MiB "
                f"(S3's smallest part), not {multipart_threshold_bytes} bytes"
            )
        self.bucket = bucket
        self.prefix = _checked_prefix(prefix)
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint_url = endpoint_url
        self._max_attempts = max_attempts
        self._client, self._create_only_client = _make_clients(
            endpoint_url, region, max_attempts, connect_timeout_s, read_timeout_s
        )
        self._transfer_config = _transfer_config(multipart_threshold_bytes)
        self._bucket_checked = False

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.url!r}, endpoint_url={self.endpoint_url!r})"

    def _full_key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _describe(self, key: str) -> str:
        return f"object {key!r} in {self.url}"

    # -- writes --

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> None:
        full_key = self._full_key(key)
        condition = {} if overwrite else {"IfNoneMatch": "*"}
        self._ensure_bucket()
        # With overwrite=False, a retry after a lost response to a write that did land sees
        # 412 and reports ObjectExistsError although this call created the object.
        with self._errors("write", key):
            self._client.put_object(
                Bucket=self.bucket,
                Key=full_key,
                Body=data,
                ChecksumAlgorithm=S3_CHECKSUM,
                **condition,
            )

    def put_file(self, key: str, path: Path, *, overwrite: bool = True) -> None:
        full_key = self._full_key(key)
        if not Path(path).is_file():
            raise ObjectStoreError(
                f"cannot upload source file {str(path)!r} to {self._describe(key)}: not a file"
            )
        self._ensure_bucket()
        if not overwrite and self.exists(key):
            # Only a shortcut, to not upload gigabytes that the conditional completion below
            # would refuse; that condition is what makes overwrite=False race-free.
            raise ObjectExistsError(f"{self._describe(key)} already exists and overwrite=False")
        client = self._client if overwrite else self._create_only_client
        # s3transfer aborts a failed multipart upload itself, so no orphaned parts are billed.
        with self._errors("upload", key), _transfer_manager(client, self._transfer_config) as manager:
            try:
                manager.upload(
                    str(path), self.bucket, full_key, extra_args={"ChecksumAlgorithm": S3_CHECKSUM}
                ).result()
            except OSError as err:
                raise _os_error("read", f"source file {str(path)!r} for {key!r}", err) from err

    # -- reads --

    def get(self, key: str) -> bytes:
        full_key = self._full_key(key)
        self._ensure_bucket()
        with self._errors("read", key):
            # ChecksumMode lets botocore verify the bytes against the checksum stored at upload
            response = self._client.get_object(Bucket=self.bucket, Key=full_key, ChecksumMode="ENABLED")
            return response["Body"].read()

    def get_file(self, key: str, path: Path) -> None:
        full_key = self._full_key(key)
        self._ensure_bucket()

        def download(out: BinaryIO) -> None:
            with _transfer_manager(self._client, self._transfer_config) as manager:
                manager.download(
                    self.bucket, full_key, out, extra_args={"ChecksumMode": "ENABLED"}
                ).result()

        with self._errors("download", key):
            try:
                write_file_atomically(Path(path), download)
            except OSError as err:
                raise _os_error("copy", f"{self._describe(key)} to {str(path)!r}", err) from err

    def exists(self, key: str) -> bool:
        full_key = self._full_key(key)
        self._ensure_bucket()
        with self._errors("look up", key):
            try:
                self._client.head_object(Bucket=self.bucket, Key=full_key)
            except ClientError as err:
                if _status(err) == 404:
                    return False
                raise
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[str]:
        self._ensure_bucket()
        base = f"{self.prefix}/" if self.prefix else ""
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors("list", None):
            # S3 returns keys in UTF-8 byte order, which for str is code point order
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base + prefix):
                for item in page.get("Contents", []):
                    yield item["Key"][len(base) :]

    # -- deletes --

    def delete(self, key: str) -> None:
        full_key = self._full_key(key)
        self._ensure_bucket()
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=full_key)

    def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix)
        self._ensure_bucket()
        base = f"{self.prefix}/" if self.prefix else ""
        paginator = self._client.get_paginator("list_objects_v2")
        deleted = 0
        with self._errors("delete", None):
            pages = paginator.paginate(
                Bucket=self.bucket,
                Prefix=base + prefix,
                PaginationConfig={"PageSize": S3_DELETE_BATCH},
            )
            for page in pages:
                keys = [item["Key"] for item in page.get("Contents", [])]
                if keys:
                    deleted += self._delete_batch(keys)
        return deleted

    def _delete_batch(self, full_keys: list[str]) -> int:
        response = self._client.delete_objects(
            Bucket=self.bucket,
            Delete={"Objects": [{"Key": key} for key in full_keys], "Quiet": True},
        )
        errors = response.get("Errors", [])
        if errors:
            shown = ", ".join(f"{e.get('Key')!r} ({e.get('Code')}: {e.get('Message')})" for e in errors[:3])
            raise ObjectStoreError(
                f"S3 refused to delete {len(errors)} of {len(full_keys)} objects in {self.url}: {shown}"
            )
        return len(full_keys)

    # -- errors --

    def _ensure_bucket(self) -> None:
        """Fail with a clear message when the bucket is missing, once per store.

        Without it a missing bucket would look like a missing key to ``exists`` and
        ``get_file`` (HEAD answers a bare 404 for both).
        """
        if self._bucket_checked:
            return
        with self._errors("reach", None):
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as err:
                if _status(err) == 404:
                    raise self._missing_bucket() from err
                if _status(err) != 403:
                    raise
                # 403: allowed objects but not ListBucket; the object calls will tell
        self._bucket_checked = True

    def _missing_bucket(self) -> ObjectStoreError:
        where = self.endpoint_url or "AWS"
        create = f"aws s3 mb s3://{self.bucket}"
        if self.endpoint_url:
            create += f" --endpoint-url {self.endpoint_url}"
        return ObjectStoreError(
            f"S3 bucket {self.bucket!r} does not exist at {where}; create it (e.g. `{create}`) "
            "or set object_store_url (DATAENGINE_OBJECT_STORE_URL) to an existing bucket"
        )

    @contextlib.contextmanager
    def _errors(self, action: str, key: str | None) -> Iterator[None]:
        """Turn botocore's and s3transfer's exceptions into our own, naming key and reason."""
        try:
            yield
        except RetriesExceededError as err:
            raise self._translate(err.last_exception, action, key) from err
        except (ClientError, BotoCoreError) as err:
            raise self._translate(err, action, key) from err

    def _translate(self, err: BaseException, action: str, key: str | None) -> ObjectStoreError:
        what = self._describe(key) if key is not None else self.url
        if isinstance(err, ClientError):
            return self._translate_client_error(err, action, what)
        if isinstance(err, NoCredentialsError):
            return ObjectStoreError(
                f"cannot {action} {what}: no AWS credentials found; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            )
        if isinstance(err, BotoConnectionError | HTTPClientError):
            endpoint = self.endpoint_url or self._client.meta.endpoint_url
            return ObjectStoreError(
                f"cannot {action} {what}: the S3 endpoint {endpoint} is unreachable or dropped "
                f"the connection ({err}); "
                "check s3_endpoint_url (DATAENGINE_S3_ENDPOINT_URL) and that the server is up"
            )
        return ObjectStoreError(f"cannot {action} {what}: {err}")

    def _translate_client_error(self, err: ClientError, action: str, what: str) -> ObjectStoreError:
        error = err.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = _status(err)
        if code == "NoSuchBucket":
            return self._missing_bucket()
        if code in ("NoSuchKey", "NotFound") or status == 404:
            return ObjectNotFoundError(f"no {what}")
        if code == "PreconditionFailed" or status == 412:
            return ObjectExistsError(f"{what} already exists and overwrite=False")
        if status == 403:
            return ObjectStoreError(
                f"cannot {action} {what}: access denied ({code}); check the AWS credentials "
                "and the bucket's policy"
            )
        return ObjectStoreError(
            f"cannot {action} {what}: S3 answered {code or 'an error'} (HTTP {status}) "
            f"{_attempts(self._max_attempts)}: {error.get('Message', '')}"
        )


def _check_bucket_name(bucket: str) -> None:
    if not _BUCKET_NAME.match(bucket) or ".." in bucket:
        raise ConfigError(
            f"{bucket!r} is not a valid S3 bucket name (3-63 characters: lowercase letters, "
            "digits, '.' and '-', starting and ending with a letter or digit)"
        )


def _checked_prefix(prefix: str) -> str:
    stripped = prefix.strip("/")
    problem = _key_problem(stripped) if stripped else None
    if problem is not None:
        raise ConfigError(f"invalid S3 key prefix {prefix!r}: {problem}")
    return stripped


def _make_clients(
    endpoint_url: str | None,
    region: str,
    max_attempts: int,
    connect_timeout_s: float,
    read_timeout_s: float,
) -> tuple[BaseClient, BaseClient]:
    """A plain S3 client and one whose writes never overwrite, sharing one botocore session."""
    config = Config(
        region_name=region,
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        # total_max_attempts counts the first try; botocore's "max_attempts" key counts retries
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=32,  # the transfer manager's threads each need a connection
        # MinIO and test servers have no per-bucket DNS names
        s3={"addressing_style": "path"} if endpoint_url else {},
        request_checksum_calculation="when_supported",
        response_checksum_validation="when_supported",
    )
    # A session per store (sessions are not thread-safe), but one loader for all: parsing
    # botocore's S3 model takes a quarter of a second and never changes.
    session = botocore.session.get_session()
    session.register_component("data_loader", _shared_loader())
    try:
        plain = session.create_client("s3", endpoint_url=endpoint_url, config=config)
        create_only = session.create_client("s3", endpoint_url=endpoint_url, config=config)
    except (ValueError, BotoCoreError) as err:
        raise ConfigError(f"cannot configure the S3 client (endpoint {endpoint_url!r}): {err}") from err
    # boto3's transfer manager does not accept IfNoneMatch (it is not in its
    # ALLOWED_UPLOAD_ARGS), so it is added to every write as the request is built.
    for operation in ("PutObject", "CompleteMultipartUpload"):
        create_only.meta.events.register(f"before-parameter-build.s3.{operation}", _add_if_none_match)
    return plain, create_only


@functools.cache
def _shared_loader() -> Loader:
    return create_loader()


def _add_if_none_match(params: dict[str, Any], **_: Any) -> None:
    params["IfNoneMatch"] = "*"


def _transfer_config(multipart_threshold_bytes: int) -> TransferConfig:
    return TransferConfig(
        multipart_threshold=multipart_threshold_bytes,
        multipart_chunksize=multipart_threshold_bytes,
        # the CRT client would bypass the event hook that adds If-None-Match
        preferred_transfer_client="classic",
    )


def _transfer_manager(client: BaseClient, config: TransferConfig) -> TransferManager:
    # The manager itself, not client.upload_file: that one flattens S3's error into a
    # string (S3UploadFailedError), losing the code that tells 412 from the rest.
    return create_transfer_manager(client, config)


def _attempts(count: int) -> str:
    return "on the only attempt allowed" if count == 1 else f"after {count} attempts"


def _status(err: ClientError) -> int | None:
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status is None:
        code = str(err.response.get("Error", {}).get("Code", ""))
        return int(code) if code.isdigit() else None
    return int(status)


# --- factory ----------------------------------------------------------------------------------


def open_object_store(settings: Settings) -> ObjectStore:
    """The store ``settings.object_store_url`` names.

    ``file://PATH`` is a local folder (a relative PATH is relative to the working directory,
    ``file:///abs/path`` is absolute); ``s3://bucket/prefix`` is S3, configured by the
    ``s3_*`` settings.
    """
    url = settings.object_store_url
    if url.startswith("file://"):
        path = url[len("file://") :]
        if not path:
            raise ConfigError(f"object_store_url {url!r} names no folder; use file://PATH")
        return LocalObjectStore(Path(path))
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ConfigError(f"object_store_url {url!r} names no bucket; use s3://bucket/prefix")
        try:
            return S3ObjectStore(
                bucket,
                prefix,
                endpoint_url=settings.s3_endpoint_url,
                region=settings.s3_region,
                max_attempts=settings.s3_max_attempts,
                multipart_threshold_bytes=settings.s3_multipart_threshold_mb * MIB,
            )
        except ConfigError as err:
            raise ConfigError(f"object_store_url {url!r}: {err}") from err
    raise ConfigError(
        f"object_store_url {url!r} is neither file://PATH nor s3://bucket/prefix"
    )
