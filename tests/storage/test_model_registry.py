"""The model registry on both catalogs, a local object store, and once on S3."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner

from engine.errors import (
    BadModelRefError,
    CatalogError,
    CorruptCheckpointError,
    ModelNotFoundError,
    ModelRegistryError,
    NotFoundError,
    ObjectStoreError,
)
from engine.model_registry import ModelRegistry, promote
from engine.ports import ObjectStore
from flows.cli import models_cmd
from storage.catalog import Catalog
from storage.model_registry import SqlModelRegistry
from storage.objects import LocalObjectStore, S3ObjectStore
from storage.schema import ModelVersionRow, TrainingRunRow

CONFIG = {"model_type": "sam2_video", "image_size": 256}


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def registry(catalog: Catalog, store: LocalObjectStore, tmp_path: Path) -> SqlModelRegistry:
    """On both catalogs: for what depends on the database (numbering, aliases, transactions)."""
    return SqlModelRegistry(catalog, store, tmp_path / "cache")


@pytest.fixture
def sqlite_registry(sqlite_catalog: Catalog, store: LocalObjectStore, tmp_path: Path) -> SqlModelRegistry:
    """On SQLite only: for what is about files and the object store, not the database."""
    return SqlModelRegistry(sqlite_catalog, store, tmp_path / "cache")


def make_weights(folder: Path, seed: int = 0) -> Path:
    """A small save_pretrained-like folder: a config, a weights file, and a nested file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({**CONFIG, "seed": seed}))
    (folder / "model.safetensors").write_bytes(os.urandom(64 * 1024))
    (folder / "extra").mkdir(exist_ok=True)
    (folder / "extra" / "processor.json").write_text('{"size": 256}')
    return folder


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    return make_weights(tmp_path / "weights")


