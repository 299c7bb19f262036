"""Pytest plugin: a real S3 server (moto) on loopback, and a proxy that injects 5xx answers.

Tests that use S3 talk HTTP to a server, not to a mocked boto3, so retries, checksums,
conditional writes and multipart uploads go through the same code paths as on AWS.
Listed in the root conftest's ``pytest_plugins``.
"""

from __future__ import annotations

import http.client
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config

from storage.objects import MIB, S3ObjectStore

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # never let a developer's ~/.aws (a profile, a region, an endpoint) leak into the tests
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
SERVER_START_TIMEOUT_S = 10.0
TEST_PREFIX = "test-run"  # every s3_store writes under a prefix, as deployments usually do


def _skip_or_fail(reason: str) -> None:
    """Skip locally; under CI (``CI`` set) a missing server is a failure, not a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must have it)")
    pytest.skip(reason)


def _start_moto() -> Any:
    """Start moto's threaded server on a free loopback port, or skip saying why."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as err:
        _skip_or_fail(f"moto's S3 server is not installed ({err}); pip install 'moto[server]'")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    # start() waits forever if the server thread dies before it listens, so bound it
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(SERVER_START_TIMEOUT_S)
    if starter.is_alive():
        _skip_or_fail(f"moto's S3 server did not start on 127.0.0.1 within {SERVER_START_TIMEOUT_S}s")
    return server


def _use_fake_aws_env(env: pytest.MonkeyPatch) -> None:
    for name, value in FAKE_AWS_ENV.items():
        env.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        env.delenv(name, raising=False)


@pytest.fixture
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, for tests whose S3 client must sign requests but has no server."""
    _use_fake_aws_env(monkeypatch)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server on 127.0.0.1, with fake credentials in the env."""
    with pytest.MonkeyPatch.context() as env:
        _use_fake_aws_env(env)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request
        server = _start_moto()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="session")
def s3_admin(s3_server: str) -> Any:
    """A plain boto3 client on the test server, for setting up and inspecting buckets."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "total_max_attempts": 2}),
    )


@pytest.fixture
def s3_bucket(s3_admin: Any) -> Iterator[str]:
    """A fresh, empty bucket for one test, emptied and removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3_admin.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        _remove_bucket(s3_admin, name)


def _remove_bucket(client: Any, bucket: str) -> None:
    # moto keeps objects in memory for the whole session: free the large ones
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


def make_s3_store(endpoint_url: str, bucket: str, **overrides: Any) -> S3ObjectStore:
    """An S3ObjectStore with test-friendly defaults (few attempts, S3's smallest parts)."""
    options: dict[str, Any] = {
        "endpoint_url": endpoint_url,
        "max_attempts": 3,
        "multipart_threshold_bytes": 5 * MIB,
        "connect_timeout_s": 2.0,
        "read_timeout_s": 10.0,
    }
    options.update(overrides)
    return S3ObjectStore(bucket, TEST_PREFIX, **options)


@pytest.fixture
def s3_store(s3_server: str, s3_bucket: str) -> S3ObjectStore:
    """An S3ObjectStore on a fresh bucket, writing under a key prefix."""
    return make_s3_store(s3_server, s3_bucket)


# --- fault injection --------------------------------------------------------------------------


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te"}
_SET_BY_PROXY = {"content-length", "date", "server"}  # BaseHTTPRequestHandler writes its own
_FAULT_CODES = {500: "InternalError", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}


class FaultyProxy:
    """An HTTP proxy on loopback that forwards to an S3 server, failing requests on demand.

    ``fail_next(503, 500)`` answers the next two requests with those statuses (and an S3
    error body) without forwarding them; every other request passes through untouched. It
    shows that the client really retries 5xx answers, and what happens when it stops.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.requests = 0  # every request received, failed or forwarded
        self.faults_sent = 0
        self._pending: list[int] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    def fail_next(self, *statuses: int) -> None:
        """Answer the next ``len(statuses)`` requests with these HTTP statuses, in order."""
        with self._lock:
            self._pending.extend(statuses)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _next_fault(self) -> int | None:
        with self._lock:
            self.requests += 1
            if not self._pending:
                return None
            self.faults_sent += 1
            return self._pending.pop(0)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue for large PUTs

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                pass

            def _handle(self) -> None:
                body = self._read_body()
                status = proxy._next_fault()
                if status is None:
                    self._forward(body)
                else:
                    self._fail(status)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    return self._read_chunked()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _read_chunked(self) -> bytes:
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()

            def _forward(self, body: bytes) -> None:
                upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
                try:
                    upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for name, value in self.headers.items():
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                            upstream.putheader(name, value)
                    upstream.putheader("Content-Length", str(len(body)))
                    upstream.endheaders(body)
                    response = upstream.getresponse()
                    payload = response.read()
                    self.send_response(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() not in _HOP_BY_HOP | _SET_BY_PROXY:
                            self.send_header(name, value)
                    length = response.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", length or str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    upstream.close()

            def _fail(self, status: int) -> None:
                code = _FAULT_CODES.get(status, "InternalError")
                payload = (
                    f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                    f"<Message>injected by the test proxy</Message></Error>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

        return Handler


@pytest.fixture
def faulty_proxy(s3_server: str) -> Iterator[FaultyProxy]:
    """A FaultyProxy in front of the moto server; point a store's endpoint at ``proxy.url``."""
    proxy = FaultyProxy(s3_server)
    try:
        yield proxy
    finally:
        proxy.close()

