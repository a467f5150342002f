"""The conditional-write conformance probe (``mlops doctor``'s table, the registry's gate) on real
servers: the session moto server passes every check; the header-stripping proxy of
``test_store_s3_cas_probe`` (moto behind a proxy that drops ``If-None-Match`` / ``If-Match``)
fails the create-if-absent, stale ``If-Match``, missing-key ``If-Match`` and race checks, and
pointer writes through it are refused with the failed checks named."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops_onprem.cli import main
from mlops_onprem.errors import StoreCapabilityError
from mlops_onprem.settings import get_settings
from mlops_onprem.store.s3 import PROBE_RACE_WRITERS, S3Store
from tests.fixtures.conformance import CHECKS, FAILED_BEHIND_PROXY
from tests.fixtures.servers import store_at


def fresh_bucket() -> str:
    return f"conformance-{uuid.uuid4().hex[:12]}"


def test_moto_passes_every_conditional_write_check_and_is_registry_safe(s3_store):
    report = s3_store.probe_conditional_writes()
    observed = {check.name: check.observed for check in report.checks}
    assert [check.name for check in report.checks] == CHECKS
    assert all(check.passed for check in report.checks), report.finding()
    assert observed["create-if-absent, existing key"] == "412 PreconditionFailed"
    assert observed["update-if-match, stale etag"] == "412 PreconditionFailed"
    assert observed["if-match, missing key"] == "404 NoSuchKey"
    assert observed[CHECKS[-1]].startswith(f"1 of {PROBE_RACE_WRITERS} succeeded")
    assert report.verdict == "registry safe"
    assert list(s3_store.list("control/cas-probe/")) == []  # every probe object deleted


def test_a_server_that_drops_the_headers_fails_the_checks_and_gets_verdict_refuse(
        header_stripping_proxy, tmp_path):
    store = store_at(header_stripping_proxy, fresh_bucket(), tmp_path)
    report = store.probe_conditional_writes()
    assert {check.name for check in report.failed} == FAILED_BEHIND_PROXY
    observed = {check.name: check.observed for check in report.checks}
    assert observed["create-if-absent, existing key"] == "200 overwrote the object"
    assert observed["if-match, missing key"] == "200 created the object"
    assert observed[CHECKS[-1]] == f"{PROBE_RACE_WRITERS} of {PROBE_RACE_WRITERS} succeeded"
    assert report.verdict == "refuse"
    assert list(store.list("control/cas-probe/")) == []


def test_a_pointer_write_on_a_failing_server_is_refused_naming_the_failed_checks(
        header_stripping_proxy, tmp_path):
    store = store_at(header_stripping_proxy, fresh_bucket(), tmp_path)
    with pytest.raises(StoreCapabilityError) as refused:
        store.write_pointer("models/demo/aliases/champion.json", {"version": 1}, expected_token=None)
    message = str(refused.value)
    assert "verdict: refuse" in message and "mlops doctor" in message
    for name in FAILED_BEHIND_PROXY:
        assert name in message
    assert "create-if-absent, existing key: expected 412, server did 200 overwrote the object" in message
    assert not store.exists("models/demo/aliases/champion.json")


def test_the_probe_is_cached_per_endpoint_and_bucket_process_wide(header_stripping_proxy, plain_moto,
                                                                   tmp_path):
    bucket = fresh_bucket()
    first = store_at(header_stripping_proxy, bucket, tmp_path).conditional_write_conformance()
    # another store on the same endpoint and bucket reuses the verdict: no second probe
    assert store_at(header_stripping_proxy, bucket, tmp_path).conditional_write_conformance() is first
    # the same bucket behind another endpoint (moto itself, headers intact) is probed on its own
    direct = store_at(plain_moto, bucket, tmp_path).conditional_write_conformance()
    assert direct is not first and direct.verdict == "registry safe" and first.verdict == "refuse"


def test_doctor_json_on_a_failing_server_says_refuse_and_the_registry_then_refuses(
        s3_env, header_stripping_proxy, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MLOPS_S3_ENDPOINT", f"127.0.0.1:{header_stripping_proxy}")
    monkeypatch.setenv("MLOPS_BUCKET", fresh_bucket())
    get_settings.cache_clear()
    assert main(["doctor", "--probe-mib", "1", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    conformance = result["conditional_writes"]
    assert conformance["verdict"] == "refuse"
    assert {c["name"] for c in conformance["checks"] if not c["passed"]} == FAILED_BEHIND_PROXY
    check = next(c for c in result["checks"] if c["name"] == "conditional writes")
    assert check["status"] == "FAIL" and "if-match, missing key" in check["detail"]
    # the doctor's finding is the registry's: a pointer write in this process is refused with it
    with pytest.raises(StoreCapabilityError, match="if-match, missing key: expected 404 or 412"):
        S3Store(get_settings()).write_pointer("ptr.json", {"v": 1}, expected_token=None)


@contextmanager
def bending_proxy(upstream: int, drop: Callable[[str, str, dict[str, str]], set[str]]) -> Iterator[int]:
    """A loopback proxy to moto that drops the headers ``drop(method, path, headers)`` names:
    a server that honours conditional writes only in some situations."""

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = dict(self.headers.items())
            dropped = {name.lower() for name in drop(self.command, self.path, headers)}
            headers = {k: v for k, v in headers.items() if k.lower() not in dropped}
            connection = http.client.HTTPConnection("127.0.0.1", upstream, timeout=30)
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
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
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def test_a_server_that_accepts_if_match_on_a_missing_key_is_refused_for_that_alone(plain_moto, tmp_path):
    """MinIO once did this (minio#21526): If-Match on a key that does not exist created it."""

    def drop_if_match_when_missing(method: str, path: str, headers: dict[str, str]) -> set[str]:
        if method != "PUT" or not any(k.lower() == "if-match" for k in headers):
            return set()
        connection = http.client.HTTPConnection("127.0.0.1", plain_moto, timeout=10)
        connection.request("HEAD", path)
        missing = connection.getresponse().status == 404
        return {"if-match"} if missing else set()

    with bending_proxy(plain_moto, drop_if_match_when_missing) as port:
        store = store_at(port, fresh_bucket(), tmp_path)
        report = store.probe_conditional_writes()
        assert [check.name for check in report.failed] == ["if-match, missing key"]
        with pytest.raises(StoreCapabilityError,
                           match="if-match, missing key: expected 404 or 412, server did 200 created"):
            store.write_pointer("ptr.json", {"v": 1}, expected_token=None)


def test_a_server_whose_create_if_absent_loses_under_concurrency_is_refused_for_the_race(
        plain_moto, tmp_path):
    """SeaweedFS let concurrent If-None-Match: * creates all succeed (seaweedfs#8800), while
    one create at a time behaved: here a create that overlaps another loses its condition."""
    in_flight: dict[str, int] = {}
    lock = threading.Lock()

    def drop_when_overlapping(method: str, path: str, headers: dict[str, str]) -> set[str]:
        if method != "PUT" or not any(k.lower() == "if-none-match" for k in headers):
            return set()
        with lock:
            overlapping = in_flight.get(path, 0) > 0
            in_flight[path] = in_flight.get(path, 0) + 1
        time.sleep(0.2)  # a slow commit: the window in which the others arrive
        with lock:
            in_flight[path] -= 1
        return {"if-none-match"} if overlapping else set()

    with bending_proxy(plain_moto, drop_when_overlapping) as port:
        store = store_at(port, fresh_bucket(), tmp_path)
        report = store.probe_conditional_writes()
        assert [check.name for check in report.failed] == [CHECKS[-1]], report.finding()
        with pytest.raises(StoreCapabilityError, match=r"concurrent create race \(8 writers\)"):
            store.write_pointer("ptr.json", {"v": 1}, expected_token=None)