def same_files(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    return files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and all(
        (a / f).read_bytes() == (b / f).read_bytes() for f in files
    )


def row_count(catalog: Catalog) -> int:
    with catalog.read() as session:
        return session.scalar(select(func.count()).select_from(ModelVersionRow)) or 0


# --- registering and resolving ----------------------------------------------------------------


def test_registry_implements_the_port(registry: SqlModelRegistry) -> None:
    assert isinstance(registry, ModelRegistry)


def test_register_then_resolve_round_trips_config_weights_and_metrics(
    registry: SqlModelRegistry, store: LocalObjectStore, weights: Path
) -> None:
    registered = registry.register("sam2-compact", CONFIG, weights, metrics={"val_jf": 0.5}, note="bootstrap")

    assert (registered.name, registered.version, registered.ref) == ("sam2-compact", 1, "sam2-compact@1")
    assert registered.weights_uri == "models/sam2-compact/1/"
    assert sorted(store.list("models/sam2-compact/1/")) == [
        "models/sam2-compact/1/config.json",
        "models/sam2-compact/1/extra/processor.json",
        "models/sam2-compact/1/manifest.json",
        "models/sam2-compact/1/model.safetensors",
    ]
    resolved = registry.resolve("sam2-compact@1")
    assert resolved == registered
    assert resolved.config == CONFIG and resolved.metrics == {"val_jf": 0.5} and resolved.note == "bootstrap"
    assert resolved.created_at.tzinfo is not None
    assert same_files(registry.weights_dir(resolved), weights)


def test_versions_are_numbered_per_name(registry: SqlModelRegistry, weights: Path) -> None:
    numbers = [registry.register("sam2-compact", CONFIG, weights).version for _ in range(3)]
    other = registry.register("facebook/sam2.1-hiera-tiny", CONFIG, weights)
    assert numbers == [1, 2, 3]
    assert (other.version, other.weights_uri) == (1, "models/facebook/sam2.1-hiera-tiny/1/")
    assert [v.ref for v in registry.list()] == [
        "facebook/sam2.1-hiera-tiny@1",
        "sam2-compact@1",
        "sam2-compact@2",
        "sam2-compact@3",
    ]
    assert [v.version for v in registry.list("sam2-compact")] == [1, 2, 3]
    assert registry.list("unknown-model") == []


def test_a_name_and_a_longer_hub_name_do_not_share_version_folders(
    sqlite_registry: SqlModelRegistry, weights: Path
) -> None:
    sqlite_registry.register("facebook/sam2.1-hiera-tiny", CONFIG, weights)
    assert sqlite_registry.register("facebook", CONFIG, weights).version == 1
    assert sqlite_registry.register("facebook/sam2.1-hiera-tiny", CONFIG, weights).version == 2


def test_concurrent_registrations_get_distinct_versions(registry: SqlModelRegistry, weights: Path) -> None:
    count = 6
    barrier = threading.Barrier(count)
    results: list[int] = []
    errors: list[BaseException] = []

    def register_one() -> None:
        try:
            barrier.wait()
            results.append(registry.register("sam2-compact", CONFIG, weights).version)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=register_one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(results) == list(range(1, count + 1))
    for version in registry.list("sam2-compact"):
        assert same_files(registry.weights_dir(version), weights)


def test_an_orphaned_claim_is_skipped_not_reused(
    sqlite_registry: SqlModelRegistry, store: LocalObjectStore, weights: Path
) -> None:
    """A registrant killed after claiming a number leaves a gap, never a clash."""
    sqlite_registry.register("sam2-compact", CONFIG, weights)
    store.put("models/sam2-compact/2/manifest.json", b"{}")  # as if killed mid-upload
    assert sqlite_registry.register("sam2-compact", CONFIG, weights).version == 3


def test_lineage_training_run_and_config_only_versions(
    registry: SqlModelRegistry, catalog: Catalog, weights: Path
) -> None:
    with catalog.write() as session:
        run = TrainingRunRow(model_name="sam2-compact", status="finished")
        session.add(run)
        session.flush()
        run_id = run.id
    base = registry.register("facebook/sam2.1-hiera-tiny", CONFIG, None, note="config only")
    first = registry.register("sam2-compact", CONFIG, weights, parent=base)
    second = registry.register("sam2-compact", CONFIG, weights, parent="sam2-compact", training_run_id=run_id)

    assert base.weights_uri is None and not base.has_weights
    assert (first.parent_id, first.parent_ref) == (base.id, "facebook/sam2.1-hiera-tiny@1")
    assert (second.parent_ref, second.training_run_id) == ("sam2-compact@1", run_id)
    with pytest.raises(ModelNotFoundError, match="without weights"):
        registry.weights_dir(base)


def test_record_metrics_merges(registry: SqlModelRegistry, weights: Path) -> None:
    version = registry.register("sam2-compact", CONFIG, weights, metrics={"val_jf": 0.5, "epochs": 3})
    updated = registry.record_metrics(version.id, {"val_jf": 0.61, "fps": 24.0})
    assert updated.metrics == {"val_jf": 0.61, "epochs": 3, "fps": 24.0}
    assert registry.resolve("sam2-compact@1").metrics == updated.metrics
    with pytest.raises(ModelNotFoundError, match="id 9999"):
        registry.record_metrics(9999, {"x": 1})
    with pytest.raises(ModelRegistryError, match="plain JSON"):
        registry.record_metrics(version.id, {"val_jf": float("nan")})


# --- aliases ----------------------------------------------------------------------------------


def test_champion_alias_drives_the_bare_name(registry: SqlModelRegistry, weights: Path) -> None:
    for _ in range(3):
        registry.register("sam2-compact", CONFIG, weights)
    assert registry.resolve("sam2-compact").version == 3  # no champion yet: the newest

    champion = registry.set_alias("sam2-compact", "champion", 2)
    assert champion.aliases == ("champion",)
    assert registry.resolve("sam2-compact").version == 2
    assert registry.resolve("sam2-compact@champion").version == 2
    assert registry.resolve("sam2-compact@latest").version == 3
    assert registry.aliases("sam2-compact") == {"champion": 2}

    registry.register("sam2-compact", CONFIG, weights)
    assert registry.resolve("sam2-compact").version == 2  # a new version is not promoted by itself


def test_promote_records_the_previous_champion_and_rollback_swaps(registry: SqlModelRegistry, weights: Path) -> None:
    for _ in range(3):
        registry.register("sam2-compact", CONFIG, weights)
    promote(registry, "sam2-compact@1")
    promote(registry, "sam2-compact@latest")
    assert registry.aliases("sam2-compact") == {"champion": 3, "previous-champion": 1}
    assert registry.get("sam2-compact", 1).aliases == ("previous-champion",)

    promote(registry, "sam2-compact@3")  # promoting the champion again changes nothing
    assert registry.aliases("sam2-compact") == {"champion": 3, "previous-champion": 1}

    assert registry.rollback("sam2-compact").version == 1
    assert registry.aliases("sam2-compact") == {"champion": 1, "previous-champion": 3}
    assert registry.rollback("sam2-compact").version == 3  # a second rollback redoes


def test_rollback_without_history_and_reserved_aliases_are_refused(registry: SqlModelRegistry, weights: Path) -> None:
    registry.register("sam2-compact", CONFIG, weights)
    with pytest.raises(ModelRegistryError, match="nothing to roll back"):
        registry.rollback("sam2-compact")
    registry.set_alias("sam2-compact", "champion", 1)
    with pytest.raises(ModelRegistryError, match="nothing to roll back"):
        registry.rollback("sam2-compact")
    for alias in ("previous-champion", "latest", "7"):
        with pytest.raises(BadModelRefError):
            registry.set_alias("sam2-compact", alias, 1)


def test_concurrent_promotions_leave_one_consistent_champion(registry: SqlModelRegistry, weights: Path) -> None:
    for _ in range(4):
        registry.register("sam2-compact", CONFIG, weights)
    threads = [
        threading.Thread(target=registry.set_alias, args=("sam2-compact", "champion", v)) for v in (1, 2, 3, 4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    aliases = registry.aliases("sam2-compact")
    assert aliases["champion"] in (1, 2, 3, 4)
    assert registry.resolve("sam2-compact").version == aliases["champion"]


# --- errors -----------------------------------------------------------------------------------


def test_unknown_names_versions_and_aliases_say_what_exists(registry: SqlModelRegistry, weights: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="registry is empty"):
        registry.resolve("sam2-compact")
    for _ in range(3):
        registry.register("sam2-compact", CONFIG, weights)
    registry.set_alias("sam2-compact", "champion", 2)

    with pytest.raises(ModelNotFoundError, match=r"no model named 'sam2-compac'.*registered models: sam2-compact"):
        registry.resolve("sam2-compac@champion")
    with pytest.raises(ModelNotFoundError, match=r"no model version sam2-compact@7: .*versions 1-3.*@champion -> 2"):
        registry.resolve("sam2-compact@7")
    with pytest.raises(ModelNotFoundError, match=r"sam2-compact@candidate"):
        registry.resolve("sam2-compact@candidate")
    with pytest.raises(ModelNotFoundError, match="versions 1-3"):
        registry.set_alias("sam2-compact", "champion", 9)
    with pytest.raises(BadModelRefError):
        registry.resolve("sam2-compact@")
    assert registry.aliases("sam2-compact") == {"champion": 2}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p, "does not exist"),
        (lambda p: (p.mkdir(), p)[1], "holds no files"),
        (lambda p: (make_weights(p), (p / "manifest.json").write_text("{}"), p)[2], "manifest.json"),
    ],
    ids=["missing", "empty", "own-manifest"],
)
def test_bad_weights_folders_are_refused_before_anything_is_stored(
    sqlite_registry: SqlModelRegistry,
    sqlite_catalog: Catalog,
    store: LocalObjectStore,
    tmp_path: Path,
    setup: Any,
    message: str,
) -> None:
    folder = setup(tmp_path / "bad")
    with pytest.raises(ModelRegistryError, match=message):
        sqlite_registry.register("sam2-compact", CONFIG, folder)
    assert row_count(sqlite_catalog) == 0 and list(store.list()) == []


