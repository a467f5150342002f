"""Compare-and-swap is refused, clearly, on a server that silently ignores conditional writes.

Some S3-compatible servers drop ``If-None-Match`` / ``If-Match`` and overwrite anyway. We build
one for real: a loopback HTTP proxy that strips those headers in front of a second moto server
(without auth, so the stripped headers do not break request signatures).
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from mlops_onprem.errors import PointerConflictError, StoreCapabilityError
from mlops_onprem.settings import Settings
from mlops_onprem.store.s3 import S3Store
from tests.conftest import free_port

CONDITIONAL_HEADERS = {"if-none-match", "if-match"}


@pytest.fixture(scope="module")
def plain_moto() -> Iterator[int]:
    """A moto server in its own process with default (no) auth."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "INITIAL_NO_AUTH_ACTION_COUNT"}
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/")
            break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("moto server did not start within 60 s")
    yield port
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def header_stripping_proxy(plain_moto: int) -> Iterator[int]:
    """Forwards every request to moto, minus the conditional-write headers."""

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in CONDITIONAL_HEADERS}
            upstream = http.client.HTTPConnection("127.0.0.1", plain_moto, timeout=30)
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def store_at(port: int, bucket: str, tmp_path) -> S3Store:
    return S3Store(Settings(
        _env_file=None, s3_endpoint=f"127.0.0.1:{port}", s3_access_key=SecretStr("plain"),
        s3_secret_key=SecretStr("plain-secret"), s3_secure=False, bucket=bucket,
        s3_region="us-east-1", s3_max_retries=0, data_dir=tmp_path,
    ))


def test_cas_is_refused_when_the_server_ignores_conditional_headers(header_stripping_proxy, tmp_path):
    store = store_at(header_stripping_proxy, "ignores-conditions", tmp_path)
    store.put_bytes("plain/object", b"ordinary writes still work")
    with pytest.raises(StoreCapabilityError, match="create-if-absent, existing key: expected 412"):
        store.write_pointer("models/demo/aliases/champion.json", {"version": 1}, expected_token=None)
    assert not store.exists("models/demo/aliases/champion.json")
    assert list(store.list("control/cas-probe/")) == []  # the probe cleans up after itself


def test_the_same_server_without_the_proxy_supports_cas(plain_moto, tmp_path):
    store = store_at(plain_moto, "honours-conditions", tmp_path)
    first = store.write_pointer("ptr.json", {"v": 1}, expected_token=None)
    with pytest.raises(PointerConflictError):
        store.write_pointer("ptr.json", {"v": 2}, expected_token=None)
    store.write_pointer("ptr.json", {"v": 2}, expected_token=first.token)
    assert store.read_pointer("ptr.json").value == {"v": 2}
