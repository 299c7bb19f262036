"""Atomic, durable writes of local files: readers see the old file, the new one, or none.

A fsynced temporary file beside the destination, renamed (or hard-linked) into place, with
every new folder and rename fsynced too, so a crash or power cut never leaves a partial file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from storage.objects.keys import TEMP_PREFIX


def fsync_dir(directory: Path) -> None:
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
        fsync_dir(path.parent)


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
    fsync_dir(dest.parent)
