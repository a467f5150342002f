"""Monitoring end to end through the flows for every task kind the contract allows: binary,
multiclass and regression, with realized and (classification) label-free estimated quality
(multiclass used to crash with ``KeyError: 'score'`` once labels arrived, and random-forest
probabilities used to false-alarm under fixed PSI thresholds)."""

from __future__ import annotations

import pytest

from flows.ingest import ingest_batch
from flows.monitor import monitor_model
from flows.score import score_batch
from flows.train import train_model
from mlops_onprem import keys
from mlops_onprem.contracts import Task
from mlops_onprem.store import open_store
from mlops_onprem.store.parquet import put_dataframe
from mlops_onprem.synthetic import SyntheticSpec, generate_batch, make_contract

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("task", [Task.BINARY, Task.MULTICLASS, Task.REGRESSION])
def test_monitor_flow_reports_estimated_and_realized_quality_for_every_task(local_env, tmp_path,
                                                                           task):
    dataset = {Task.BINARY: "bn", Task.MULTICLASS: "mc", Task.REGRESSION: "rg"}[task]
    spec = SyntheticSpec(dataset=dataset, task=task)
    contract_path = tmp_path / f"{dataset}.yaml"
    contract_path.write_text(make_contract(spec).to_yaml(), encoding="utf-8")
    store = open_store()
    put_dataframe(store, keys.incoming_key(dataset, "history"), generate_batch(spec, 3000, seed=1))
    scoring = generate_batch(spec, 800, seed=2, start_row=10_000)
    put_dataframe(store, keys.scoring_inbox_key(dataset, "today"), scoring.drop(columns=["label"]))
    put_dataframe(store, keys.labels_key(dataset, "today"), scoring[["row_id", "label"]])

    ingest_batch(dataset, contract_path=str(contract_path))  # batches and the label object
    # random forests: coarse, tied probabilities that fixed PSI thresholds used to flag
    trained = train_model(dataset=dataset, model_name=dataset,
                          spec="xgboost" if task == Task.BINARY else "random_forest",
                          contract_path=str(contract_path))
    scored = score_batch(dataset=dataset, model_name=dataset, contract_path=str(contract_path))
    assert trained["promoted"] and scored["rows"] == 800
    result = monitor_model(model_name=dataset, dataset=dataset, window_days=7, retrain=False)

    assert result["decision"] == "no_drift", result["reasons"]
    quality = result["quality"]
    assert quality["labelled_rows"] == 800 and quality["status"] == "ok", quality
    assert quality["live"] is not None and quality["metric"] == trained["decision"]["metric"]
    if task == Task.REGRESSION:
        assert quality["estimated"] is None and quality["estimated_status"] == "refused"
        assert "not supported for regression" in quality["estimate_note"]
    else:  # estimated from the scores alone, next to the realized value
        assert quality["estimated"] is not None, quality["estimate_note"]
        assert abs(quality["estimated"] - quality["live"]) < 0.05, quality
