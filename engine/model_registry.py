"""Model versions and the registry that names them: ``sam2-compact@champion`` -> weights.

Phases never hold a model of their own: before each task they ask the registry to
:meth:`~ModelRegistry.resolve` a reference and fetch its :meth:`~ModelRegistry.weights_dir`,
so a model promoted to ``champion`` is picked up by the next task without a restart.

A reference is a model name with an optional selector after ``@``:

- ``sam2-compact``: the champion if one is set, else the newest version the promotion gate did
  not refuse (what phases use: a version the gate judged worse than what ran before is never
  picked up by default);
- ``sam2-compact@3``: version 3;
- ``sam2-compact@latest``: the newest version, champion or not (to evaluate a new candidate);
- ``sam2-compact@champion``: whatever version an alias points at.

Names are letters, digits, ``.``, ``_`` and ``-`` in ``/``-separated segments, so Hugging Face
hub names such as ``facebook/sam2.1-hiera-tiny`` are names too. A segment may not be a bare
number: version folders are numbers (``models/NAME/3/``), and ``facebook/3`` would put one
model's files inside another's.

This module is pure: parsing, records and the port. ``storage.model_registry`` implements it
on the catalog and the object store.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from engine.errors import BadModelRefError

CHAMPION = "champion"
LATEST = "latest"  # a selector, never a stored alias
PREVIOUS_PREFIX = "previous-"  # "previous-champion": kept by the registry so a promotion can be undone
MAX_NAME_CHARS = 128  # model_versions.name
MAX_ALIAS_CHARS = 64  # model_aliases.alias
PROMOTION_KEY = "promotion"  # where the promotion gate records its decision in a version's metrics

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*$")
_NAME_EXAMPLES = "'sam2-compact' or 'facebook/sam2.1-hiera-tiny'"
_REF_FORMS = "NAME, NAME@VERSION, NAME@ALIAS or NAME@latest (e.g. 'sam2-compact@champion')"


def validate_model_name(name: str) -> str:
    """Return ``name`` if it can name a model, else raise BadModelRefError saying why."""
    problem = _name_problem(name)
    if problem is not None:
        raise BadModelRefError(f"invalid model name {name!r}: {problem}; names look like {_NAME_EXAMPLES}")
    return name


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return "it is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"it is longer than {MAX_NAME_CHARS} characters"
    for segment in name.split("/"):
        if not segment:
            return "it has an empty '/'-separated segment"
        if not _SEGMENT.match(segment):
            return (
                f"segment {segment!r} must start with a letter or digit and hold only letters, "
                "digits, '.', '_' and '-'"
            )
        if segment.isdigit():
            return f"segment {segment!r} is a bare number, which would clash with version numbers"
    return None


def validate_alias(alias: str, *, settable: bool = True) -> str:
    """Return ``alias`` if it can be an alias, else raise BadModelRefError.

    With ``settable`` (the default) the registry's own ``previous-*`` aliases are refused too:
    only the registry moves them, when the alias they shadow moves.
    """
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise BadModelRefError(
            f"invalid alias {alias!r}: an alias starts with a letter and holds only letters, "
            "digits, '.', '_' and '-' (e.g. 'champion')"
        )
    if len(alias) > MAX_ALIAS_CHARS:
        raise BadModelRefError(f"invalid alias {alias!r}: it is longer than {MAX_ALIAS_CHARS} characters")
    if alias == LATEST:
        raise BadModelRefError(f"{LATEST!r} is not an alias: it always means the newest version")
    if settable and alias.startswith(PREVIOUS_PREFIX):
        raise BadModelRefError(
            f"aliases starting with {PREVIOUS_PREFIX!r} are kept by the registry (they record where "
            "an alias pointed before it last moved); choose another name"
        )
    return alias


def previous_alias(alias: str) -> str:
    """The alias that remembers where ``alias`` pointed before it last moved."""
    return PREVIOUS_PREFIX + alias


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: a name and at most one of version number or alias.

    ``alias == LATEST`` asks for the newest version; neither version nor alias asks for the
    default (champion, else newest).
    """

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        validate_model_name(self.name)
        if self.version is not None and self.alias is not None:
            raise BadModelRefError(f"a model reference has a version or an alias, not both: {self.name}")
        if self.version is not None and (isinstance(self.version, bool) or self.version < 1):
            raise BadModelRefError(f"model versions are numbered from 1, not {self.version}")
        if self.alias is not None and self.alias != LATEST:
            validate_alias(self.alias, settable=False)

    @classmethod
    def parse(cls, text: str | ModelRef) -> ModelRef:
        """Parse ``NAME``, ``NAME@VERSION``, ``NAME@ALIAS`` or ``NAME@latest``."""
        if isinstance(text, ModelRef):
            return text
        if not isinstance(text, str) or not text.strip():
            raise BadModelRefError(f"empty model reference; expected {_REF_FORMS}")
        name, at, selector = text.strip().partition("@")
        if not at:
            return cls(validate_model_name(name))
        if not name or not selector or "@" in selector:
            raise BadModelRefError(f"invalid model reference {text!r}; expected {_REF_FORMS}")
        if selector.isdigit():
            return cls(name, version=int(selector))
        return cls(name, alias=selector)

    @property
    def is_default(self) -> bool:
        """True for a bare name: the champion if there is one, else the newest version not refused."""
        return self.version is None and self.alias is None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def refused_by_gate(metrics: Mapping[str, Any] | None) -> bool:
    """Whether a version's metrics record that the promotion gate judged it and did not promote it."""
    decision = (metrics or {}).get(PROMOTION_KEY)
    return isinstance(decision, dict) and decision.get("promoted") is False


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model: lineage, configuration, weights and evaluation."""

    id: int  # the catalog's id, what masklets and other records point at
    name: str
    version: int  # 1, 2, ... per name
    parent_id: int | None  # the version it was trained from (None: from scratch or a hub checkpoint)
    parent_ref: str | None  # the parent as "name@version", for people
    config: dict[str, Any]  # the model's configuration (a transformers config.json, as a dict)
    # Key prefix of the weights in the installation's object store ("models/sam2-compact/3/"),
    # relative like frames' object keys; None when registered without weights.
    weights_uri: str | None
    training_run_id: int | None
    metrics: dict[str, Any]  # evaluation results, merged by record_metrics ("val_jf": 0.71, ...)
    note: str | None
    created_at: datetime
    aliases: tuple[str, ...] = field(default=())  # the aliases pointing here now, sorted

    @property
    def ref(self) -> str:
        """This exact version as a reference, ``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def has_weights(self) -> bool:
        return self.weights_uri is not None


