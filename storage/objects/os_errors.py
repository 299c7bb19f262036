"""Filesystem failures (OSError) as our ObjectStoreError, with a hint at what to do."""

from __future__ import annotations

import errno

from engine.errors import ObjectStoreError

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


def os_error(action: str, what: str, err: OSError) -> ObjectStoreError:
    """``cannot {action} {what}: {reason}``, plus a hint where the errno has one."""
    reason = err.strerror or str(err)
    return ObjectStoreError(f"cannot {action} {what}: {reason}{_OS_HINTS.get(err.errno or 0, '')}")
