"""The closed loop through ``monitor-model`` against the S3 fixture and a real Prefect API.

clean period: no drift, no retrain -> injected drift: detected -> event -> alert -> retrain
-> promotion decision -> a second drifted monitor in the cooldown does not retrain again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flows.ingest import ingest_batch
from flows.monitor import monitor_model
from flows.score import score_batch
from flows.train import train_model
from mlops_onprem import keys, landing, registry
from mlops_onprem.retrain_control import read_retrain_state
from mlops_onprem.settings import get_settings
from mlops_onprem.store.parquet import put_dataframe
from mlops_onprem.synthetic import SyntheticSpec, generate_batch, make_contract
from tests.fixtures.training import gate_landed, seed_validated

pytestmark = [pytest.mark.s3, pytest.mark.slow]
SPEC = SyntheticSpec(dataset="demo")


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict]]:
    """A loopback JSON webhook configured as the only alert URL."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("MLOPS_ALERT_URLS", f"json://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setenv("MLOPS_RETRAIN_COOLDOWN_MINUTES", "60")
    get_settings.cache_clear()
    yield received
    server.shutdown()
    server.server_close()
    get_settings.cache_clear()


def _score(store, batch_id: str, *, seed: int, start_row: int, shift: float = 0.0) -> dict:
    batch, _labels = landing.land_synthetic_batch(
        store, SPEC, batch_id=batch_id, rows=1500, seed=seed, start_row=start_row,
        for_scoring=True, covariate_shift=shift, concept_shift=0.5 if shift else 0.0,
    )
    ingest_batch("demo")  # the 01:00 ingest: gates the batch and registers its labels
    return score_batch(dataset="demo", input_prefix=batch.key, model_name="demo")


def test_closed_loop_clean_then_drift_alert_retrain_and_debounce(s3_env, s3_store, webhook):
    seed_validated(s3_store, rows=2000, batches=2)
    first = train_model(dataset="demo", model_name="demo", spec="logistic")
    assert first["promoted"] and first["version"] == 1

    # clean period: no drift, nothing sent, no retrain
    _score(s3_store, "score-001", seed=500, start_row=100_000)
    clean = monitor_model(model_name="demo", dataset="demo", window_batches=1)
    assert clean["drift"] is False, clean["reasons"]
    assert clean["decision"] == "no_drift" and clean["retrain"] == {"status": "not_needed"}
    assert s3_store.exists(clean["report_key"]) and s3_store.exists(clean["png_key"])
    assert webhook == []

    # the world changes: new training data carries the new relationship, scoring inputs shift
    drifted_train = generate_batch(SPEC, 2000, seed=600, start_row=300_000,
                                   covariate_shift=1.5, concept_shift=0.5)
    put_dataframe(s3_store, keys.incoming_key("demo", "batch-drifted"), drifted_train)
    gate_landed(s3_store, make_contract(SPEC))  # what the ingest deployment does nightly
    _score(s3_store, "score-002", seed=501, start_row=200_000, shift=1.5)
    drifted = monitor_model(model_name="demo", dataset="demo", window_batches=1)

    assert drifted["drift"] is True and "feature_drift" in drifted["rules_fired"]
    assert drifted["event_id"]
    assert drifted["alert"]["delivered"] == 1
    retrain = drifted["retrain"]
    assert retrain["status"] == "triggered" and retrain["mode"] == "embedded"
    assert retrain["version"] == 2 and retrain["decision"]["action"] in ("promoted", "rejected")
    assert isinstance(retrain["promoted"], bool)
    # the retrain keeps the champion's model family (logistic), not the default spec
    assert drifted["champion_spec"] == "logistic"
    retrained = registry.get_version(s3_store, "demo", 2)
    assert retrained.card["spec"]["name"] == "logistic"
    # ... read from the champion's card, not re-loaded by name from model_specs/
    assert retrained.card["invocation"]["spec"] == "card:demo@1"
    assert retrained.card["spec"] == registry.get_version(s3_store, "demo", 1).card["spec"]
    # the outcome is the version this retrain's run registered, matched on its run id
    from tasks.monitoring import read_retrain_outcome
    assert read_retrain_outcome.fn("demo", 1, retrained.card["lineage"]["flow_run_id"])[
        "version"] == 2
    assert read_retrain_outcome.fn("demo", 1, "another-run")["version"] is None

    titles = [p["title"] for p in webhook]
    assert titles[0] == "[mlops] demo v1: drift"
    assert drifted["report_key"] in webhook[0]["message"]
    assert titles[1].startswith("[mlops] demo: retrained v2 ")
    assert str(retrain["decision"]["candidate_score"]) in webhook[1]["message"]

    # the run's drift report artifact ends with what it did next: the retrain and its version
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        report = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["drift-report-demo"])),
            sort=ArtifactSort.CREATED_DESC, limit=1)[0]
    assert "## What this run did next" in report.data
    assert "**Retrain:** triggered → v2" in report.data, report.data[-600:]

    state = read_retrain_state(s3_store, "demo")
    assert state["state"] == "idle" and state["outcome"]["version"] == 2
    assert state["trigger"]["report_key"] == drifted["report_key"]

    # another monitor inside the cooldown never starts a second retrain
    again = monitor_model(model_name="demo", dataset="demo", window_batches=1)
    assert again["retrain"]["status"] != "triggered"
    if retrain["promoted"]:
        # the new champion has not scored anything yet: nothing to judge
        assert again["decision"] == "insufficient_data"
    else:
        assert again["retrain"]["status"] == "skipped" and "cooldown" in again["retrain"]["reason"]


