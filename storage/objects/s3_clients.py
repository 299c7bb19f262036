"""The botocore clients and s3transfer managers an S3ObjectStore talks to S3 through.

Retries, timeouts, checksums and path-style addressing are configured here, and so is the
``If-None-Match: *`` hook that makes ``overwrite=False`` writes race-free.
"""

from __future__ import annotations

import functools
from typing import Any

import botocore.session
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError
from botocore.loaders import Loader, create_loader
from s3transfer.manager import TransferManager

from engine.errors import ConfigError


def make_clients(
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


def make_transfer_config(multipart_threshold_bytes: int) -> TransferConfig:
    return TransferConfig(
        multipart_threshold=multipart_threshold_bytes,
        multipart_chunksize=multipart_threshold_bytes,
        # the CRT client would bypass the event hook that adds If-None-Match
        preferred_transfer_client="classic",
    )


def open_transfer_manager(client: BaseClient, config: TransferConfig) -> TransferManager:
    # The manager itself, not client.upload_file: that one flattens S3's error into a
    # string (S3UploadFailedError), losing the code that tells 412 from the rest.
    return create_transfer_manager(client, config)
