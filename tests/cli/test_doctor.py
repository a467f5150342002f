"""``mlops doctor`` against a real S3 server on loopback."""

from __future__ import annotations

import re

from mlops_onprem.cli import main
from mlops_onprem.settings import get_settings
from mlops_onprem.store.s3 import S3Store
from tests.fixtures.conformance import CHECKS
from tests.fixtures.servers import free_port


def test_doctor_measures_store_speed_and_removes_its_probe(s3_env, capsys):
    assert main(["doctor", "--probe-mib", "4"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^object store\s+ok\s", out, re.MULTILINE) and "MB/s" in out
    assert "cpu cores" in out and "prefect" in out and "great-expectations" in out
    assert list(S3Store(s3_env).list("control/doctor/")) == []


def test_doctor_shows_the_conditional_write_table_with_verdict_registry_safe(s3_env, capsys):
    assert main(["doctor", "--probe-mib", "1"]) == 0
    table = capsys.readouterr().out.split("conditional writes at ")[1]
    assert re.search(r"^conditional write\s+S3 answers\s+server did\s+result$", table, re.MULTILINE)
    for name in CHECKS:
        row = next((line for line in table.splitlines() if line.startswith(name)), None)
        assert row is not None and row.endswith("  pass"), (name, table)
    assert "verdict: registry safe" in table
    assert list(S3Store(s3_env).list("control/")) == []  # speed and conformance probes removed


def test_doctor_exits_nonzero_and_lists_the_unreachable_endpoint(s3_env, monkeypatch, capsys):
    port = free_port()
    monkeypatch.setenv("MLOPS_S3_ENDPOINT", f"127.0.0.1:{port}")
    monkeypatch.setenv("MLOPS_S3_MAX_RETRIES", "0")
    get_settings.cache_clear()
    assert main(["doctor", "--probe-mib", "1"]) == 1
    out = capsys.readouterr().out
    gaps = out.split("gaps:")[1]
    assert "object store" in gaps and f"127.0.0.1:{port}" in gaps