def test_a_failed_retrain_fails_the_monitor_with_its_message_records_it_and_alerts(
    s3_env, s3_store, webhook
):
    seed_validated(s3_store, rows=1200, batches=2)
    train_model(dataset="demo", model_name="demo", spec="logistic")
    put_dataframe(s3_store, keys.incoming_key("demo", "batch-new"),
                  generate_batch(SPEC, 500, seed=610, start_row=600_000))
    gate_landed(s3_store, make_contract(SPEC))  # new labelled data: a retrain may run
    _score(s3_store, "score-009", seed=509, start_row=900_000, shift=1.5)
    # ... but its validated copies are gone: the training flow fails, naming the missing key
    for info in list(s3_store.list(keys.validated_prefix("demo"))):
        s3_store.delete(info.key)

    state = monitor_model(model_name="demo", dataset="demo", window_batches=1, return_state=True)

    assert state.is_failed()
    with pytest.raises(Exception, match="validated") as excinfo:
        state.result()
    pointer = read_retrain_state(s3_store, "demo")
    assert pointer["state"] == "idle"
    assert type(excinfo.value).__name__ in pointer["outcome"]["error"]
    assert [p["title"] for p in webhook] == ["[mlops] demo v1: drift", "[mlops] demo: retrain failed"]


def test_the_monitoring_policy_is_a_flow_parameter_that_changes_the_verdict(s3_env, s3_store):
    from mlops_onprem.drift import DriftThresholds
    from mlops_onprem.monitoring import MonitoringPolicy

    seed_validated(s3_store, rows=2000, batches=2)
    train_model(dataset="demo", model_name="demo", spec="logistic")
    _score(s3_store, "score-shifted", seed=700, start_row=400_000, shift=1.5)

    default = monitor_model(model_name="demo", dataset="demo", window_batches=1, retrain=False)
    assert default["drift"] is True

    lenient = MonitoringPolicy(
        drift=DriftThresholds(psi_min=50.0, ks_min_statistic=1.0, js_min=1.0, unseen_share=1.0),
        max_quality_drop=10.0, estimated_quality_drop=10.0,
    )
    relaxed = monitor_model(model_name="demo", dataset="demo", window_batches=1, retrain=False,
                            policy=lenient)
    assert relaxed["drift"] is False, relaxed["reasons"]
    assert relaxed["retrain"] == {"status": "not_needed"}


def test_no_retrain_without_new_labelled_data(s3_env, s3_store, webhook):
    seed_validated(s3_store, rows=1200, batches=2)
    train_model(dataset="demo", model_name="demo", spec="logistic")
    _score(s3_store, "score-010", seed=510, start_row=950_000, shift=1.5)

    state = monitor_model(model_name="demo", dataset="demo", window_batches=1, return_state=True)
    drifted = state.result()

    assert drifted["drift"] is True
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # the drifted run stands out in the runs list
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name == "monitor demo demo@v1 - drift"
    assert {"drift", "model:demo", "dataset:demo"} <= set(run.tags)
    assert drifted["retrain"]["status"] == "skipped"
    assert "no new labelled batch version" in drifted["retrain"]["reason"]
    assert [mv.version for mv in registry.list_versions(s3_store, "demo")] == [1]
