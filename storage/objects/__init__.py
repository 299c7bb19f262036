"""Object stores: a local folder and S3, behind :class:`engine.ports.ObjectStore`.

Both keep the port's promises: keys are validated the same way, every write is atomic (a
reader sees the old object, the new one, or nothing), ``overwrite=False`` is race-free, and
every failure reaches the caller as one of our own errors naming the key and the reason.
:func:`open_object_store` builds the one that ``object_store_url`` names.

Where things live:

- :mod:`storage.objects.keys`: the key and prefix rules every store shares;
- :mod:`storage.objects.atomic_files`: atomic, durable local file writes;
- :mod:`storage.objects.os_errors`: filesystem failures as our errors, with hints;
- :mod:`storage.objects.local`: :class:`LocalObjectStore`;
- :mod:`storage.objects.s3` and :mod:`storage.objects.s3_clients`: :class:`S3ObjectStore`
  and the botocore clients it uses;
- :mod:`storage.objects.factory`: :func:`open_object_store`.
"""

from storage.objects.atomic_files import write_file_atomically
from storage.objects.factory import open_object_store
from storage.objects.keys import (
    MAX_KEY_BYTES,
    MAX_SEGMENT_BYTES,
    TEMP_PREFIX,
    validate_key,
    validate_prefix,
)
from storage.objects.local import COPY_BUFFER_BYTES, LocalObjectStore
from storage.objects.s3 import (
    MIB,
    S3_CHECKSUM,
    S3_DELETE_BATCH,
    S3_MIN_PART_BYTES,
    S3ObjectStore,
)

__all__ = [
    "COPY_BUFFER_BYTES",
    "MAX_KEY_BYTES",
    "MAX_SEGMENT_BYTES",
    "MIB",
    "S3_CHECKSUM",
    "S3_DELETE_BATCH",
    "S3_MIN_PART_BYTES",
    "TEMP_PREFIX",
    "LocalObjectStore",
    "S3ObjectStore",
    "open_object_store",
    "validate_key",
    "validate_prefix",
    "write_file_atomically",
]
