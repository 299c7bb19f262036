"""The model registry on the catalog (versions, aliases) and the object store (weights).

Registering a version is three steps, in this order:

1. **Claim a number.** The next number is one past the highest in the catalog or the store;
   the version's ``manifest.json`` is written there without overwriting, and whoever writes
   it first owns the number (a second registrant gets ObjectExistsError and tries the next).
   The object store's create-only write is the lock, so two registrations, in threads,
   processes or on two machines, never share a number, and no catalog transaction is held
   open while gigabytes upload. The unique (name, version) constraint remains the backstop.
2. **Upload the files** under ``models/NAME/VERSION/``.
3. **Record the row.** Only now does the version exist for readers, so a recorded version
   always has its weights. A failure at 2 or 3 removes what was uploaded and records nothing.

A registrant killed between 1 and 3 leaves an orphaned folder whose number is skipped (a gap
in the numbering, never a clash). Aliases live in ``model_aliases``; moving one also points
``previous-ALIAS`` at its old target, in the same transaction, so one promotion can be
undone with :meth:`SqlModelRegistry.rollback` without an alias-history table.
"""

from __future__ import annotations

import builtins
import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from engine.errors import (
    CatalogError,
    CorruptCheckpointError,
    DataEngineError,
    ModelNotFoundError,
    ModelRegistryError,
    NotFoundError,
    ObjectExistsError,
    ObjectNotFoundError,
)
from engine.model_registry import (
    CHAMPION,
    LATEST,
    ModelRef,
    ModelVersion,
    previous_alias,
    refused_by_gate,
    validate_alias,
    validate_model_name,
)
from engine.ports import ObjectStore
from storage.catalog import Catalog
from storage.model_weights import (
    MANIFEST_NAME,
    MODELS_PREFIX,
    WeightFile,
    WeightsCache,
    WeightsManifest,
    hash_files,
    manifest_key,
    scan_weights,
    upload_files,
    version_prefix,
)
from storage.schema import ModelAliasRow, ModelVersionRow, TrainingRunRow, utcnow

CLAIM_ATTEMPTS = 100  # numbers tried past the highest known before giving up
NAMES_SHOWN = 20  # in "no model named ..." errors


