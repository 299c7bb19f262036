"""LocalObjectStore: objects as files under a folder, behind :class:`engine.ports.ObjectStore`."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from engine.errors import ObjectExistsError, ObjectNotFoundError
from storage.objects.atomic_files import fsync_dir, write_file_atomically
from storage.objects.keys import TEMP_PREFIX, validate_key, validate_prefix
from storage.objects.os_errors import os_error

COPY_BUFFER_BYTES = 1024 * 1024


def _could_extend(candidate: str, prefix: str) -> bool:
    """Whether keys under the folder ``candidate`` (ending in '/') can start with ``prefix``."""
    return candidate.startswith(prefix) or prefix.startswith(candidate)


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
            raise os_error("read", f"source file {str(path)!r} for {key!r}", err) from err
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
                raise os_error("write", self._describe(key), conflict) from err
            raise ObjectExistsError(
                f"{self._describe(key)} already exists and overwrite=False"
            ) from err
        except OSError as err:
            raise os_error("write", self._describe(key), err) from err

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
            raise ObjectNotFoundError(f"no {self._describe(key)}") from err
        except OSError as err:
            raise os_error("read", self._describe(key), err) from err

    def get_file(self, key: str, path: Path) -> None:
        source_path = self._path(key)
        try:
            source = open(source_path, "rb")  # noqa: SIM115 - closed below, after the copy
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
            raise ObjectNotFoundError(f"no {self._describe(key)}") from err
        except OSError as err:
            raise os_error("read", self._describe(key), err) from err
        with source:
            try:
                write_file_atomically(
                    Path(path), lambda out: shutil.copyfileobj(source, out, COPY_BUFFER_BYTES)
                )
            except OSError as err:
                raise os_error("copy", f"{self._describe(key)} to {str(path)!r}", err) from err

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
            raise os_error("delete", self._describe(key), err) from err
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
            fsync_dir(directory)

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
            raise os_error("list", f"{str(directory)!r} in {self.url}", err) from err
        return sorted(entries, key=lambda pair: pair[0])
