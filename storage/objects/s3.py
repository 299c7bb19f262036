"""S3ObjectStore: objects in an S3 bucket, behind :class:`engine.ports.ObjectStore`.

Keeps the port's promises on S3 (and MinIO, moto): bounded retries, checksums, multipart
uploads, race-free ``overwrite=False``, and every botocore failure turned into our own error.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError
from s3transfer.exceptions import RetriesExceededError

from engine.errors import ConfigError, ObjectExistsError, ObjectNotFoundError, ObjectStoreError
from storage.objects.atomic_files import write_file_atomically
from storage.objects.keys import key_problem, validate_key, validate_prefix
from storage.objects.os_errors import os_error
from storage.objects.s3_clients import make_clients, make_transfer_config, open_transfer_manager

MIB = 1024 * 1024
S3_MIN_PART_BYTES = 5 * MIB  # S3 refuses smaller parts (except the last)
S3_DELETE_BATCH = 1000  # most keys one DeleteObjects call accepts
S3_CHECKSUM = "CRC32"  # cheap, and computed by botocore without reading the data twice

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


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
        self._client, self._create_only_client = make_clients(
            endpoint_url, region, max_attempts, connect_timeout_s, read_timeout_s
        )
        self._transfer_config = make_transfer_config(multipart_threshold_bytes)
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
        with self._errors("upload", key), open_transfer_manager(client, self._transfer_config) as manager:
            try:
                manager.upload(
                    str(path), self.bucket, full_key, extra_args={"ChecksumAlgorithm": S3_CHECKSUM}
                ).result()
            except OSError as err:
                raise os_error("read", f"source file {str(path)!r} for {key!r}", err) from err

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
            with open_transfer_manager(self._client, self._transfer_config) as manager:
                manager.download(
                    self.bucket, full_key, out, extra_args={"ChecksumMode": "ENABLED"}
                ).result()

        with self._errors("download", key):
            try:
                write_file_atomically(Path(path), download)
            except OSError as err:
                raise os_error("copy", f"{self._describe(key)} to {str(path)!r}", err) from err

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
    problem = key_problem(stripped) if stripped else None
    if problem is not None:
        raise ConfigError(f"invalid S3 key prefix {prefix!r}: {problem}")
    return stripped


def _attempts(count: int) -> str:
    return "on the only attempt allowed" if count == 1 else f"after {count} attempts"


def _status(err: ClientError) -> int | None:
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status is None:
        code = str(err.response.get("Error", {}).get("Code", ""))
        return int(code) if code.isdigit() else None
    return int(status)