@runtime_checkable
class ModelRegistry(Protocol):
    """The port through which phases and training find, register and promote models."""

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
        """Record a new version of ``name`` (numbered next), with the files of ``weights_dir``.

        The weights are stored before the version is recorded, so a recorded version always
        has them; on failure nothing is recorded. ``parent`` is a version or a reference.
        """
        ...

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """The version a reference names; ModelNotFoundError (saying what exists) if none."""
        ...

    def get(self, name: str, version: int) -> ModelVersion:
        ...

    def list(self, name: str | None = None) -> builtins.list[ModelVersion]:
        """Every version (of ``name``, or of all models), by name then version."""
        ...

    def set_alias(self, name: str, alias: str, version: int) -> ModelVersion:
        """Point ``name@alias`` at ``version`` (atomically); the old target becomes ``previous-alias``."""
        ...

    def aliases(self, name: str) -> dict[str, int]:
        """Alias -> version number, for one model."""
        ...

    def rollback(self, name: str, alias: str = CHAMPION) -> ModelVersion:
        """Swap ``alias`` and ``previous-alias``: undo the last move of ``alias``."""
        ...

    def record_metrics(self, version_id: int, metrics: Mapping[str, Any]) -> ModelVersion:
        """Merge ``metrics`` into a version's metrics (new keys added, same keys replaced)."""
        ...

    def weights_dir(self, version: ModelVersion) -> Path:
        """A local folder holding the version's weight files, verified against their manifest."""
        ...


def promote(registry: ModelRegistry, ref: str | ModelRef, alias: str = CHAMPION) -> ModelVersion:
    """Point ``alias`` (the champion by default) at the version ``ref`` names."""
    version = registry.resolve(ref)
    return registry.set_alias(version.name, alias, version.version)
