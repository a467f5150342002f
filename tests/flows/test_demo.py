"""The main job end to end, on embedded defaults, with the network restricted to loopback.

This is also the proof that the kit makes no outbound connection: pytest-socket refuses any
connection to a host other than loopback while the whole closed loop runs in this process.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from flows.demo import closed_loop_demo, render_summary
from mlops_onprem.offline import TELEMETRY_OFF
from mlops_onprem.store import open_store


@pytest.mark.allow_hosts(["127.0.0.1", "::1"])
def test_outbound_connections_are_refused_under_the_loopback_guard():
    from pytest_socket import SocketConnectBlockedError

    with pytest.raises(SocketConnectBlockedError), socket.create_connection(("192.0.2.1", 443), timeout=1):
        pass  # TEST-NET address: never reachable, and the guard must refuse before trying


def test_third_party_telemetry_is_switched_off_for_this_process_and_its_children():
    for name, value in TELEMETRY_OFF.items():
        assert os.environ[name] == value, name
    from prefect.settings import get_current_settings

    assert get_current_settings().server.analytics_enabled is False


def test_a_flow_run_outside_make_gets_the_kits_prefect_defaults():
    """``python -m flows.<x>`` without the Makefile's environment: importing a flow applies the
    kit's defaults before Prefect reads its settings (the ephemeral server's 120 s start)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "DO_NOT_TRACK",
                        "PREFECT_SERVER_ANALYTICS_ENABLED")}
    probe = ("import flows.train\n"
             "from prefect.settings import get_current_settings\n"
             "s = get_current_settings()\n"
             "print(s.server.ephemeral.startup_timeout_seconds, s.server.analytics_enabled)")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["120", "False"], out.stdout


@pytest.mark.slow
@pytest.mark.allow_hosts(["127.0.0.1", "::1"])
def test_closed_loop_demo_runs_end_to_end_without_leaving_loopback(local_env):
    result = closed_loop_demo(rows_per_batch=1500)

    pipeline = result["pipeline"]
    assert [q["key"] for q in pipeline["quarantined"]] == ["incoming/demo/train-bad.parquet"]
    assert len(pipeline["validated"]) == 4  # three training batches and the scoring batch
    assert pipeline["training"]["version"] == 1 and pipeline["training"]["promoted"]
    assert result["clean_monitoring"]["drift"] is False
    assert result["clean_monitoring"]["retrain"]["status"] == "not_needed"
    drifted = result["drifted_monitoring"]
    assert drifted["drift"] is True
    assert drifted["retrain"]["status"] == "triggered" and drifted["retrain"]["version"] == 2

    store = open_store()
    assert store.exists(pipeline["scoring"]["manifest_key"])
    assert store.exists(drifted["report_key"])
    assert store.exists(pipeline["quarantined"][0]["quarantine_key"])
    assert result["drifted_scoring"]["inputs"][0]["source_key"] == "inbox/demo/score-002-drifted.parquet"
    assert len(result["drifted_scoring"]["inputs"]) == 1  # the nightly run scores only what is new
    # retention and lineage work on the demo's store
    from mlops_onprem.cli import main as mlops_main

    assert mlops_main(["gc", "--dry-run"]) == 0
    part = result["drifted_scoring"]["output_keys"][0]
    assert mlops_main(["lineage", part, "--json"]) == 0
    # the shadow challenger scored the next batch apart and was judged on its labels
    shadow_run = result["shadow_scoring"]
    assert shadow_run["model_version"] == (2 if drifted["retrain"]["promoted"] else 1)
    assert shadow_run["shadow"]["status"] == "scored" and shadow_run["shadow"]["rows"] == 1500
    verdict = result["shadow_monitoring"]["challenger"]
    assert verdict["status"] in ("promoted", "retired") and verdict["labelled_rows"] == 1500, verdict
    assert mlops_main(["models", "challenger", "status", "demo"]) == 0
    summary = render_summary(result, 1.0, store.location)
    assert f"shadow challenger     : v{verdict['challenger_version']} {verdict['status']}" in summary
    assert "quarantined batches   : incoming/demo/train-bad.parquet (corrupt on purpose)" in summary
    assert "retrain               : triggered -> version 2" in summary


def test_the_demo_uses_its_own_store_and_never_wipes_one_it_did_not_create(tmp_path, monkeypatch):
    from flows.demo import DEMO_DATA_DIR, prepare_demo_store
    from mlops_onprem.settings import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLOPS_DATA_DIR", raising=False)
    for name in [n for n in os.environ if n.startswith("MLOPS_S3_")]:
        monkeypatch.delenv(name)
    try:
        assert prepare_demo_store(keep=False) is None
        assert get_settings().data_dir == Path(DEMO_DATA_DIR)  # not the embedded default
        leftover = tmp_path / DEMO_DATA_DIR / "store" / "old.json"
        leftover.parent.mkdir(parents=True)
        leftover.write_text("{}")
        assert prepare_demo_store(keep=False) is None and not leftover.exists()  # its own: wiped

        real = tmp_path / "real" / "store" / "models" / "card.json"
        real.parent.mkdir(parents=True)
        real.write_text("{}")
        monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "real"))
        refused = prepare_demo_store(keep=False)
        assert refused and "did not create" in refused and str(tmp_path / "real") in refused
        assert real.exists()
        assert prepare_demo_store(keep=True) is None and real.exists()
    finally:
        get_settings.cache_clear()
