"""Model weight files: uploaded to the object store with a sha256 manifest, cached locally.

A registered version's files live under ``models/NAME/VERSION/`` beside a ``manifest.json``
that lists each file's path, size and sha256. The manifest is written first and without
overwriting, so it doubles as the claim on the version number (see
:mod:`storage.model_registry`).

Readers get the files through :class:`WeightsCache`: a folder per version, downloaded into a
temporary folder, checked against the manifest, then renamed into place, so a half-finished
or damaged download is never mistaken for the model. Once checked, each file's size, mtime
and inode are recorded beside the folder; later look-ups compare those (cheap) and re-hash
only a file that changed, re-downloading the folder if a file no longer matches.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import CorruptCheckpointError, ModelRegistryError, ObjectStoreError
from engine.ports import ObjectStore
from storage.objects import TEMP_PREFIX, validate_key, write_file_atomically

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "dataengine-model-weights/1"
MODELS_PREFIX = "models/"
INSTALL_ATTEMPTS = 3  # a concurrent reader may install or discard the same folder meanwhile


def version_prefix(name: str, version: int) -> str:
    """Where a version's files live in the object store: ``models/NAME/VERSION/``."""
    return f"{MODELS_PREFIX}{name}/{version}/"


def manifest_key(name: str, version: int) -> str:
    return version_prefix(name, version) + MANIFEST_NAME


