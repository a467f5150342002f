"""No store error carries a credential or a signature, whatever the endpoint answers.

A real loopback server plays the endpoint. It answers every request by echoing the request
(request line, headers with ``Authorization: AWS4-HMAC-SHA256 Credential=<access key>/...,
Signature=...``, body) back as the response body: as plain text, inside an HTML page, as
broken XML, and inside well-formed S3 error XML (the message field, and the extra fields AWS
puts in a SignatureDoesNotMatch reply). The access key, the secret key and every signature the
server saw must appear nowhere in the exception's text, repr or formatted traceback.
"""

from __future__ import annotations

import html
import re
import threading
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from mlops_onprem.errors import StoreError
from mlops_onprem.settings import Settings
from mlops_onprem.store.s3 import S3Store, reply_excerpt

ACCESS_KEY = "AKIAECHOCANARY0000001"
SECRET_KEY = "echo-secret-canary-0123456789"
BUCKET = "echoed"


def _echo_replies(echo: str) -> dict[str, tuple[int, str, str]]:
    """What the server sends back, by style: (status, content type, body)."""
    escaped = html.escape(echo)
    return {
        "plain": (400, "text/plain", echo),
        "html": (403, "text/html", f"<html><head><title>Request rejected</title></head>"
                                   f"<body><h1>Echo</h1><pre>{escaped}</pre></body></html>"),
        "broken-xml": (400, "application/xml", echo),
        "s3-message": (400, "application/xml",
                       f"<Error><Code>InvalidArgument</Code><Message>{escaped}</Message></Error>"),
        "s3-signature": (403, "application/xml",
                         f"<Error><Code>SignatureDoesNotMatch</Code><Message>{escaped}</Message>"
                         f"<AWSAccessKeyId>{ACCESS_KEY}</AWSAccessKeyId>"
                         f"<StringToSign>{escaped}</StringToSign>"
                         f"<SignatureProvided>{escaped}</SignatureProvided></Error>"),
        "s3-no-code": (400, "application/xml", f"<Reply><Echo>{escaped}</Echo></Reply>"),
    }


class EchoServer:
    def __init__(self) -> None:
        self.style = "plain"
        self.signatures: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _echo(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                auth = self.headers.get("Authorization", "")
                server.signatures.update(re.findall(r"Signature=([0-9a-f]+)", auth))
                if self.command == "HEAD":  # the bucket exists; objects are "refused", no body
                    self.send_response(200 if self.path.rstrip("/") == f"/{BUCKET}" else 403)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                echo = f"{self.requestline}\n{self.headers}\n{body}"
                status, content_type, reply = _echo_replies(echo)[server.style]
                data = reply.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _echo

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]


@pytest.fixture(scope="module")
def echo_server() -> Iterator[EchoServer]:
    echo = EchoServer()
    threading.Thread(target=echo.server.serve_forever, daemon=True).start()
    yield echo
    echo.server.shutdown()
    echo.server.server_close()


@pytest.fixture
def echoed_store(echo_server, tmp_path) -> S3Store:
    return S3Store(Settings(
        _env_file=None, s3_endpoint=f"127.0.0.1:{echo_server.port}", s3_access_key=SecretStr(ACCESS_KEY),
        s3_secret_key=SecretStr(SECRET_KEY), s3_secure=False, bucket=BUCKET, s3_region="us-east-1",
        s3_max_retries=0, s3_connect_timeout_s=2.0, s3_read_timeout_s=5.0, data_dir=tmp_path,
    ))


OPERATIONS: dict[str, Callable[[S3Store], object]] = {
    "put_bytes": lambda store: store.put_bytes("a/b.bin", b"payload"),
    "get_bytes": lambda store: store.get_bytes("a/b.bin"),
    "list": lambda store: list(store.list("a/")),
    "delete": lambda store: store.delete("a/b.bin"),
    "write_pointer": lambda store: store.write_pointer("p.json", {"v": 1}, expected_token=None),
    "stat": lambda store: store.stat("a/b.bin"),
}
NOT_S3 = {"plain", "html", "broken-xml", "s3-no-code"}


def _everything_about(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


@pytest.mark.parametrize("style", sorted(_echo_replies("")))
def test_no_store_error_shows_the_access_key_or_a_signature(echo_server, echoed_store, style):
    echo_server.style = style
    echo_server.signatures.clear()
    for name, operation in OPERATIONS.items():
        with pytest.raises(StoreError) as info:
            operation(echoed_store)
        text = _everything_about(info.value)
        assert echo_server.signatures, "the server saw no signed request"
        leaked = [s for s in (ACCESS_KEY, SECRET_KEY, *echo_server.signatures) if s in text]
        assert not leaked, f"{name} ({style}): {info.value}"
        assert "Credential=" not in text and "Signature=" not in text, f"{name} ({style}): {info.value}"
        assert info.value.__context__ is None and info.value.__cause__ is None
        assert len(str(info.value)) < 700, f"{name} ({style}): the excerpt is not bounded"
        if style in NOT_S3 and name != "stat":
            assert "did not answer like S3" in str(info.value), f"{name} ({style}): {info.value}"


def test_a_non_s3_reply_is_named_with_its_status_and_a_short_excerpt(echo_server, echoed_store):
    echo_server.style = "html"
    with pytest.raises(StoreError) as info:
        echoed_store.put_bytes("a/b.bin", b"payload")
    message = str(info.value)
    assert "HTTP 403" in message and "text/html" in message
    assert "Request rejected" in message  # the page's title says what the endpoint is
    assert "is MLOPS_S3_ENDPOINT an S3 server?" in message


def test_reply_excerpt_drops_headers_and_signing_material_and_is_bounded():
    reply = ("PUT /b/k HTTP/1.1\nHost: x\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIA1/2026/"
             "us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc123\n"
             "X-Amz-Security-Token: tok\n?X-Amz-Credential=AKIA2&X-Amz-Signature=def456 "
             "Credential=AKIA3/x Signature=0f0f " + "y" * 500)
    excerpt = reply_excerpt(reply, secrets=("y" * 3,))
    for secret in ("AKIA1", "AKIA2", "AKIA3", "abc123", "def456", "0f0f", "tok", "yyy"):
        assert secret not in excerpt, excerpt
    assert excerpt.startswith("PUT /b/k HTTP/1.1") and len(excerpt) <= 160
