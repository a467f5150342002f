"""The time budget of one store call (``MLOPS_S3_CALL_TIMEOUT_S``) against loopback servers that hang.

``hung`` accepts TCP connections and never answers; ``half_hung`` answers the bucket check
(``HEAD /<bucket>``) and nothing else, so a call gets past the bucket check and hangs on the object
request itself (or on the conditional PUT of the conformance probe). Self-contained: no moto.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pydantic import SecretStr, ValidationError

from mlops_onprem.doctor import Check, Status, run_checks
from mlops_onprem.errors import StoreUnavailableError
from mlops_onprem.settings import Settings
from mlops_onprem.store.s3 import S3Store

ACCESS_KEY = "AKIABUDGETCANARY0001"
SECRET_KEY = "budget-secret-canary-value"
BUDGET_S = 2.0
SLACK_S = 1.5


@dataclass
class HangingServer:
    """A loopback TCP server that holds every connection open without answering.

    With ``answer_head``, the bucket check (``HEAD /<bucket>``) gets a 200, nothing else.
    """

    answer_head: bool
    sock: socket.socket = field(default_factory=socket.socket)
    held: list[socket.socket] = field(default_factory=list)
    methods: Counter[str] = field(default_factory=Counter)  # requests received, by method
    answered: int = 0  # bucket checks answered

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def start(self) -> HangingServer:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed at teardown
            self.held.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                method, path = head.split(b" ", 2)[:2]
                self.methods[method.decode()] += 1
                if not (self.answer_head and method == b"HEAD" and path.count(b"/") == 1):
                    return  # the connection stays open and silent
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                self.answered += 1
        except OSError:
            return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def _serve(answer_head: bool) -> Iterator[HangingServer]:
    server = HangingServer(answer_head=answer_head).start()
    yield server
    server.close()


@pytest.fixture
def hung() -> Iterator[HangingServer]:
    yield from _serve(answer_head=False)


@pytest.fixture
def half_hung() -> Iterator[HangingServer]:
    yield from _serve(answer_head=True)


def settings_for(server: HangingServer, tmp_path, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        s3_endpoint=server.endpoint, s3_access_key=SecretStr(ACCESS_KEY),
        s3_secret_key=SecretStr(SECRET_KEY), s3_secure=False, bucket="budget-test",
        s3_region="us-east-1", s3_call_timeout_s=BUDGET_S, data_dir=tmp_path,
    )  # the default read timeout (60 s) and retries (3): 4 minutes per call without the budget
    values.update(overrides)
    return Settings(_env_file=None, **values)


def assert_safe_and_named(error: StoreUnavailableError, server: HangingServer, *words: str) -> None:
    message = str(error)
    assert f"http://{server.endpoint}" in message
    assert "MLOPS_S3_CALL_TIMEOUT_S" in message and f"{BUDGET_S:g} s" in message
    for word in words:
        assert word in message, (word, message)
    for text in (message, repr(error), str(error.__context__), str(error.__cause__)):
        assert ACCESS_KEY not in text and SECRET_KEY not in text
        assert "Signature" not in text and "Authorization" not in text and "Credential" not in text


OPERATIONS = {
    "reading": lambda store: store.get_bytes("models/demo/card.json"),
    "writing": lambda store: store.put_bytes("models/demo/card.json", b"{}"),
    "inspecting": lambda store: store.stat("models/demo/card.json"),
    "listing": lambda store: list(store.list("models/demo/")),
}


@pytest.mark.parametrize("what", sorted(OPERATIONS))
def test_a_hung_endpoint_fails_within_the_budget_naming_endpoint_operation_and_key(hung, tmp_path, what):
    store = S3Store(settings_for(hung, tmp_path))
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        OPERATIONS[what](store)
    elapsed = time.monotonic() - started
    assert BUDGET_S - 0.2 <= elapsed <= BUDGET_S + SLACK_S, elapsed
    assert_safe_and_named(info.value, hung, f"checking bucket before {what}", "models/demo/")


@pytest.mark.parametrize("what", sorted(OPERATIONS))
def test_the_object_request_itself_is_bounded_past_the_bucket_check(half_hung, tmp_path, what):
    store = S3Store(settings_for(half_hung, tmp_path))
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        OPERATIONS[what](store)
    assert time.monotonic() - started <= BUDGET_S + SLACK_S
    assert half_hung.answered == 1  # the bucket check answered; the object call hung
    assert_safe_and_named(info.value, half_hung, what, "models/demo/")
    assert "checking bucket" not in str(info.value)


def test_the_budget_cuts_retries_short(half_hung, tmp_path):
    """Read timeout 0.7 s and 3 retries with backoff would take ~4.2 s: the 2 s budget stops it."""
    store = S3Store(settings_for(half_hung, tmp_path, s3_read_timeout_s=0.7, s3_max_retries=3))
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        store.get_bytes("a/b")
    assert time.monotonic() - started <= BUDGET_S + SLACK_S
    assert 2 <= half_hung.methods["GET"] <= 3  # retried within the budget, not past it
    assert "attempt(s)" in str(info.value)


def test_a_conditional_put_is_bounded_and_never_retried_by_the_http_layer(half_hung, tmp_path):
    """write_pointer probes conditional writes first: that PUT hangs; sent once, failed in budget."""
    store = S3Store(settings_for(half_hung, tmp_path, s3_read_timeout_s=0.7, s3_max_retries=3))
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        store.write_pointer("models/demo/champion.json", {"version": 1}, expected_token=None)
    assert time.monotonic() - started <= BUDGET_S + SLACK_S
    assert half_hung.methods["PUT"] == 1
    assert f"http://{half_hung.endpoint}" in str(info.value) and "cas-probe" in str(info.value)
    assert SECRET_KEY not in str(info.value) and ACCESS_KEY not in str(info.value)


def test_doctor_reports_a_hung_endpoint_in_bounded_time(hung, tmp_path):
    settings = settings_for(hung, tmp_path, s3_call_timeout_s=1.0)
    started = time.monotonic()
    results = run_checks(settings, probe_mib=1,
                         prefect_check=lambda: Check("prefect api", Status.OK, "not checked here"))
    # one budget for the whole store: no clean-up delete, no conditional-write probe behind it
    assert time.monotonic() - started <= 1.0 + 3.0
    by_name = {check.name: check for check in results}
    store_check, conditional = by_name["object store"], by_name["conditional writes"]
    assert store_check.status is Status.FAIL and store_check.unreachable
    assert hung.endpoint in store_check.detail and "MLOPS_S3_CALL_TIMEOUT_S" in store_check.detail
    assert conditional.status is Status.FAIL and "did not answer" in conditional.detail
    for check in (store_check, conditional):
        assert SECRET_KEY not in check.detail and ACCESS_KEY not in check.detail


def test_the_budget_is_a_typed_setting_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLOPS_S3_CALL_TIMEOUT_S", "7.5")
    assert Settings(_env_file=None).s3_call_timeout_s == 7.5
    assert Settings.model_fields["s3_call_timeout_s"].default == 60.0
    for bad in ("0", "-1", "soon"):
        monkeypatch.setenv("MLOPS_S3_CALL_TIMEOUT_S", bad)
        with pytest.raises(ValidationError, match="s3_call_timeout_s"):
            Settings(_env_file=None)