def test_bad_config_parent_and_training_run_are_refused(
    registry: SqlModelRegistry, catalog: Catalog, store: LocalObjectStore, weights: Path
) -> None:
    with pytest.raises(ModelRegistryError, match="plain JSON"):
        registry.register("sam2-compact", {"bad": object()}, weights)
    with pytest.raises(ModelNotFoundError, match="registry is empty"):
        registry.register("sam2-compact", CONFIG, weights, parent="sam2-compact@champion")
    with pytest.raises(NotFoundError, match="no training run 42"):
        registry.register("sam2-compact", CONFIG, weights, training_run_id=42)
    with pytest.raises(BadModelRefError):
        registry.register("bad name", CONFIG, weights)
    assert row_count(catalog) == 0 and list(store.list()) == []


class FailingUploads:
    """A local store whose ``put_file`` fails after ``allowed`` successful uploads."""

    def __init__(self, inner: LocalObjectStore, allowed: int) -> None:
        self.inner = inner
        self.url = inner.url
        self.allowed = allowed

    def put_file(self, key: str, path: Path, *, overwrite: bool = True) -> None:
        if self.allowed == 0:
            raise ObjectStoreError(f"cannot upload {key!r}: disk full (injected)")
        self.allowed -= 1
        self.inner.put_file(key, path, overwrite=overwrite)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_failed_upload_records_nothing_and_removes_what_was_uploaded(
    catalog: Catalog, store: LocalObjectStore, tmp_path: Path, weights: Path
) -> None:
    failing = SqlModelRegistry(catalog, FailingUploads(store, allowed=1), tmp_path / "cache")  # type: ignore[arg-type]
    with pytest.raises(ObjectStoreError, match="injected"):
        failing.register("sam2-compact", CONFIG, weights)
    assert row_count(catalog) == 0
    assert list(store.list()) == []

    working = SqlModelRegistry(catalog, store, tmp_path / "cache")
    assert working.register("sam2-compact", CONFIG, weights).version == 1


