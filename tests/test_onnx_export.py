"""ONNX export, the onnx_io convention and the parity gate."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pandas as pd
import pyarrow as pa
import pytest

from mlops_onprem.contracts import Contract, Task
from mlops_onprem.model_spec import UnsupportedModelError, load_model_spec
from mlops_onprem.onnx_export import (
    ParityError,
    check_parity,
    export_onnx,
    set_metadata_props,
)
from mlops_onprem.onnx_io import (
    MISSING_CATEGORY,
    CorruptModelError,
    FeatureMismatchError,
    build_feeds,
    check_metadata_matches_contract,
    create_session,
    metadata_for,
    read_metadata,
    run_scores,
)
from mlops_onprem.synthetic import UNSEEN_CATEGORY, SyntheticSpec, generate_batch, make_contract
from mlops_onprem.training import TrainedModel, build_pipeline, train_model
from tests.fixtures.training import small_spec

TASKS = [Task.BINARY, Task.MULTICLASS, Task.REGRESSION]


def _trained(kind: str, task: Task, rows: int = 1200) -> tuple[TrainedModel, Contract, bytes]:
    spec = SyntheticSpec(task=task)
    contract = make_contract(spec)
    frame = generate_batch(spec, rows, seed=11)
    trained = train_model(frame, contract, small_spec(kind))
    onnx_bytes = export_onnx(
        trained.pipeline, contract,
        metadata_for(contract, model_name="m", model_version=3, training_data_sha256="ab" * 32),
    )
    return trained, contract, onnx_bytes


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.value)
@pytest.mark.parametrize("kind", ["xgboost", "logistic", "random_forest"])
def test_exported_model_matches_native_scores_within_tolerance(kind, task):
    trained, contract, onnx_bytes = _trained(kind, task)
    result = check_parity(
        onnx_bytes, build_feeds(trained.holdout, contract), trained.native_holdout, contract
    )
    assert result.passed
    assert result.rows == len(trained.holdout)
    assert result.gate_diff <= 1e-5
    session = create_session(onnx_bytes)
    names = [o.name for o in session.get_outputs()]
    assert names == (["variable"] if task == Task.REGRESSION else ["label", "probabilities"])
    assert [i.name for i in session.get_inputs()] == contract.feature_names


def test_exported_model_carries_the_mlops_metadata_and_plain_probability_tensor():
    trained, contract, onnx_bytes = _trained("xgboost", Task.MULTICLASS)
    session = create_session(onnx_bytes)
    meta = read_metadata(session)
    assert meta.model_name == "m" and meta.model_version == "3"
    assert meta.feature_names == contract.feature_names
    assert meta.task == "multiclass_classification" and meta.classes == [0, 1, 2]
    assert meta.contract_version == contract.version
    assert meta.training_data_sha256 == "ab" * 32
    assert list(meta.feature_types) == contract.feature_names
    scores = run_scores(session, build_feeds(trained.holdout, contract), Task.MULTICLASS)
    assert scores.probabilities.shape == (len(trained.holdout), 3)
    assert scores.label.dtype == np.int64
    np.testing.assert_allclose(scores.probabilities.sum(axis=1), 1.0, atol=1e-5)
    graph = onnx.load_from_string(onnx_bytes)
    assert {o.domain or "": o.version for o in graph.opset_import}["ai.onnx.ml"] == 3


def test_parity_gate_refuses_with_zero_tolerance_when_scores_differ_at_all():
    trained, contract, onnx_bytes = _trained("logistic", Task.REGRESSION)
    feeds = build_feeds(trained.holdout, contract)
    with pytest.raises(ParityError, match="max diff .* > tolerance 0.0e\\+00") as info:
        check_parity(onnx_bytes, feeds, trained.native_holdout, contract, tolerance=0.0)
    assert info.value.result.gate_diff > 0
    assert not info.value.result.passed


def test_parity_gate_catches_a_tampered_graph():
    trained, contract, onnx_bytes = _trained("logistic", Task.BINARY)
    model = onnx.load_from_string(onnx_bytes)
    node = next(n for n in model.graph.node if n.op_type == "LinearClassifier")
    coefficients = next(a for a in node.attribute if a.name == "coefficients")
    coefficients.floats[:] = [value * 1.5 for value in coefficients.floats]
    with pytest.raises(ParityError, match="registration refused"):
        check_parity(model.SerializeToString(), build_feeds(trained.holdout, contract),
                     trained.native_holdout, contract)


def test_categorical_features_are_encoded_inside_the_graph_not_dropped():
    trained, contract, onnx_bytes = _trained("xgboost", Task.BINARY)
    session = create_session(onnx_bytes)
    row = trained.holdout.iloc[[0] * 4].reset_index(drop=True)
    row["cat_00"] = ["alpha", "bravo", "charlie", "delta"]
    scores = run_scores(session, build_feeds(row, contract), Task.BINARY).score
    assert len(set(np.round(scores, 6))) > 1
    # an unseen category and a missing one score without error (one-hot ignores unknowns)
    row["cat_00"] = [UNSEEN_CATEGORY, None, "alpha", "alpha"]
    assert np.isfinite(run_scores(session, build_feeds(row, contract), Task.BINARY).score).all()


def test_corrupted_onnx_bytes_fail_at_load_with_the_model_named():
    _, _, onnx_bytes = _trained("logistic", Task.BINARY)
    with pytest.raises(CorruptModelError, match="models/demo/1/model.onnx"):
        create_session(onnx_bytes[: len(onnx_bytes) // 2], name="models/demo/1/model.onnx")
    with pytest.raises(CorruptModelError, match="empty"):
        create_session(b"", name="x")


def test_model_without_mlops_metadata_is_rejected_when_reading_metadata():
    _, _, onnx_bytes = _trained("logistic", Task.BINARY)
    model = onnx.load_from_string(onnx_bytes)
    del model.metadata_props[:]
    with pytest.raises(CorruptModelError, match="mlops.model_name"):
        read_metadata(create_session(model.SerializeToString()))


def test_feature_order_mismatch_names_the_first_differing_position():
    _, contract, onnx_bytes = _trained("logistic", Task.BINARY)
    meta = read_metadata(create_session(onnx_bytes))
    check_metadata_matches_contract(meta, contract)  # same order: fine
    swapped = list(contract.features)
    swapped[2], swapped[3] = swapped[3], swapped[2]
    reordered = contract.model_copy(update={"features": tuple(swapped)})
    with pytest.raises(FeatureMismatchError, match="position 2: model has 'num_02', contract has 'num_03'"):
        check_metadata_matches_contract(meta, reordered)


def test_build_feeds_gives_float32_with_nan_and_strings_with_missing_marker():
    contract = make_contract(SyntheticSpec())
    frame = generate_batch(SyntheticSpec(), 5, seed=1)
    frame.loc[0, "num_01"] = np.nan
    frame["cat_00"] = frame["cat_00"].astype(object)
    frame.loc[1, "cat_00"] = None
    feeds = build_feeds(frame, contract)
    assert list(feeds) == contract.feature_names
    assert feeds["num_00"].dtype == np.float32 and feeds["num_00"].shape == (5, 1)
    assert np.isnan(feeds["num_01"][0, 0])
    assert feeds["cat_00"][1, 0] == MISSING_CATEGORY
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for other in (build_feeds(table, contract), build_feeds(table.to_batches()[0], contract)):
        for name in contract.feature_names:
            np.testing.assert_array_equal(other[name], feeds[name])


def test_build_feeds_names_a_missing_feature_column():
    contract = make_contract(SyntheticSpec())
    frame = generate_batch(SyntheticSpec(), 3, seed=1).drop(columns=["num_04"])
    with pytest.raises(FeatureMismatchError, match="num_04"):
        build_feeds(frame, contract)
    with pytest.raises(FeatureMismatchError, match="num_04"):
        build_feeds(pa.Table.from_pandas(frame), contract)


def test_hist_gradient_boosting_is_rejected_with_a_clear_message(tmp_path):
    path = tmp_path / "hgb.yaml"
    path.write_text("name: hgb\nkind: hist_gradient_boosting\n")
    spec = load_model_spec(path)
    with pytest.raises(UnsupportedModelError, match="skl2onnx 1.20 cannot convert HistGradientBoosting"):
        build_pipeline(spec, make_contract(SyntheticSpec()))


def test_set_metadata_props_overwrites_one_key_and_keeps_the_rest():
    _, _, onnx_bytes = _trained("logistic", Task.BINARY)
    stamped = set_metadata_props(onnx_bytes, {"mlops.model_version": "42"})
    meta = read_metadata(create_session(stamped))
    assert meta.model_version == "42" and meta.model_name == "m"
    assert json.loads(json.dumps(meta.feature_names)) == meta.feature_names


def test_scores_from_a_dataframe_and_a_record_batch_are_identical():
    trained, contract, onnx_bytes = _trained("xgboost", Task.BINARY)
    session = create_session(onnx_bytes)
    holdout: pd.DataFrame = trained.holdout
    a = run_scores(session, build_feeds(holdout, contract), Task.BINARY).score
    batch = pa.RecordBatch.from_pandas(holdout, preserve_index=False)
    b = run_scores(session, build_feeds(batch, contract), Task.BINARY).score
    np.testing.assert_array_equal(a, b)
