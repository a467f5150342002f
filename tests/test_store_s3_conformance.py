"""The conditional-write conformance probe (``mlops doctor``'s table, the registry's gate) on real
servers: the session moto server passes every check; the header-stripping proxy of
``test_store_s3_cas_probe`` (moto behind a proxy that drops ``If-None-Match`` / ``If-Match``)
fails the create-if-absent, stale ``If-Match``, missing-key ``If-Match`` and race checks, and
pointer writes through it are refused with the failed checks named."""

from __future__ import annotations

import json
import uuid

import pytest

from mlops_onprem.cli import main
from mlops_onprem.errors import StoreCapabilityError
from mlops_onprem.settings import get_settings
from mlops_onprem.store.s3 import PROBE_RACE_WRITERS, S3Store
from tests import test_store_s3_cas_probe as cas_probe

# the loopback servers of the CAS-probe tests: moto without auth, and the proxy that drops the headers
plain_moto = cas_probe.plain_moto
header_stripping_proxy = cas_probe.header_stripping_proxy
store_at = cas_probe.store_at

CHECKS = ["create-if-absent, missing key", "create-if-absent, existing key",
          "update-if-match, fresh etag", "update-if-match, stale etag", "if-match, missing key",
          f"concurrent create race ({PROBE_RACE_WRITERS} writers)"]
FAILED_BEHIND_PROXY = {"create-if-absent, existing key", "update-if-match, stale etag",
                       "if-match, missing key", f"concurrent create race ({PROBE_RACE_WRITERS} writers)"}


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
