"""The binary decision threshold: chosen by the spec's rule, recorded in the card, and used the
same way by scoring's predicted_label, the promotion gate and monitoring's accuracy/F1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from mlops_onprem import registry
from mlops_onprem.contracts import Task
from mlops_onprem.model_spec import ModelSpecError, load_model_spec
from mlops_onprem.monitoring import holdout_rows
from mlops_onprem.onnx_io import create_session
from mlops_onprem.scoring import clear_session_cache, resolve_scoring_model, score_parquet_file
from mlops_onprem.store.parquet import get_dataframe
from mlops_onprem.threshold import ThresholdSpec, _counts_at, choose_threshold
from mlops_onprem.training import train_candidate
from tests.fixtures.training import register_small, seed_validated, small_spec


def imbalanced(n: int, positive_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with few positives and informative but noisy scores."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < positive_share).astype(np.int64)
    logit = rng.normal(-2.0, 1.0, n) + 2.5 * y
    return y, 1 / (1 + np.exp(-logit))


@pytest.mark.parametrize("n", [60, 300, 5000])
def test_each_rule_picks_the_threshold_it_promises_on_imbalanced_data(n):
    y, p = imbalanced(n, 0.08, seed=n)
    grid = np.unique(p)
    f1_at = {t: _counts_at(y, p, t)[2] for t in grid}
    best = choose_threshold(ThresholdSpec(rule="max_f1"), y, p)
    assert best.f1 == pytest.approx(max(f1_at.values()))
    assert best.f1 >= _counts_at(y, p, 0.5)[2]  # on imbalanced data 0.5 is not the best
    assert best.chosen_on_rows == n and best.met

    wanted = choose_threshold(ThresholdSpec(rule="min_precision", target=0.6), y, p)
    if wanted.met:
        assert wanted.precision >= 0.6
        lower = grid[grid < wanted.value]
        assert all((_counts_at(y, p, t)[0] or 0) < 0.6 for t in lower[-1:])  # the lowest one
    recall = choose_threshold(ThresholdSpec(rule="min_recall", target=0.9), y, p)
    assert recall.recall >= 0.9
    higher = grid[grid > recall.value]
    assert higher.size == 0 or _counts_at(y, p, higher[0])[1] < 0.9  # the highest one


def test_an_unreachable_target_falls_back_to_one_half_and_says_so():
    y, p = imbalanced(200, 0.05, seed=1)
    choice = choose_threshold(ThresholdSpec(rule="min_precision", target=1.0), y,
                              np.full_like(p, 0.3))
    assert choice.value == 0.5 and choice.met is False and "0.5 used" in choice.note


def test_the_spec_accepts_a_number_or_a_rule_and_refuses_nonsense(tmp_path: Path):
    assert small_spec(decision_threshold=0.3).decision_threshold == ThresholdSpec(rule="fixed", value=0.3)
    spec = small_spec(decision_threshold={"rule": "min_recall", "target": 0.8})
    assert spec.threshold_for(Task.BINARY).target == 0.8
    for bad in (1.5, {"rule": "min_precision"}, {"rule": "max_f1", "value": 0.2},
                {"rule": "youden"}):
        with pytest.raises(ModelSpecError, match="decision_threshold"):
            load_model_spec("logistic", decision_threshold=bad)
    with pytest.raises(ModelSpecError, match="binary models only"):
        spec.threshold_for(Task.REGRESSION)


def test_a_threshold_on_a_non_binary_spec_fails_training_with_the_reason(local_store):
    contract = seed_validated(local_store, task=Task.MULTICLASS, rows=400)
    with pytest.raises(ModelSpecError, match="binary models only"):
        train_candidate(local_store, dataset="demo", contract=contract, model_name="demo",
                        run_id="r", spec=small_spec(decision_threshold=0.3))


def test_the_chosen_threshold_is_recorded_and_used_by_scoring_promotion_and_monitoring(
        local_store, tmp_path: Path):
    contract = seed_validated(local_store, rows=1200)
    spec = small_spec(decision_threshold={"rule": "min_recall", "target": 0.97})
    mv = register_small(local_store, contract, spec=spec)
    record = mv.card["decision_threshold"]
    assert record["rule"] == "min_recall" and record["recall"] >= 0.97
    threshold = record["value"]
    assert threshold < 0.5  # a high recall target lowers it on this data
    assert "Decision threshold" in local_store.get_bytes(mv.card["files"]["card_md"]["key"]).decode()
    session = create_session(registry.load_onnx_bytes(local_store, mv))
    assert float(session.get_modelmeta().custom_metadata_map["mlops.decision_threshold"]) == threshold

    # the holdout metrics are the ones the gate and monitoring compute at the threshold
    rows = registry.score_rows(local_store, mv, registry.load_eval_frame(local_store, mv), contract)
    assert rows.threshold == threshold
    for metric in ("accuracy", "f1"):
        assert rows.metric(Task.BINARY, metric) == pytest.approx(mv.card["metrics"][metric], abs=1e-6)
        held = holdout_rows(registry.load_eval_frame(local_store, mv), contract, threshold)
        assert held.metric(Task.BINARY, metric) == pytest.approx(mv.card["metrics"][metric])

    # scoring delivers predicted_label at the threshold, not at the most likely class
    clear_session_cache()
    model = resolve_scoring_model(local_store, "demo", "1", contract)
    assert model.decision_threshold == threshold
    source = mv.card["data"]["batch_versions"][0]["validated_key"]
    local_store.get_file(source, tmp_path / "in.parquet")
    score_parquet_file(tmp_path / "in.parquet", tmp_path / "out.parquet",
                       create_session(registry.load_onnx_bytes(local_store, mv)), contract,
                       model_name="demo", model_version=1, input_key=source,
                       decision_threshold=model.decision_threshold)
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    positive = contract.label.classes[1]
    expected = np.where(out["score"] >= threshold, positive, contract.label.classes[0])
    assert (out["predicted_label"] == expected).all()
    assert ((out["score"] >= threshold) & (out["score"] < 0.5)).any()  # the threshold mattered
    assert len(out) == len(get_dataframe(local_store, source))
