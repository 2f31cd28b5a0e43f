"""A real S3 endpoint for the tests: moto's server on 127.0.0.1, with boto3 configured for it through the environment
only (dummy credentials, AWS_ENDPOINT_URL), as a user would configure an S3-compatible store."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

BUCKET = "mlspec-state"


class _OneAtATime:
    """Serve one request at a time. S3 decides a conditional write atomically; moto checks If-None-Match, then writes,
    and its threads could interleave between the two, which S3 never does. The lock's race is ours to prove, not
    moto's, so moto is made as atomic as the store it stands for."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app, self.lock = app, threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.lock:
            return list(self.app(environ, start_response))


def _start() -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    assert server._server is not None
    server._server.app = _OneAtATime(server._server.app)
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server for the module, with the bucket `mlspec-state` made."""
    import boto3

    server, url = _start()
    try:
        boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
        yield url
    finally:
        server.stop()


def s3_environment(endpoint: str) -> dict[str, str]:
    """What a user sets for an S3-compatible store: credentials, region, endpoint; no profile or config file."""
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint, "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE":
            "/nonexistent"}


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """boto3 configured for the moto server in this process's environment; a fresh prefix of the bucket."""
    for key, value in s3_environment(s3_endpoint).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"