# --- the manifest -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightFile:
    """One file of a weights folder: its relative ``/``-separated path, size and sha256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class WeightsManifest:
    """What a version's weights folder must contain, byte for byte."""

    name: str
    version: int
    files: tuple[WeightFile, ...]

    def to_bytes(self) -> bytes:
        """Deterministic JSON, so equal manifests have equal digests."""
        document = {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "version": self.version,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        return json.dumps(document, indent=1, sort_keys=True).encode("utf-8")

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> WeightsManifest:
        """Parse a stored manifest; CorruptCheckpointError naming ``where`` if it is not one."""
        try:
            document = json.loads(data)
            if document.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {document.get('format')!r}, expected {MANIFEST_FORMAT!r}")
            files = tuple(_weight_file(entry) for entry in document["files"])
            return cls(str(document["name"]), int(document["version"]), files)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise CorruptCheckpointError(f"the weights manifest {where} is unreadable: {err}") from err


def _weight_file(entry: Any) -> WeightFile:
    size = int(entry["size"])
    sha256 = str(entry["sha256"])
    if size < 0 or len(sha256) != 64:
        raise ValueError(f"bad file entry {entry!r}")
    return WeightFile(str(entry["path"]), size, sha256)


# --- registering: find, hash and upload the files ---------------------------------------------


def scan_weights(directory: Path) -> list[tuple[str, Path]]:
    """Every file under ``directory`` as (relative key path, local path), sorted.

    Refuses what cannot be stored faithfully: a missing or empty folder, a symbolic link to a
    folder, something that is not a regular file, a name the object store cannot hold, and a
    top-level ``manifest.json`` (the registry's own). Symbolic links to files are followed,
    as in a Hugging Face cache snapshot.
    """
    root = Path(directory)
    if not root.is_dir():
        raise ModelRegistryError(f"weights folder {str(root)!r} does not exist or is not a folder")
    found: list[tuple[str, Path]] = []
    for folder, subfolders, names in os.walk(root):
        for sub in subfolders:
            if os.path.islink(os.path.join(folder, sub)):
                raise ModelRegistryError(
                    f"weights folder {str(root)!r} holds a symbolic link to a folder "
                    f"({os.path.join(folder, sub)!r}); copy its contents in instead"
                )
        for filename in names:
            path = Path(folder) / filename
            found.append((_relative_key(root, path), path))
    if not found:
        raise ModelRegistryError(f"weights folder {str(root)!r} holds no files")
    return sorted(found)


def _relative_key(root: Path, path: Path) -> str:
    relative = path.relative_to(root).as_posix()
    if not path.is_file():
        raise ModelRegistryError(f"{str(path)!r} in the weights folder is not a regular file (or a broken link)")
    if relative == MANIFEST_NAME:
        raise ModelRegistryError(
            f"weights folder {str(root)!r} has its own {MANIFEST_NAME}, a name the registry keeps for "
            "its checksums; rename that file"
        )
    try:
        validate_key(f"{MODELS_PREFIX}x/1/{relative}")
    except ObjectStoreError as err:
        raise ModelRegistryError(f"cannot store {str(path)!r}: {err}") from err
    return relative


def hash_files(files: list[tuple[str, Path]]) -> tuple[WeightFile, ...]:
    """Size and sha256 of each file, for the manifest."""
    return tuple(_hash_file(relative, path) for relative, path in files)


def _hash_file(relative: str, path: Path) -> WeightFile:
    try:
        return WeightFile(relative, path.stat().st_size, _sha256(path))
    except OSError as err:
        raise ModelRegistryError(f"cannot read weights file {str(path)!r}: {err.strerror or err}") from err


def _sha256(path: Path) -> str:
    with open(path, "rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def upload_files(store: ObjectStore, prefix: str, files: list[tuple[str, Path]]) -> None:
    for relative, path in files:
        store.put_file(prefix + relative, path)


# --- reading: the local cache -----------------------------------------------------------------


class WeightsCache:
    """Verified local copies of registered weights, one folder per version and manifest.

    Folders are named ``NAME@VERSION-DIGEST`` after the manifest's digest, so two catalogs
    sharing a cache (or a catalog rebuilt over the same store) can never serve each other's
    files under the same name.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()

    def folder(self, manifest: WeightsManifest) -> Path:
        return self.root / f"{manifest.name}@{manifest.version}-{manifest.digest[:16]}"

    def fetch(self, store: ObjectStore, prefix: str, manifest: WeightsManifest) -> Path:
        """The local folder for ``manifest``, downloaded and checked if need be."""
        final = self.folder(manifest)
        try:
            for _ in range(INSTALL_ATTEMPTS):
                if final.is_dir():
                    if self._intact(final, manifest):
                        return final
                    self._discard(final)
                staged = self._download(store, prefix, manifest)
                if self._install(staged, final):
                    self._write_stamps(final, manifest)
                    return final
        except OSError as err:
            raise ModelRegistryError(
                f"cannot prepare the local copy of {manifest.name}@{manifest.version} in {str(self.root)!r}: "
                f"{err.strerror or err}; check that the model cache folder is writable and has space"
            ) from err
        raise ModelRegistryError(
            f"the local copy of {manifest.name}@{manifest.version} at {str(final)!r} kept changing while it "
            "was being installed; another process may be deleting it"
        )

    # -- checking --

    def _intact(self, folder: Path, manifest: WeightsManifest) -> bool:
        """Whether every listed file is there with the manifest's content (stamps spare re-hashing)."""
        stamps = self._read_stamps(folder)
        rehashed = False
        for entry in manifest.files:
            try:
                stat = (folder / entry.path).stat()
            except FileNotFoundError:
                return False
            if stat.st_size != entry.size:
                return False
            if stamps.get(entry.path) == _stamp(stat):
                continue
            if _sha256(folder / entry.path) != entry.sha256:
                return False
            rehashed = True
        if rehashed:
            self._write_stamps(folder, manifest)
        return True

    def _stamps_path(self, folder: Path) -> Path:
        return folder.with_name(folder.name + ".stamps.json")

    def _read_stamps(self, folder: Path) -> dict[str, list[int]]:
        try:
            stamps = json.loads(self._stamps_path(folder).read_bytes())
        except (OSError, ValueError):
            return {}  # no stamps yet (or damaged): the files get hashed instead
        return stamps if isinstance(stamps, dict) else {}

    def _write_stamps(self, folder: Path, manifest: WeightsManifest) -> None:
        stamps = {entry.path: _stamp((folder / entry.path).stat()) for entry in manifest.files}
        data = json.dumps(stamps, sort_keys=True).encode("utf-8")
        write_file_atomically(self._stamps_path(folder), lambda out: out.write(data))

    # -- downloading and installing --

    def _download(self, store: ObjectStore, prefix: str, manifest: WeightsManifest) -> Path:
        """Download every file into a fresh temporary folder and check it; the folder's path."""
        staged = self.root / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        staged.mkdir(parents=True)
        try:
            for entry in manifest.files:
                local = staged / entry.path
                local.parent.mkdir(parents=True, exist_ok=True)
                store.get_file(prefix + entry.path, local)
                _check_download(store, prefix, manifest, entry, local)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        return staged

    def _install(self, staged: Path, final: Path) -> bool:
        """Rename ``staged`` to ``final``; False (and ``staged`` removed) if another got there first."""
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staged, final)
            return True
        except OSError as err:
            shutil.rmtree(staged, ignore_errors=True)
            if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return False
            raise

    def _discard(self, folder: Path) -> None:
        """Move a damaged folder out of the way (one rename, so readers never see it half-deleted)."""
        aside = self.root / f"{TEMP_PREFIX}stale-{secrets.token_hex(8)}"
        try:
            os.rename(folder, aside)
        except FileNotFoundError:
            return  # another process discarded it already
        with contextlib.suppress(FileNotFoundError):
            self._stamps_path(folder).unlink()
        shutil.rmtree(aside, ignore_errors=True)


def _stamp(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def _check_download(store: ObjectStore, prefix: str, manifest: WeightsManifest, entry: WeightFile, local: Path) -> None:
    """A freshly downloaded file must match the manifest; if not, the stored copy is damaged."""
    size, digest = local.stat().st_size, _sha256(local)
    if size == entry.size and digest == entry.sha256:
        return
    raise CorruptCheckpointError(
        f"the stored copy of {manifest.name}@{manifest.version}'s {entry.path!r} "
        f"({prefix + entry.path} in {store.url}) does not match its manifest "
        f"({size} bytes, sha256 {digest[:12]}..., expected {entry.size} bytes, sha256 {entry.sha256[:12]}...); "
        "the object store's copy is damaged: register the model again from its original files"
    )
