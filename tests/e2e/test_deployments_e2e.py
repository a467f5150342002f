"""End to end: prefect.yaml deployed to a Prefect server on PostgreSQL, run by a process worker.

One worker per work queue, each with only its role's storage policy (the pipeline's
``orchestration`` worker holds all four, like setup.sh's mlops-worker): every store call a
deployed flow makes against the moto S3 server also proves the least-privilege policies suffice.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from uuid import UUID

import pytest

from mlops_onprem import keys, ledger
from mlops_onprem.store.parquet import put_dataframe
from mlops_onprem.synthetic import generate_batch

from .conftest import (
    DATASET,
    MODEL,
    RUN_TIMEOUT_S,
    SPEC,
    Deployed,
    PipelineRun,
    Postgres,
    PrefectServer,
    fresh_start_row,
    land_batch,
    require_deployment,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]


def flow_run_state(flow_run_id: UUID | str) -> tuple[str, str | None]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(str(flow_run_id)))
    return run.state.type.value, run.state.message


def read_flow_runs(flow_name: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))


# --- the harness itself ---------------------------------------------------------------------
def test_prefect_server_keeps_its_deployments_in_postgresql(postgres: Postgres,
                                                            deployed: Deployed):
    import asyncpg

    async def deployment_names() -> set[str]:
        connection = await asyncpg.connect(postgres.asyncpg_dsn)
        try:
            rows = await connection.fetch(
                "select f.name || '/' || d.name as full_name "
                "from deployment d join flow f on f.id = d.flow_id"
            )
        finally:
            await connection.close()
        return {row["full_name"] for row in rows}

    assert set(deployed.names) <= asyncio.run(deployment_names())
    assert "ingest-batch/onprem" in deployed.names


def test_prefect_yaml_sets_queues_schedules_and_one_training_at_a_time(
    deployed: Deployed, prefect_client_settings
):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        found = {name: client.read_deployment_by_name(name) for name in deployed.names}
    for name, deployment in found.items():
        assert deployment.work_pool_name == "mlops-process", name
        assert deployment.pull_steps == [{
            "prefect.deployments.steps.set_working_directory": {
                "directory": "{{ $MLOPS_REPO_DIR }}"  # resolved on the worker, not at deploy
            }
        }], name
    assert not deployed.missing_entrypoints, deployed.missing_entrypoints
    assert {"ingest-batch/onprem", "train-model/onprem", "score-batch/onprem",
            "monitor-model/onprem", "gc/onprem"} <= set(found), sorted(found)
    assert found["ingest-batch/onprem"].work_queue_name == "ingest"
    training = found["train-model/onprem"]
    assert training.global_concurrency_limit is not None
    assert training.global_concurrency_limit.limit == 1
    assert training.work_queue_name == "training"
    assert [s.schedule.cron for s in found["score-batch/onprem"].schedules] == ["0 2 * * *"]
    assert [s.schedule.cron for s in found["monitor-model/onprem"].schedules] == ["30 3 * * *"]


# --- single deployments on the real worker ----------------------------------------------------
def test_ingest_deployment_validates_a_landed_batch_on_the_worker(
    worker, deployed, admin_store, prefect_client_settings
):
    from prefect.deployments import run_deployment

    batch = f"b-{uuid.uuid4().hex[:8]}"
    source = land_batch(admin_store, batch)

    run = run_deployment("ingest-batch/onprem", parameters={"source_key": source},
                         timeout=RUN_TIMEOUT_S, poll_interval=1)

    assert run.state.is_completed(), f"{run.state}\n{worker.tail()}"
    version = ledger.version_for_key(ledger.read_index(admin_store, DATASET), source)
    assert version.status == "validated" and admin_store.exists(version.validated_key)
    assert admin_store.get_json(version.validation["result_key"])["success"] is True


def test_a_rejected_batch_fails_the_parent_with_the_child_runs_message(
    worker, deployed, admin_store, prefect_client_settings
):
    """tasks.deployments.run_child_deployment against a real child run on the real worker."""
    from prefect import flow

    from tasks.deployments import ChildRunFailedError, run_child_deployment

    batch = f"bad-{uuid.uuid4().hex[:8]}"
    source = land_batch(admin_store, batch, broken=True)

    @flow(name="e2e-parent")
    def parent() -> dict:
        return run_child_deployment("ingest-batch/onprem", {"source_key": source},
                                    RUN_TIMEOUT_S, poll_interval_s=1.0)

    state = parent(return_state=True)

    assert state.is_failed()
    with pytest.raises(ChildRunFailedError, match="ingest-batch/onprem") as excinfo:
        state.result()
    child_message = _failed_ingest_message(source)
    assert child_message and child_message in str(excinfo.value) and source in child_message
    version = ledger.version_for_key(ledger.read_index(admin_store, DATASET), source)
    assert version.status == "rejected" and admin_store.exists(version.validation["quarantine_key"])
    assert not admin_store.exists(keys.validated_key(DATASET, version.id))


def _failed_ingest_message(source_key: str) -> str | None:
    for run in read_flow_runs("ingest-batch"):
        if run.parameters.get("source_key") == source_key:
            return run.state.message
    return None


# --- the whole pipeline --------------------------------------------------------------------------
def test_pipeline_deployment_runs_every_stage_and_writes_every_output(
    pipeline_run: PipelineRun, worker, admin_store, prefect_client_settings
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )

    assert pipeline_run.state == "COMPLETED", f"{pipeline_run.message}\n{worker.tail()}"
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[pipeline_run.flow_run_id])
        ))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[pipeline_run.flow_run_id])
        ))
        flow_names = {f.id: f.name for f in client.read_flows()}
    states = sorted((flow_names[c.flow_id], c.state.type.value) for c in children)
    assert states.count(("ingest-batch", "COMPLETED")) == 1, states  # every pending batch, one run
    assert ("train-model", "COMPLETED") in states
    assert ("score-batch", "COMPLETED") in states
    summary = next(a for a in artifacts if a.key == "pipeline-demo")
    assert "quarantined batches: 1" in summary.data
    assert "promoted: True" in summary.data

    # what the run left in the bucket (written by the worker as the least-privilege user)
    index = ledger.read_index(admin_store, DATASET)
    for key in pipeline_run.good:
        assert admin_store.exists(keys.validated_key(DATASET, ledger.version_for_key(index, key).id))
    broken = ledger.version_for_key(index, pipeline_run.broken)
    assert broken.status == "rejected" and admin_store.exists(broken.validation["quarantine_key"])
    assert not admin_store.exists(keys.validated_key(DATASET, broken.id))
    champion = admin_store.read_pointer(keys.alias_key(MODEL, "champion"))
    assert champion is not None
    version = int(champion.value["version"])
    assert admin_store.exists(keys.model_card_key(MODEL, version))
    assert admin_store.exists(keys.model_onnx_key(MODEL, version))
    manifests = [o.key for o in admin_store.list(keys.predictions_model_prefix(MODEL))
                 if o.key.endswith("/_manifest.json")]
    assert manifests, "no scoring manifest written"
    scored = [admin_store.get_json(key) for key in manifests]
    inputs = [(i["source_key"], i["rows"]) for manifest in scored for i in manifest["inputs"]]
    assert (pipeline_run.inbox, 300) in inputs


def _deployment_runs(deployment: str) -> dict[UUID, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name(deployment).id
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
            id=DeploymentFilterId(any_=[deployment_id])))
    return {run.id: run for run in runs}


def test_monitoring_on_drifted_data_starts_exactly_one_training_run(
    pipeline_run: PipelineRun, worker, deployed, admin_store, prefect_client_settings
):
    """score (scoring worker) -> monitor (monitoring worker) -> train-model/onprem (training
    worker), each worker holding only its role's credentials; a second monitoring run inside
    the retrain cooldown must not train again."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment

    require_deployment(deployed, "monitor-model/onprem")
    assert pipeline_run.state == "COMPLETED", "the pipeline run registers the champion first"
    # new labelled data since the champion trained (without it a drift does not retrain)
    fresh = land_batch(admin_store, f"fresh-{uuid.uuid4().hex[:6]}", seed=41)
    gated = run_deployment("ingest-batch/onprem", parameters={"source_key": fresh},
                           timeout=RUN_TIMEOUT_S, poll_interval=1)
    assert gated.state.is_completed(), f"{gated.state}\n{worker.tail()}"
    drifted = keys.scoring_inbox_key(DATASET, f"drift-{uuid.uuid4().hex[:6]}")
    put_dataframe(admin_store, drifted, generate_batch(SPEC, 800, seed=40, covariate_shift=2.0,
                                                       with_label=False,
                                                       start_row=fresh_start_row()))  # >= min_rows 500
    scored = run_deployment("score-batch/onprem", parameters={"input_prefix": drifted},
                            timeout=RUN_TIMEOUT_S, poll_interval=1)
    assert scored.state.is_completed(), f"{scored.state}\n{worker.tail()}"
    trainings_before = _deployment_runs("train-model/onprem")

    monitor = run_deployment("monitor-model/onprem", parameters={"window_batches": 1},
                             timeout=RUN_TIMEOUT_S, poll_interval=1)

    assert monitor.state.is_completed(), f"{monitor.state}\n{worker.tail()}"
    new = [run for run_id, run in _deployment_runs("train-model/onprem").items()
           if run_id not in trainings_before]
    reports = sorted(o.key for o in admin_store.list(f"monitoring/{MODEL}/")
                     if o.key.endswith("/report.json"))
    assert reports, "the monitoring run wrote no report"
    decision = admin_store.get_json(reports[-1]).get("decision")
    assert len(new) == 1, f"trainings started: {[r.name for r in new]}; decision: {decision}"
    training = new[0]
    assert training.state.is_completed(), training.state
    with get_client(sync_client=True) as client:
        parent_task = client.read_task_run(training.parent_task_run_id)
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[monitor.id])))
    assert parent_task.flow_run_id == monitor.id  # started by this monitoring run
    assert artifacts, "the monitoring run published no artifact"

    again = run_deployment("monitor-model/onprem", parameters={"window_batches": 1},
                           timeout=RUN_TIMEOUT_S, poll_interval=1)

    assert again.state.is_completed(), f"{again.state}\n{worker.tail()}"
    later = [run_id for run_id in _deployment_runs("train-model/onprem")
             if run_id not in trainings_before]
    assert later == [training.id], "a second drift inside the cooldown trained again"


def test_server_and_worker_are_alive_after_the_runs(prefect_server: PrefectServer, worker):
    assert prefect_server.proc.poll() is None
    assert all(proc.poll() is None for proc in worker.procs.values()), worker.tail()
