"""Training: data loading and lineage, splits, label encoding, metrics, specs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_onprem import keys
from mlops_onprem.contracts import Task
from mlops_onprem.model_spec import ModelSpecError, load_model_spec
from mlops_onprem.onnx_io import ScoreArrays
from mlops_onprem.store.base import ObjectInfo
from mlops_onprem.store.parquet import put_dataframe
from mlops_onprem.synthetic import SyntheticSpec, generate_batch, make_contract
from mlops_onprem.training import (
    TrainingDataError,
    compute_metrics,
    encode_labels,
    is_better,
    load_training_frame,
    split_train_holdout,
    train_model,
    training_data_sha256,
)
from tests.fixtures.training import gate_landed, seed_validated, small_spec


def test_training_frame_is_the_ledgers_training_set_with_batch_versions(local_store):
    contract = seed_validated(local_store, rows=600, batches=3)
    frame, lineage = load_training_frame(local_store, "demo", contract)
    assert len(frame) == lineage.rows == 600
    landed = [keys.incoming_key("demo", f"batch-{i:03d}") for i in range(3)]
    assert [v["source_key"] for v in lineage.versions] == landed
    assert lineage.object_keys == [keys.validated_key("demo", v["version"]) for v in lineage.versions]
    assert all(len(v["content_sha256"]) == 64 for v in lineage.versions)
    assert list(frame.columns) == contract.input_columns(with_label=True)
    assert len(lineage.sha256) == 64
    _, last_two = load_training_frame(local_store, "demo", contract, window_batches=2)
    assert [v["source_key"] for v in last_two.versions] == landed[1:]


def test_training_data_hash_changes_with_any_input_object_and_ignores_listing_order(local_store):
    contract = seed_validated(local_store, rows=400, batches=2)
    _, before = load_training_frame(local_store, "demo", contract)
    infos = [ObjectInfo(key="a", size=1, etag="e", sha256="1"),
        ObjectInfo(key="b", size=1, etag="e", sha256="2")]
    assert training_data_sha256(infos) == training_data_sha256(infos[::-1])
    put_dataframe(local_store, keys.incoming_key("demo", "batch-001"),  # a corrected re-upload
                  generate_batch(SyntheticSpec(), 200, seed=99, start_row=200))
    gate_landed(local_store, contract)
    _, after = load_training_frame(local_store, "demo", contract)
    assert after.sha256 != before.sha256 and after.versions[1] != before.versions[1]


def test_the_same_rows_under_three_keys_train_once(local_store):
    contract = seed_validated(local_store, rows=400, batches=1)
    data = local_store.get_bytes(keys.incoming_key("demo", "batch-000"))
    for name in ("copy-a", "copy-b"):
        local_store.put_bytes(keys.incoming_key("demo", name), data)
    gate_landed(local_store, contract)
    frame, lineage = load_training_frame(local_store, "demo", contract)
    assert len(frame) == 400 and len(lineage.versions) == 1
    assert len(lineage.versions[0]["keys"]) == 3


def test_training_without_validated_batches_names_the_ledger(local_store):
    contract = make_contract(SyntheticSpec())
    with pytest.raises(TrainingDataError, match="ledger/demo/index.json"):
        load_training_frame(local_store, "demo", contract)


def test_time_split_puts_the_latest_rows_in_the_holdout():
    contract = make_contract(SyntheticSpec())
    frame = generate_batch(SyntheticSpec(), 1000, seed=1).sample(frac=1, random_state=0)
    train, holdout, method = split_train_holdout(frame, contract, holdout_fraction=0.25, seed=1)
    assert method.startswith("time")
    assert len(holdout) == 250 and len(train) == 750
    assert train["event_time"].max() <= holdout["event_time"].min()


def test_random_split_without_timestamp_is_stratified_and_seeded():
    contract = make_contract(SyntheticSpec()).model_copy(update={"timestamp": None})
    frame = generate_batch(SyntheticSpec(), 1000, seed=1)
    train, holdout, method = split_train_holdout(frame, contract, holdout_fraction=0.2, seed=5)
    assert method == "stratified random"
    assert abs(holdout["label"].mean() - frame["label"].mean()) < 0.01
    _, again, _ = split_train_holdout(frame, contract, holdout_fraction=0.2, seed=5)
    assert holdout["row_id"].tolist() == again["row_id"].tolist()
    _, other, _ = split_train_holdout(frame, contract, holdout_fraction=0.2, seed=6)
    assert holdout["row_id"].tolist() != other["row_id"].tolist()


def test_labels_outside_the_contract_classes_are_refused_by_name():
    contract = make_contract(SyntheticSpec())
    np.testing.assert_array_equal(encode_labels(pd.Series([1, 0, 1]), contract), [1, 0, 1])
    with pytest.raises(TrainingDataError, match="value 7 outside contract classes"):
        encode_labels(pd.Series([0, 7]), contract)
    with pytest.raises(TrainingDataError, match="missing values"):
        encode_labels(pd.Series([0, None]), contract)


def test_classification_metrics_on_perfect_and_inverted_predictions():
    y = np.array([0, 1, 0, 1])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    perfect = ScoreArrays(score=probabilities[:, 1], label=np.array([0, 1, 0, 1]),
                          probabilities=probabilities)
    metrics = compute_metrics(Task.BINARY, y, perfect)
    assert metrics["roc_auc"] == 1.0 and metrics["accuracy"] == 1.0 and metrics["f1"] == 1.0
    inverted = ScoreArrays(score=probabilities[:, 0], label=1 - perfect.label,
                           probabilities=probabilities[:, ::-1])
    assert compute_metrics(Task.BINARY, y, inverted)["roc_auc"] == 0.0


def test_regression_metrics_and_metric_direction():
    metrics = compute_metrics(Task.REGRESSION, np.array([1.0, 2.0, 3.0]),
                              ScoreArrays(score=np.array([1.0, 2.0, 5.0])))
    assert metrics["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert metrics["mae"] == pytest.approx(2 / 3)
    assert is_better("rmse", 1.0, 2.0, margin=0.5)
    assert not is_better("rmse", 1.8, 2.0, margin=0.5)
    assert is_better("roc_auc", 0.9, 0.8, margin=0.05)
    assert not is_better("roc_auc", 0.8, 0.8, margin=0.0)


@pytest.mark.parametrize("task", [Task.BINARY, Task.MULTICLASS, Task.REGRESSION], ids=lambda t: t.value)
def test_xgboost_trains_every_task_and_reports_its_metrics(task):
    spec = SyntheticSpec(task=task)
    trained = train_model(generate_batch(spec, 1200, seed=3), make_contract(spec), small_spec("xgboost"))
    expected = {"rmse", "mae", "r2"} if task == Task.REGRESSION else {"roc_auc", "log_loss", "f1", "accuracy"}
    assert set(trained.metrics) == expected
    if task != Task.REGRESSION:
        assert trained.metrics["roc_auc"] > 0.7  # the synthetic label carries signal
    else:
        assert trained.metrics["r2"] > 0.5


def test_a_class_missing_from_the_training_rows_is_refused():
    spec = SyntheticSpec(task=Task.MULTICLASS)
    frame = generate_batch(spec, 600, seed=3)
    frame = frame[frame["label"] != 2]
    with pytest.raises(TrainingDataError, match=r"lack classes \[2\]"):
        train_model(frame, make_contract(spec), small_spec("xgboost"))


def test_model_spec_loads_by_name_applies_overrides_and_checks_the_primary_metric(tmp_path):
    spec = load_model_spec("xgboost", seed=9, parity_tolerance=None)
    assert spec.kind == "xgboost" and spec.seed == 9 and spec.parity_tolerance == 1e-5
    assert spec.primary_metric_for(Task.BINARY) == "roc_auc"
    assert spec.primary_metric_for(Task.REGRESSION) == "rmse"
    bad = load_model_spec("xgboost", primary_metric="rmse")
    with pytest.raises(ModelSpecError, match="does not fit task binary_classification"):
        bad.primary_metric_for(Task.BINARY)
    with pytest.raises(ModelSpecError, match="cannot be read"):
        load_model_spec("no-such-spec")
    (tmp_path / "typo.yaml").write_text("name: t\nkind: xgboost\nn_trees: 3\n")
    with pytest.raises(ModelSpecError, match="n_trees"):
        load_model_spec(tmp_path / "typo.yaml")


def test_every_spec_in_model_specs_loads():
    for name in ("xgboost", "logistic", "random_forest"):
        assert load_model_spec(name).name == name


def test_a_time_holdout_missing_a_class_is_refused_with_the_counts_and_the_option():
    spec = SyntheticSpec()
    contract = make_contract(spec)
    frame = generate_batch(spec, 1000, seed=3).sort_values("label", kind="stable")
    frame["event_time"] = pd.date_range("2026-01-01", periods=len(frame), freq="s")  # class-ordered
    with pytest.raises(TrainingDataError, match=r"split: stratified") as excinfo:
        split_train_holdout(frame, contract, holdout_fraction=0.2, seed=1)
    assert "holdout {'1':" in str(excinfo.value) and "train {'0':" in str(excinfo.value)
    train, holdout, method = split_train_holdout(frame, contract, holdout_fraction=0.2, seed=1,
                                                 method="stratified")
    assert method == "stratified random" and set(holdout["label"]) == {0, 1}
