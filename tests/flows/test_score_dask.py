"""The unchanged ``score-batch`` flow on a Dask LocalCluster of two worker processes."""

from __future__ import annotations

import os

import pytest

from flows.score import score_batch
from mlops_onprem.contracts import find_contract
from mlops_onprem.manifest import read_manifest
from tests.fixtures.scoring import land_inbox, linear_onnx, register_handmade_champion

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def test_flow_runs_on_two_dask_worker_processes_with_no_code_change(s3_env, s3_store) -> None:
    from prefect_dask import DaskTaskRunner

    register_handmade_champion(s3_store, linear_onnx(find_contract("demo")))
    land_inbox(s3_store, n_batches=4, rows=300)
    # s3_env set MLOPS_* in os.environ before the cluster starts: worker processes inherit it
    runner = DaskTaskRunner(
        cluster_kwargs={"n_workers": 2, "processes": True, "threads_per_worker": 1,
                        "dashboard_address": None}
    )
    summary = score_batch.with_options(task_runner=runner)(dataset="demo", model_name="demo")

    assert summary["status"] == "complete" and summary["rows"] == 1_200
    workers = summary["workers"]
    assert all(not w.endswith(f":{os.getpid()}") for w in workers)  # not this process
    assert len(workers) == 2  # both worker processes scored partitions
    manifest = read_manifest(s3_store, summary["manifest_key"])
    assert len(manifest.outputs) == 4

    # same input, same model, rescored on the local runner: the very same bytes
    local = score_batch(dataset="demo", model_name="demo", mode="rescore")
    assert local["run_id"] != summary["run_id"]
    rescored = read_manifest(s3_store, local["manifest_key"]).outputs
    assert [(o.input_key, o.sha256) for o in rescored] == [(o.input_key, o.sha256) for o in manifest.outputs]
