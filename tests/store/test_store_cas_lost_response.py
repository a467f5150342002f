"""A conditional write that committed is reported as won, even when its response is lost.

A real loopback HTTP proxy sits in front of the session's moto server (auth on: the proxy
forwards the signed request unchanged, Host header included). On request it misbehaves once
for one pointer key:

- ``drop``: forwards the conditional PUT (the server commits it), then closes the connection
  without any response, as a crashed load balancer or a cut link would;
- ``replay``: forwards the PUT twice and answers with the second reply (a 412), as a retrying
  middlebox would: the first delivery committed, the second meets its own write;
- ``kill_before``: closes the connection before forwarding (nothing reached the server).

Before the fix, the HTTP client retried the PUT and the 412 became a PointerConflictError: a
promotion that moved the champion was recorded as a conflict, a retrain claim was refused.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops_onprem import registry, retrain_control
from mlops_onprem.errors import PointerConflictError
from mlops_onprem.store.s3 import S3Store
from tests.fixtures.servers import s3_settings_for

CONDITIONAL = ("if-none-match", "if-match")
HOP_BY_HOP = ("transfer-encoding", "connection", "content-length", "keep-alive")


class MisbehavingProxy:
    """Loopback proxy to the moto server that misbehaves once for one key's conditional PUT."""

    def __init__(self, upstream_port: int) -> None:
        self.mode: str | None = None
        self.key_suffix = ""
        self.conditional_puts: list[str] = []  # paths of conditional PUTs the proxy received
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conditional = self.command == "PUT" and any(h in self.headers for h in CONDITIONAL)
                mode = None
                if conditional:
                    with proxy.lock:
                        proxy.conditional_puts.append(self.path)
                        if proxy.mode and self.path.endswith(proxy.key_suffix):
                            mode, proxy.mode = proxy.mode, None  # once
                if mode == "kill_before":
                    self.close_connection = True
                    return
                status, headers, data = self._upstream(body)
                if mode == "replay":
                    status, headers, data = self._upstream(body)
                if mode == "drop":
                    self.close_connection = True  # the write committed; its reply never comes
                    return
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _upstream(self, body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
                connection = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                try:
                    # the Host header is forwarded as signed, so moto's signature check passes
                    connection.request(self.command, self.path, body=body, headers=dict(self.headers))
                    response = connection.getresponse()
                    return response.status, response.getheaders(), response.read()
                finally:
                    connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def misbehave_once(self, mode: str, key: str) -> None:
        with self.lock:
            self.mode, self.key_suffix = mode, "/" + key
            self.conditional_puts.clear()

    def puts_for(self, key: str) -> int:
        with self.lock:
            return sum(1 for path in self.conditional_puts if path.endswith("/" + key))


@pytest.fixture(scope="module")
def proxy(moto_server) -> Iterator[MisbehavingProxy]:
    p = MisbehavingProxy(moto_server.port)
    thread = threading.Thread(target=p.server.serve_forever, daemon=True)
    thread.start()
    yield p
    p.server.shutdown()
    p.server.server_close()


@pytest.fixture
def proxied(proxy, moto_server, s3_bucket, tmp_path) -> S3Store:
    """A store that talks to moto through the proxy (2 retries: the old code retried the PUT)."""
    return S3Store(s3_settings_for(moto_server, s3_bucket, s3_endpoint=f"127.0.0.1:{proxy.port}",
                                   s3_max_retries=2, s3_read_timeout_s=5.0, data_dir=tmp_path))


@pytest.fixture
def direct(moto_server, s3_bucket, tmp_path) -> S3Store:
    """Another writer on the same bucket, straight to moto."""
    return S3Store(s3_settings_for(moto_server, s3_bucket, data_dir=tmp_path))


KEY = "models/demo/aliases/champion.json"


@pytest.mark.parametrize("mode", ["drop", "replay"])
def test_a_create_only_write_whose_response_is_lost_is_reported_as_won(proxied, direct, proxy, mode):
    proxied.put_bytes("warm/up", b"x")  # bucket created, CAS probed: only the pointer misbehaves
    proxied.write_pointer("control/probe-warmup.json", {"warm": True}, expected_token=None)
    proxy.misbehave_once(mode, KEY)
    pointer = proxied.write_pointer(KEY, {"version": 1}, expected_token=None)
    assert pointer.value == {"version": 1}
    stored = direct.read_pointer(KEY)
    assert stored.value == {"version": 1} and stored.token == pointer.token
    assert proxy.puts_for(KEY) == 1  # the conditional PUT was not retried by the HTTP layer


@pytest.mark.parametrize("mode", ["drop", "replay"])
def test_an_if_match_update_whose_response_is_lost_is_reported_as_won(proxied, direct, proxy, mode):
    first = direct.write_pointer(KEY, {"version": 1}, expected_token=None)
    proxied.write_pointer("control/probe-warmup.json", {"warm": True}, expected_token=None)
    proxy.misbehave_once(mode, KEY)
    pointer = proxied.write_pointer(KEY, {"version": 2}, expected_token=first.token)
    assert pointer.value == {"version": 2}
    assert direct.read_pointer(KEY).token == pointer.token != first.token


def test_a_promotion_whose_response_is_lost_moves_the_champion_and_records_no_conflict(
        proxied, direct, proxy):
    first = direct.write_pointer(KEY, {"version": 1}, expected_token=None)
    proxied.write_pointer("control/probe-warmup.json", {"warm": True}, expected_token=None)
    decision = registry.PromotionDecision(
        model_name="demo", action="promoted", promoted=True, candidate_version=2, champion_version=1,
        metric="roc_auc", candidate_score=0.9, champion_score=0.8, margin=0.0, reason="better",
        eval_rows=100, decided_at=datetime.now(UTC).isoformat(),
    )
    proxy.misbehave_once("drop", KEY)
    result = registry._move_alias(proxied, "demo", 2, 1, first.token, decision)
    assert result.action == "promoted"
    assert registry.champion_version(direct, "demo") == 2
    assert [event["action"] for event in registry.history(direct, "demo")] == ["promoted"]


@pytest.mark.parametrize("mode", ["drop", "replay"])
def test_a_retrain_claim_whose_response_is_lost_is_granted(proxied, direct, proxy, mode):
    model = "demo"
    key = retrain_control.retrain_pointer_key(model)
    proxied.write_pointer("control/probe-warmup.json", {"warm": True}, expected_token=None)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    proxy.misbehave_once(mode, key)  # the first claim creates the pointer (If-None-Match: *)
    claim = retrain_control.claim_retrain(proxied, model, champion_version=1, cooldown_minutes=60, now=now)
    assert claim.granted, claim.reason
    retrain_control.finish_retrain(proxied, claim, {"version": 2}, now=now + timedelta(minutes=5))
    proxy.misbehave_once(mode, key)  # the next claim updates it (If-Match)
    later = retrain_control.claim_retrain(proxied, model, champion_version=2, cooldown_minutes=60,
                                          now=now + timedelta(hours=3))
    assert later.granted, later.reason
    assert direct.read_pointer(key).value["claim_id"] == later.claim_id


def test_a_put_that_never_reached_the_server_is_retried_conditionally(proxied, direct, proxy):
    proxied.write_pointer("control/probe-warmup.json", {"warm": True}, expected_token=None)
    proxy.misbehave_once("kill_before", KEY)
    pointer = proxied.write_pointer(KEY, {"version": 1}, expected_token=None)
    assert direct.read_pointer(KEY).token == pointer.token
    assert proxy.puts_for(KEY) == 2  # one lost before the server, one retried by write_pointer


@pytest.mark.parametrize("mode", [None, "drop", "replay"])
def test_a_genuinely_lost_race_is_still_a_conflict(proxied, direct, proxy, mode):
    proxied.write_pointer("control/probe-warmup.json", {"warm": True}, expected_token=None)
    first = direct.write_pointer(KEY, {"version": 1}, expected_token=None)
    direct.write_pointer(KEY, {"version": 3}, expected_token=first.token)  # the other writer won
    if mode:
        proxy.misbehave_once(mode, KEY)
    with pytest.raises(PointerConflictError, match="another writer won the race"):
        proxied.write_pointer(KEY, {"version": 2}, expected_token=first.token)
    if mode:
        proxy.misbehave_once(mode, KEY)
    with pytest.raises(PointerConflictError, match="already exists"):
        proxied.write_pointer(KEY, {"version": 2}, expected_token=None)
    assert direct.read_pointer(KEY).value == {"version": 3}


def test_readers_see_the_document_as_written_without_the_writer_nonce(proxied, direct):
    pointer = proxied.write_pointer(KEY, {"version": 1}, expected_token=None)
    assert direct.get_json(KEY) == {"version": 1} == direct.read_pointer(KEY).value == pointer.value
