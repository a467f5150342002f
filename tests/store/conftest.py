"""The loopback servers of the conditional-write tests: moto without auth in its own process, and
a proxy in front of it that silently drops ``If-None-Match`` / ``If-Match`` (as some S3-compatible
servers do)."""

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

from tests.fixtures.servers import free_port

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