def test_a_failed_catalog_write_removes_the_uploaded_weights(
    registry: SqlModelRegistry,
    catalog: Catalog,
    store: LocalObjectStore,
    weights: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a training run that passed the check and was deleted before the insert
    monkeypatch.setattr(registry, "_checked_training_run", lambda _: 987654)
    with pytest.raises(CatalogError, match="refused sam2-compact@1"):
        registry.register("sam2-compact", CONFIG, weights, training_run_id=987654)
    assert row_count(catalog) == 0
    assert list(store.list()) == []


def test_a_commit_whose_answer_was_lost_still_counts(
    sqlite_registry: SqlModelRegistry,
    sqlite_catalog: Catalog,
    weights: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The row landed but the connection dropped before saying so: the weights must stay."""
    real_write = sqlite_catalog.write

    @contextmanager
    def write_then_lose_the_answer() -> Iterator[Any]:
        with real_write() as session:
            yield session
        raise CatalogError("connection lost after COMMIT (injected)")

    monkeypatch.setattr(sqlite_catalog, "write", write_then_lose_the_answer)
    version = sqlite_registry.register("sam2-compact", CONFIG, weights)
    monkeypatch.undo()
    assert version.ref == "sam2-compact@1"
    assert same_files(sqlite_registry.weights_dir(version), weights)


# --- the local cache --------------------------------------------------------------------------


class CountingStore:
    """A store that counts downloads."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.downloads = 0

    def get_file(self, key: str, path: Path) -> None:
        self.downloads += 1
        self.inner.get_file(key, path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def counted(
    sqlite_catalog: Catalog, store: LocalObjectStore, tmp_path: Path
) -> Iterator[tuple[SqlModelRegistry, CountingStore]]:
    counting = CountingStore(store)
    yield SqlModelRegistry(sqlite_catalog, counting, tmp_path / "cache"), counting  # type: ignore[arg-type]


def test_weights_are_downloaded_once_then_served_from_the_cache(
    counted: tuple[SqlModelRegistry, CountingStore], weights: Path
) -> None:
    registry, counting = counted
    version = registry.register("sam2-compact", CONFIG, weights)
    first = registry.weights_dir(version)
    assert counting.downloads == 3
    assert registry.weights_dir(version) == first
    assert counting.downloads == 3
    assert [p.name for p in first.parent.iterdir() if p.name.startswith(".tmp-")] == []


def test_a_tampered_or_missing_cached_file_is_fetched_again(
    counted: tuple[SqlModelRegistry, CountingStore], weights: Path
) -> None:
    registry, counting = counted
    version = registry.register("sam2-compact", CONFIG, weights)
    cached = registry.weights_dir(version)

    blob = cached / "model.safetensors"
    damaged = bytearray(blob.read_bytes())
    damaged[100] ^= 0xFF  # same size, different content
    blob.write_bytes(bytes(damaged))
    assert registry.weights_dir(version) == cached
    assert same_files(cached, weights)
    assert counting.downloads == 6

    (cached / "extra" / "processor.json").unlink()
    registry.weights_dir(version)
    assert same_files(cached, weights)
    assert counting.downloads == 9


def test_concurrent_readers_share_one_verified_copy(sqlite_registry: SqlModelRegistry, weights: Path) -> None:
    version = sqlite_registry.register("sam2-compact", CONFIG, weights)
    folders: list[Path] = []
    threads = [threading.Thread(target=lambda: folders.append(sqlite_registry.weights_dir(version))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(folders)) == 1 and len(folders) == 4
    assert same_files(folders[0], weights)
    assert [p.name for p in sqlite_registry.cache.root.iterdir() if p.name.startswith(".tmp-")] == []


def test_a_damaged_stored_copy_is_reported_not_served(
    sqlite_registry: SqlModelRegistry, store: LocalObjectStore, weights: Path
) -> None:
    version = sqlite_registry.register("sam2-compact", CONFIG, weights)
    store.put("models/sam2-compact/1/model.safetensors", b"truncated")
    with pytest.raises(CorruptCheckpointError, match=r"model.safetensors.*does not match its manifest.*register"):
        sqlite_registry.weights_dir(version)
    cache_root = sqlite_registry.cache.root
    assert not any(cache_root.rglob("model.safetensors"))  # nothing half-checked left behind

    store.delete("models/sam2-compact/1/manifest.json")
    with pytest.raises(CorruptCheckpointError, match="missing"):
        sqlite_registry.weights_dir(version)


def test_two_registries_sharing_a_cache_do_not_mix_up_versions(
    sqlite_catalog: Catalog, tmp_path: Path, weights: Path
) -> None:
    """Same name and number in two installations: the cache folders differ by manifest digest."""
    a = SqlModelRegistry(sqlite_catalog, LocalObjectStore(tmp_path / "a"), tmp_path / "cache")
    version_a = a.register("sam2-compact", CONFIG, weights)
    folder_a = a.weights_dir(version_a)
    other_weights = make_weights(tmp_path / "other", seed=1)
    b_catalog = Catalog(f"sqlite:///{tmp_path / 'b.db'}")
    b_catalog.upgrade()
    try:
        b = SqlModelRegistry(b_catalog, LocalObjectStore(tmp_path / "b"), tmp_path / "cache")
        folder_b = b.weights_dir(b.register("sam2-compact", CONFIG, other_weights))
    finally:
        b_catalog.dispose()
    assert folder_a != folder_b
    assert same_files(folder_a, weights) and same_files(folder_b, other_weights)


# --- S3 ---------------------------------------------------------------------------------------


@pytest.mark.s3
def test_round_trip_on_s3(sqlite_catalog: Catalog, s3_store: S3ObjectStore, tmp_path: Path, weights: Path) -> None:
    registry = SqlModelRegistry(sqlite_catalog, s3_store, tmp_path / "cache")
    first = registry.register("facebook/sam2.1-hiera-tiny", CONFIG, weights)
    registry.register("facebook/sam2.1-hiera-tiny", CONFIG, weights)
    registry.set_alias("facebook/sam2.1-hiera-tiny", "champion", 1)
    resolved = registry.resolve("facebook/sam2.1-hiera-tiny")
    assert resolved == registry.get("facebook/sam2.1-hiera-tiny", 1) and resolved.id == first.id
    assert same_files(registry.weights_dir(resolved), weights)
    assert "models/facebook/sam2.1-hiera-tiny/2/manifest.json" in set(s3_store.list("models/"))


# --- the command line -------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str) -> typer.Typer:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATAENGINE_CATALOG_URL", sqlite_url)
    monkeypatch.setenv("DATAENGINE_OBJECT_STORE_URL", f"file://{tmp_path / 'cli-objects'}")
    app = typer.Typer()
    app.command("noop", hidden=True)(lambda: None)  # a second command keeps "models" a sub-command
    models_cmd.register(app)
    return app


def _registry_for_cli(tmp_path: Path, sqlite_url: str) -> tuple[SqlModelRegistry, Catalog]:
    catalog = Catalog(sqlite_url)
    catalog.upgrade()
    return SqlModelRegistry(catalog, LocalObjectStore(tmp_path / "cli-objects"), tmp_path / "cache"), catalog


def test_cli_list_show_promote_rollback(cli: typer.Typer, tmp_path: Path, sqlite_url: str, weights: Path) -> None:
    registry, catalog = _registry_for_cli(tmp_path, sqlite_url)
    try:
        first = registry.register("sam2-compact", CONFIG, weights, metrics={"val_jf": 0.61234, "epochs": 2})
        registry.register("sam2-compact", CONFIG, weights, parent=first)
        registry.set_alias("sam2-compact", "champion", 1)
    finally:
        catalog.dispose()
    runner = CliRunner()

    listed = runner.invoke(cli, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [line[0] for line in lines] == ["sam2-compact@1", "sam2-compact@2"]
    assert lines[0][1] == "champion" and lines[0][4] == "val_jf=0.6123 epochs=2"
    assert lines[1][2] == "parent sam2-compact@1"

    shown = runner.invoke(cli, ["models", "show", "sam2-compact"])
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.stdout)
    assert document["ref"] == "sam2-compact@1" and document["aliases"] == ["champion"]
    assert document["weights_uri"] == "models/sam2-compact/1/" and document["config"] == CONFIG

    promoted = runner.invoke(cli, ["models", "promote", "sam2-compact@latest"])
    assert promoted.exit_code == 0, promoted.output
    assert promoted.stdout.strip() == "sam2-compact@champion -> 2 (was 1)"
    assert json.loads(runner.invoke(cli, ["models", "show", "sam2-compact"]).stdout)["version"] == 2

    rolled = runner.invoke(cli, ["models", "rollback", "sam2-compact"])
    assert rolled.exit_code == 0, rolled.output
    assert rolled.stdout.strip() == "sam2-compact@champion -> 1 (was 2)"


def test_cli_reports_unknown_models_as_one_error_line(
    cli: typer.Typer, tmp_path: Path, sqlite_url: str, weights: Path
) -> None:
    registry, catalog = _registry_for_cli(tmp_path, sqlite_url)
    try:
        registry.register("sam2-compact", CONFIG, weights)
    finally:
        catalog.dispose()
    runner = CliRunner()
    for args, message in [
        (["models", "show", "sam2-compact@5"], "no model version sam2-compact@5"),
        (["models", "list", "nope"], "no model named 'nope'"),
        (["models", "promote", "sam2-compact@"], "invalid model reference"),
        (["models", "promote", "sam2-compact@1", "--alias", "latest"], "not an alias"),
    ]:
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