class SqlModelRegistry:
    """:class:`engine.model_registry.ModelRegistry` on a catalog and an object store."""

    def __init__(
        self,
        catalog: Catalog,
        store: ObjectStore,
        # local folder for downloaded weights; safe to share between processes and catalogs
        cache_dir: Path,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.cache = WeightsCache(cache_dir)

    # --- registering ----------------------------------------------------------------------------

    def register(
        self,
        name: str,
        config: Mapping[str, Any],
        weights_dir: Path | None,
        *,
        parent: ModelVersion | str | None = None,
        training_run_id: int | None = None,
        metrics: Mapping[str, Any] | None = None,
        note: str | None = None,
    ) -> ModelVersion:
        validate_model_name(name)
        values = {
            "config": _plain_json(config, "config"),
            "metrics": _plain_json(metrics or {}, "metrics"),
            "parent_id": self._parent_id(parent),
            "training_run_id": self._checked_training_run(training_run_id),
            "note": note,
        }
        files = scan_weights(weights_dir) if weights_dir is not None else []
        hashed = hash_files(files)
        version = self._claim(name, hashed)
        prefix = version_prefix(name, version)
        try:
            upload_files(self.store, prefix, files)
        except BaseException:
            self._remove_objects(prefix)
            raise
        return self._insert(name, version, weights_uri=prefix if files else None, values=values)

    def _claim(self, name: str, files: tuple[WeightFile, ...]) -> int:
        """Own the next free version number by writing its manifest first (see the module doc)."""
        candidate = max(self._highest_recorded(name), self._highest_stored(name)) + 1
        for _ in range(CLAIM_ATTEMPTS):
            manifest = WeightsManifest(name, candidate, files)
            try:
                self.store.put(manifest_key(name, candidate), manifest.to_bytes(), overwrite=False)
                return candidate
            except ObjectExistsError:
                candidate += 1  # another registrant (or an orphan of a killed one) holds it
        raise ModelRegistryError(
            f"could not claim a version number for {name!r}: {CLAIM_ATTEMPTS} numbers in a row are taken "
            f"under {MODELS_PREFIX}{name}/ in {self.store.url}; remove orphaned folders there"
        )

    def _highest_recorded(self, name: str) -> int:
        with self.catalog.read() as session:
            return session.scalar(select(func.max(ModelVersionRow.version)).where(ModelVersionRow.name == name)) or 0

    def _highest_stored(self, name: str) -> int:
        """The highest version folder under ``models/NAME/`` (names have no numeric segments)."""
        prefix = f"{MODELS_PREFIX}{name}/"
        numbers = (key[len(prefix) :].split("/", 1)[0] for key in self.store.list(prefix))
        return max((int(n) for n in numbers if n.isdigit()), default=0)

    def _insert(self, name: str, version: int, *, weights_uri: str | None, values: dict[str, Any]) -> ModelVersion:
        """Insert the row; on failure, remove the uploaded objects unless the row landed anyway."""
        prefix = version_prefix(name, version)
        try:
            with self.catalog.write() as session:
                row = ModelVersionRow(name=name, version=version, weights_uri=weights_uri, **values)
                session.add(row)
                session.flush()
                return _load(session, ModelVersionRow.id == row.id)[0]
        except IntegrityError as err:
            self._remove_objects(prefix)
            raise CatalogError(f"the catalog refused {name}@{version}: {_first_line(err)}") from err
        except BaseException as err:
            recorded = self._recorded_despite_error(name, version)
            if recorded is False:
                self._remove_objects(prefix)
            elif recorded and isinstance(err, Exception):
                return self.get(name, version)  # the commit landed, only its answer was lost
            raise

    def _recorded_despite_error(self, name: str, version: int) -> bool | None:
        """Whether a commit that raised landed anyway (a connection lost after COMMIT); None: unknown.

        When unknown, the uploaded objects stay: an orphaned folder is harmless, a recorded
        version without its weights is not.
        """
        try:
            with self.catalog.read() as session:
                found = session.scalar(select(ModelVersionRow.id).where(*_version_is(name, version)))
        except Exception:  # noqa: BLE001 - any failure means "cannot tell"
            return None
        return found is not None

    def _remove_objects(self, prefix: str) -> None:
        """Remove a failed registration's objects, the manifest (the claim on the number) last.

        Were the claim released first, another registrant could take the number and upload
        files that this cleanup would then delete. Best effort: the caller re-raises the
        original error, which matters more.
        """
        claim = prefix + MANIFEST_NAME
        with contextlib.suppress(DataEngineError):
            for key in [k for k in self.store.list(prefix) if k != claim]:
                self.store.delete(key)
            self.store.delete(claim)

    def _parent_id(self, parent: ModelVersion | str | None) -> int | None:
        if parent is None:
            return None
        return self.resolve(parent.ref if isinstance(parent, ModelVersion) else parent).id

    def _checked_training_run(self, training_run_id: int | None) -> int | None:
        if training_run_id is None:
            return None
        with self.catalog.read() as session:
            if session.get(TrainingRunRow, training_run_id) is None:
                raise NotFoundError(f"no training run {training_run_id} in the catalog")
        return training_run_id

    # --- reading ----------------------------------------------------------------------------------

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        parsed = ModelRef.parse(ref)
        with self.catalog.read() as session:
            version_id = _target(session, parsed)
            if version_id is None:
                raise ModelNotFoundError(_missing(session, parsed))
            return _load(session, ModelVersionRow.id == version_id)[0]

    def get(self, name: str, version: int) -> ModelVersion:
        return self.resolve(ModelRef(name, version=version))

    def list(self, name: str | None = None) -> builtins.list[ModelVersion]:
        conditions = [] if name is None else [ModelVersionRow.name == validate_model_name(name)]
        with self.catalog.read() as session:
            return _load(session, *conditions)

    def aliases(self, name: str) -> dict[str, int]:
        validate_model_name(name)
        with self.catalog.read() as session:
            rows = session.execute(
                select(ModelAliasRow.alias, ModelVersionRow.version)
                .join(ModelVersionRow, ModelVersionRow.id == ModelAliasRow.model_version_id)
                .where(ModelAliasRow.name == name)
                .order_by(ModelAliasRow.alias)
            ).all()
        return {alias: version for alias, version in rows}

    # --- aliases ----------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> ModelVersion:
        validate_model_name(name)
        validate_alias(alias)
        with self.catalog.write() as session:
            target = session.scalar(select(ModelVersionRow.id).where(*_version_is(name, version)))
            if target is None:
                raise ModelNotFoundError(_missing(session, ModelRef(name, version=version)))
            _move_alias(session, name, alias, target)
            return _load(session, ModelVersionRow.id == target)[0]

    def rollback(self, name: str, alias: str = CHAMPION) -> ModelVersion:
        validate_model_name(name)
        validate_alias(alias)
        with self.catalog.write() as session:
            previous = _alias_target(session, name, previous_alias(alias))
            if previous is None:
                raise ModelRegistryError(
                    f"nothing to roll back: {name}@{alias} has never moved from one version to another"
                )
            _move_alias(session, name, alias, previous)
            return _load(session, ModelVersionRow.id == previous)[0]

    # --- metrics ----------------------------------------------------------------------------------

    def record_metrics(self, version_id: int, metrics: Mapping[str, Any]) -> ModelVersion:
        new = _plain_json(metrics, "metrics")
        with self.catalog.write() as session:
            row = session.scalars(
                select(ModelVersionRow).where(ModelVersionRow.id == version_id).with_for_update()
            ).one_or_none()
            if row is None:
                raise ModelNotFoundError(f"no model version with id {version_id} in the catalog")
            row.metrics = {**(row.metrics or {}), **new}  # a new dict, so the change is seen
            session.flush()
            return _load(session, ModelVersionRow.id == version_id)[0]

    # --- weights ----------------------------------------------------------------------------------

    def weights_dir(self, version: ModelVersion) -> Path:
        if version.weights_uri is None:
            raise ModelNotFoundError(
                f"{version.ref} was registered without weights (configuration only); build it from "
                "its config, or register a version with a weights folder"
            )
        return self.cache.fetch(self.store, version.weights_uri, self._manifest(version))

    def _manifest(self, version: ModelVersion) -> WeightsManifest:
        key = f"{version.weights_uri}{MANIFEST_NAME}"
        where = f"{key!r} in {self.store.url}"
        try:
            manifest = WeightsManifest.from_bytes(self.store.get(key), where)
        except ObjectNotFoundError as err:
            raise CorruptCheckpointError(
                f"the weights of {version.ref} are missing: no {where}; the object store was emptied or "
                "is not the one this catalog was used with (check object_store_url)"
            ) from err
        if (manifest.name, manifest.version) != (version.name, version.version):
            raise CorruptCheckpointError(
                f"the weights manifest {where} describes {manifest.name}@{manifest.version}, not {version.ref}"
            )
        return manifest


# --- queries --------------------------------------------------------------------------------------


def _version_is(name: str, version: int) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return ModelVersionRow.name == name, ModelVersionRow.version == version


def _target(session: Session, ref: ModelRef) -> int | None:
    """The id of the version ``ref`` names, or None."""
    if ref.version is not None:
        return session.scalar(select(ModelVersionRow.id).where(*_version_is(ref.name, ref.version)))
    if ref.alias == LATEST:
        return _latest(session, ref.name)
    if ref.alias is not None:
        return _alias_target(session, ref.name, ref.alias)
    return _alias_target(session, ref.name, CHAMPION) or _latest_not_refused(session, ref.name)


def _latest(session: Session, name: str) -> int | None:
    return session.scalar(
        select(ModelVersionRow.id)
        .where(ModelVersionRow.name == name)
        .order_by(ModelVersionRow.version.desc())
        .limit(1)
    )


def _latest_not_refused(session: Session, name: str) -> int | None:
    """The newest version the promotion gate did not refuse (a model with no champion yet)."""
    rows = session.execute(
        select(ModelVersionRow.id, ModelVersionRow.metrics)
        .where(ModelVersionRow.name == name)
        .order_by(ModelVersionRow.version.desc())
    )
    return next((version_id for version_id, metrics in rows if not refused_by_gate(metrics)), None)


def _alias_target(session: Session, name: str, alias: str, *, lock: bool = False) -> int | None:
    query = select(ModelAliasRow.model_version_id).where(ModelAliasRow.name == name, ModelAliasRow.alias == alias)
    return session.scalar(query.with_for_update() if lock else query)


def _move_alias(session: Session, name: str, alias: str, target: int) -> None:
    """Point ``alias`` at ``target``; its old target, if another, becomes ``previous-alias``."""
    current = _alias_target(session, name, alias, lock=True)  # serialises movers on PostgreSQL
    if current == target:
        return
    _upsert_alias(session, name, alias, target)
    if current is not None:
        _upsert_alias(session, name, previous_alias(alias), current)


def _upsert_alias(session: Session, name: str, alias: str, version_id: int) -> None:
    """Insert or move one alias in a single statement, so concurrent movers cannot collide."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    statement = insert(ModelAliasRow).values(name=name, alias=alias, model_version_id=version_id, updated_at=now)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[ModelAliasRow.name, ModelAliasRow.alias],
            set_={"model_version_id": version_id, "updated_at": now},
        )
    )


def _load(session: Session, *conditions: ColumnElement[bool]) -> list[ModelVersion]:
    """Versions matching ``conditions``, with their parent's reference and their aliases."""
    parent = aliased(ModelVersionRow)
    rows = session.execute(
        select(ModelVersionRow, parent.name, parent.version)
        .outerjoin(parent, ModelVersionRow.parent_id == parent.id)
        .where(*conditions)
        .order_by(ModelVersionRow.name, ModelVersionRow.version)
    ).all()
    aliases = _aliases_of(session, [row.id for row, _, _ in rows])
    return [
        _version(row, None if parent_name is None else f"{parent_name}@{parent_version}", aliases.get(row.id, ()))
        for row, parent_name, parent_version in rows
    ]


def _aliases_of(session: Session, version_ids: list[int]) -> dict[int, tuple[str, ...]]:
    found: dict[int, list[str]] = {}
    if version_ids:
        rows = session.execute(
            select(ModelAliasRow.model_version_id, ModelAliasRow.alias)
            .where(ModelAliasRow.model_version_id.in_(version_ids))
            .order_by(ModelAliasRow.alias)
        )
        for version_id, alias in rows:
            found.setdefault(version_id, []).append(alias)
    return {version_id: tuple(names) for version_id, names in found.items()}


def _version(row: ModelVersionRow, parent_ref: str | None, aliases: tuple[str, ...]) -> ModelVersion:
    return ModelVersion(
        id=row.id,
        name=row.name,
        version=row.version,
        parent_id=row.parent_id,
        parent_ref=parent_ref,
        config=dict(row.config or {}),
        weights_uri=row.weights_uri,
        training_run_id=row.training_run_id,
        metrics=dict(row.metrics or {}),
        note=row.note,
        created_at=row.created_at,
        aliases=aliases,
    )


def _missing(session: Session, ref: ModelRef) -> str:
    """Why ``ref`` names nothing, and what does exist."""
    names = list(session.scalars(select(ModelVersionRow.name).distinct().order_by(ModelVersionRow.name)))
    if ref.name not in names:
        if not names:
            return f"no model named {ref.name!r}: the registry is empty (register one, or train one)"
        shown = ", ".join(names[:NAMES_SHOWN]) + (", ..." if len(names) > NAMES_SHOWN else "")
        return f"no model named {ref.name!r} in the registry; registered models: {shown}"
    versions = list(
        session.scalars(
            select(ModelVersionRow.version).where(ModelVersionRow.name == ref.name).order_by(ModelVersionRow.version)
        )
    )
    aliases = session.execute(
        select(ModelAliasRow.alias, ModelVersionRow.version)
        .join(ModelVersionRow, ModelVersionRow.id == ModelAliasRow.model_version_id)
        .where(ModelAliasRow.name == ref.name)
        .order_by(ModelAliasRow.alias)
    ).all()
    message = f"no model version {ref}: {ref.name} has versions {_ranges(versions)}"
    if aliases:
        message += "; aliases " + ", ".join(f"@{alias} -> {version}" for alias, version in aliases)
    else:
        message += "; no aliases are set"
    return message + f" (`dataengine models list {ref.name}`)"


def _ranges(numbers: builtins.list[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``1-3, 5``."""
    spans: builtins.list[builtins.list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _plain_json(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A deep copy of ``value`` as plain JSON, or ModelRegistryError saying why it is not JSON.

    Both catalogs store JSON, and PostgreSQL refuses NaN and infinities, so they are refused
    here on every backend alike.
    """
    if not isinstance(value, Mapping):
        raise ModelRegistryError(f"a model version's {what} must be a mapping, not {type(value).__name__}")
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ModelRegistryError(
            f"a model version's {what} must be plain JSON (numbers, strings, lists, objects): {err}"
        ) from err


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__
