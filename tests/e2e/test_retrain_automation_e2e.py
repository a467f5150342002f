"""Event-driven retraining on the real server: a monitoring run in ``retrain_mode: event``
claims the retrain and emits ``mlops.drift.detected``; the deployment trigger of
train-model/onprem (prefect.yaml) starts exactly one training run, which adopts the claim,
trains and records the outcome. A duplicate of the event trains nothing.

Runs after test_deployments_e2e.py, whose in-flow retrain holds the cooldown: this test first
moves that claim an hour back and closes its drift episode, as time and a clean monitoring
window would.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import yaml

from mlops_onprem import keys
from mlops_onprem.retrain_control import (
    close_episode,
    idempotency_key,
    read_retrain_state,
    retrain_pointer_key,
)
from mlops_onprem.store.parquet import put_dataframe
from mlops_onprem.synthetic import generate_batch

from .conftest import (
    DATASET,
    MODEL,
    REPO,
    RUN_TIMEOUT_S,
    SPEC,
    PipelineRun,
    PrefectServer,
    fresh_start_row,
    land_batch,
    require_deployment,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]
DRIFT_EVENT = "mlops.drift.detected"


def _deployment(name: str) -> dict[str, Any]:
    """The deployment of prefect.yaml whose entrypoint function is ``name``."""
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    return next(d for d in spec["deployments"] if d["entrypoint"].endswith(f":{name}"))


def _training_runs() -> dict[UUID, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name("train-model/onprem").id
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
            id=DeploymentFilterId(any_=[deployment_id])))
    return {run.id: run for run in runs}


def _an_hour_later(store) -> None:
    """The last retrain claim moves back past the cooldown (with the idempotency key of that
    earlier window) and a clean window closes its drift episode: a new drift may retrain."""
    close_episode(store, MODEL, report_key=None)
    pointer = store.read_pointer(retrain_pointer_key(MODEL))
    assert pointer is not None, "the in-flow retrain of test_deployments_e2e.py claimed first"
    cooldown = float(pointer.value["cooldown_minutes"])  # the workers' setting when it claimed
    earlier = datetime.now(UTC) - timedelta(minutes=cooldown + 1)
    value = dict(pointer.value, started_at=earlier.isoformat().replace("+00:00", "Z"),
                 idempotency_key=idempotency_key(MODEL, pointer.value.get("champion_version"),
                                                 earlier, cooldown))
    store.write_pointer(retrain_pointer_key(MODEL), value, expected_token=pointer.token)


def _drift_events(server: PrefectServer, claim_id: str | None = None) -> list[dict]:
    labels = {"mlops.retrain.claim": claim_id} if claim_id else {}
    status, body = server.request("POST", "/events/filter", {"filter": {
        "event": {"name": [DRIFT_EVENT]}, "resource": {"labels": labels},
    }, "limit": 50})
    assert status == 200, body
    return body["events"]


def test_one_drift_event_starts_exactly_one_training_run(
    pipeline_run: PipelineRun, worker, deployed, admin_store, prefect_server: PrefectServer,
    prefect_client_settings,
):
    from prefect.deployments import run_deployment

    require_deployment(deployed, "monitor-model/onprem")
    assert pipeline_run.state == "COMPLETED", "the pipeline run registers the champion first"
    trigger = _deployment("train_model")["triggers"][0]
    assert trigger["expect"] == [DRIFT_EVENT] and trigger["match"]["mlops.retrain"] == "requested"
    _an_hour_later(admin_store)
    # new labelled data, and drifted inputs scored by whichever version is champion now
    fresh = land_batch(admin_store, f"evt-{uuid.uuid4().hex[:6]}", seed=51)
    gated = run_deployment("ingest-batch/onprem", parameters={"source_key": fresh},
                           timeout=RUN_TIMEOUT_S, poll_interval=1)
    assert gated.state.is_completed(), f"{gated.state}\n{worker.tail()}"
    drifted = keys.scoring_inbox_key(DATASET, f"evt-drift-{uuid.uuid4().hex[:6]}")
    put_dataframe(admin_store, drifted, generate_batch(SPEC, 800, seed=50, covariate_shift=2.0,
                                                       with_label=False,
                                                       start_row=fresh_start_row()))
    scored = run_deployment("score-batch/onprem", parameters={"input_prefix": drifted},
                            timeout=RUN_TIMEOUT_S, poll_interval=1)
    assert scored.state.is_completed(), f"{scored.state}\n{worker.tail()}"
    before = _training_runs()

    # the switch: the deployment's parameters with retrain_mode "event"
    assert _deployment("monitor_model")["parameters"]["retrain_mode"] == "in-flow"
    monitor = run_deployment("monitor-model/onprem",
                             parameters={"window_batches": 1, "retrain_mode": "event"},
                             timeout=RUN_TIMEOUT_S, poll_interval=1)

    assert monitor.state.is_completed(), f"{monitor.state}\n{worker.tail()}"
    claim = read_retrain_state(admin_store, MODEL)
    assert claim["trigger"]["monitoring_run_id"], claim
    events = _drift_events(prefect_server, claim["claim_id"])
    assert len(events) == 1 and events[0]["resource"]["mlops.retrain"] == "requested", events
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:  # the automation starts the training run; wait for it to finish
        new = [run for run_id, run in _training_runs().items() if run_id not in before]
        if new and all(run.state and run.state.is_final() for run in new):
            break
        assert time.monotonic() < deadline, f"no training finished: {new}\n{worker.tail()}"
        time.sleep(2)
    assert len(new) == 1, [(r.name, r.state) for r in new]
    training = new[0]
    assert training.state.is_completed(), f"{training.state}\n{worker.tail()}"
    assert training.parent_task_run_id is None  # its own run, not the monitoring run's child
    assert training.parameters["retrain_claim"]["claim_id"] == claim["claim_id"]
    assert training.parameters["spec"].startswith(f"card:{MODEL}@")
    answered = read_retrain_state(admin_store, MODEL)
    assert answered["state"] == "idle" and answered["adopted_by"] == str(training.id), answered
    assert answered["outcome"]["flow_run_id"] == str(training.id), answered

    # a duplicate of the event (a redelivery, or the same event posted again) trains nothing:
    # the trigger fires once per claim. (A second drift inside the cooldown claims nothing, so
    # its event is labelled "none", and in-flow runs label theirs "in-flow": the in-flow test
    # of test_deployments_e2e.py sees exactly one training run with this trigger deployed.)
    duplicate = {**events[0], "id": str(uuid.uuid4()),
                 "occurred": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
    duplicate.pop("received", None)
    assert prefect_server.request("POST", "/events", [duplicate])[0] == 204
    deadline = time.monotonic() + 60
    while len(_drift_events(prefect_server, claim["claim_id"])) < 2:  # stored: triggers saw it
        assert time.monotonic() < deadline, "the duplicate event was not stored"
        time.sleep(1)
    time.sleep(10)  # the original fired within ~2 s of its event (worker logs)
    later = [run_id for run_id in _training_runs() if run_id not in before]
    assert later == [training.id], "a duplicate event trained again"
    assert read_retrain_state(admin_store, MODEL)["claim_id"] == claim["claim_id"]
