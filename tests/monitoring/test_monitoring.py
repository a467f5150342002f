"""Monitoring: window selection, live quality, the decision rules, the rendered report."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from mlops_onprem import keys
from mlops_onprem.contracts import Task
from mlops_onprem.drift import compute_drift
from mlops_onprem.monitoring import (
    DECISION_DRIFT,
    DECISION_INSUFFICIENT,
    DECISION_NO_DRIFT,
    MonitoringPolicy,
    NoScoringRunsError,
    QualityResult,
    decide,
    live_quality,
    monitor,
    render_drift_chart,
    render_markdown,
    write_report,
)
from mlops_onprem.reference_profile import build_reference_profile
from mlops_onprem.registry import promote_if_better
from mlops_onprem.store.parquet import put_dataframe
from mlops_onprem.synthetic import SyntheticSpec, generate_batch, make_contract
from tests.fixtures.monitoring import write_scoring_run
from tests.fixtures.training import register_small, seed_validated

SPEC = SyntheticSpec(n_numeric=4, n_categorical=2, nullable_share=0.0)
POLICY = MonitoringPolicy()
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CARD = {"metrics": {"roc_auc": 0.80}, "primary_metric": {"name": "roc_auc", "higher_is_better": True}}


@pytest.fixture(scope="module")
def profile():
    contract = make_contract(SPEC)
    frame = generate_batch(SPEC, 10_000, seed=1)
    scores = 1 / (1 + np.exp(-frame["num_00"].to_numpy()))
    return build_reference_profile(frame, contract, scores)


def _scores(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"score": 1 / (1 + np.exp(-frame["num_00"].to_numpy()))})


# --- live quality -----------------------------------------------------------------------------
def _predictions_and_labels(n: int, *, flip: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, 0.2, n), 0, 1)
    flipped = rng.random(n) < flip
    label = np.where(flipped, 1 - y, y)
    predictions = pd.DataFrame({"row_id": np.arange(n), "score": score, "predicted_label": score > 0.5})
    labels = pd.DataFrame({"row_id": np.arange(n)[::-1], "label": label[::-1]})  # join, not order
    return predictions, labels


def test_live_quality_matches_holdout_when_labels_agree_and_degrades_when_they_flip():
    contract = make_contract(SPEC)
    predictions, labels = _predictions_and_labels(2000, flip=0.0)
    good = live_quality(predictions, labels, contract, CARD, POLICY)
    assert good.status == "ok" and good.live > 0.9 and good.labelled_rows == 2000
    predictions, labels = _predictions_and_labels(2000, flip=0.4)
    bad = live_quality(predictions, labels, contract, CARD, POLICY)
    assert bad.status == "degraded" and bad.relative_drop > POLICY.max_quality_drop


def test_a_quality_drop_is_judged_with_a_bootstrap_interval_against_the_holdout_rows():
    from mlops_onprem.quality import Rows

    contract = make_contract(SPEC)

    def rows(n, flip, seed):
        predictions, labels = _predictions_and_labels(n, flip=flip, seed=seed)
        joined = predictions.merge(labels, on="row_id")
        score = joined["score"].to_numpy()
        return predictions, labels, Rows(joined["label"].to_numpy(), score,
                                         np.column_stack([1 - score, score]))

    _, _, holdout = rows(300, 0.1, seed=1)
    card = {"metrics": {"roc_auc": holdout.metric(Task.BINARY, "roc_auc")},
            "primary_metric": {"name": "roc_auc", "higher_is_better": True}}
    # 200 labelled rows from the same population: noise, never an alarm
    for seed in range(2, 7):
        predictions, labels, _ = rows(200, 0.1, seed=seed)
        same = live_quality(predictions, labels, contract, card, POLICY, holdout=holdout)
        assert same.status == "ok", same
    # a real drop on 200 labelled rows: significant and past the floor
    predictions, labels, _ = rows(200, 0.3, seed=9)
    worse = live_quality(predictions, labels, contract, card, POLICY, holdout=holdout)
    assert worse.status == "degraded" and worse.significant and worse.drop_interval[0] > 0


def test_live_quality_needs_enough_labelled_rows():
    contract = make_contract(SPEC)
    predictions, labels = _predictions_and_labels(2000, flip=0.0)
    few = live_quality(predictions, labels.head(50), contract, CARD, POLICY)
    assert few.status == "insufficient_labels" and few.labelled_rows == 50
    assert POLICY.min_labelled_rows == 100
    none = live_quality(predictions, labels.head(0), contract, CARD, POLICY)
    assert none.status == "no_labels"


# --- decision ---------------------------------------------------------------------------------
def test_clean_window_decides_no_drift(profile):
    window = generate_batch(SPEC, 3000, seed=5)
    decision = decide(compute_drift(profile, window, _scores(window)), None, POLICY)
    assert decision.status == DECISION_NO_DRIFT and decision.rules_fired == ()


def test_shifted_window_fires_the_feature_and_prediction_signals(profile):
    window = generate_batch(SPEC, 3000, seed=5, covariate_shift=1.0)
    decision = decide(compute_drift(profile, window, _scores(window)), None, POLICY)
    assert decision.status == DECISION_DRIFT and decision.retrain
    assert decision.rules_fired == ("feature_drift", "prediction_drift")
    assert "num_00" in decision.reasons[0]


def test_persistence_alarms_only_after_consecutive_windows_and_a_rerun_counts_once(profile):
    from mlops_onprem.monitoring import signal_streaks

    window = generate_batch(SPEC, 3000, seed=5, covariate_shift=1.0)
    drift = compute_drift(profile, window, _scores(window))
    policy = MonitoringPolicy(persistence=2)
    first = decide(drift, None, policy, signal_streaks([], 1, "2026-11-02"))
    assert first.status == DECISION_NO_DRIFT and first.signals and not first.retrain
    assert "feature_drift (1/2 windows)" in first.pending
    history = [{"model_version": 1, "window_end": "2026-11-02", "signals": list(first.signals)}]
    rerun = decide(drift, None, policy, signal_streaks(history, 1, "2026-11-02"))
    assert rerun.status == DECISION_NO_DRIFT  # the same window again is not a second window
    second = decide(drift, None, policy, signal_streaks(history, 1, "2026-11-03"))
    assert second.status == DECISION_DRIFT and second.retrain
    assert signal_streaks(history, 2, "2026-11-03")["feature_drift"] == 0  # another version


def test_retrain_on_chooses_which_alarms_retrain(profile):
    window = generate_batch(SPEC, 3000, seed=5, covariate_shift=1.0)
    drift = compute_drift(profile, window, _scores(window))
    quality_only = MonitoringPolicy(retrain_on=["quality_drop"])
    decision = decide(drift, None, quality_only)
    assert decision.drift and not decision.retrain
    silent = decide(drift, None, MonitoringPolicy(alarm_on=["quality_drop"]))
    assert silent.status == DECISION_NO_DRIFT and "not in alarm_on" in " ".join(silent.pending)


def test_quality_drop_alone_fires_its_rule(profile):
    window = generate_batch(SPEC, 3000, seed=5)
    quality = QualityResult("degraded", "roc_auc", True, 0.8, 0.6, 0.25, 3000,
                            drop_interval=(0.1, 0.3), significant=True)
    decision = decide(compute_drift(profile, window, _scores(window)), quality, POLICY)
    assert decision.rules_fired == ("quality_drop",)
    assert "roc_auc 0.6 realized vs 0.8 holdout" in decision.reasons[0]


def test_small_window_decides_insufficient_data_and_says_so(profile):
    window = generate_batch(SPEC, 100, seed=5, covariate_shift=3.0)
    decision = decide(compute_drift(profile, window, _scores(window)), None, POLICY)
    assert decision.status == DECISION_INSUFFICIENT and not decision.drift
    assert "100 rows" in decision.reasons[0] and "needed" in decision.reasons[0]
    assert "window_days" in decision.reasons[0]


def test_min_drifted_features_is_a_policy_parameter(profile):
    window = generate_batch(SPEC, 3000, seed=5, covariate_shift=1.0)
    drift = compute_drift(profile, window)
    strict = MonitoringPolicy(min_drifted_features=6)
    assert decide(drift, None, strict).status == DECISION_NO_DRIFT


# --- rendering ----------------------------------------------------------------------------------
def test_markdown_has_the_feature_table_decision_rule_and_embedded_chart(profile):
    window = generate_batch(SPEC, 3000, seed=5, covariate_shift=1.0)
    drift = compute_drift(profile, window, _scores(window))
    png = render_drift_chart(drift)
    assert png is not None and png.startswith(b"\x89PNG")
    from mlops_onprem.monitoring import MonitoringReport

    report = MonitoringReport("demo", 1, "demo", "mon-1", "2026-11-25T12:00:00Z", {"run_ids": ["r"]},
                              drift, None, decide(drift, None, POLICY), POLICY)
    markdown = render_markdown(report, png)
    assert "| column | kind | statistics | mean ref → current | p | corrected p |" in markdown
    assert "**Decision:** DRIFT" in markdown and "feature_drift" in markdown
    assert "| num_00 | numeric | KS " in markdown and "**drift**" in markdown
    assert markdown.count("| num_00 |") == 1  # one row per feature, methods as columns
    encoded = markdown.split("data:image/png;base64,")[1].split(")")[0]
    assert base64.b64decode(encoded) == png


@pytest.mark.s3
def test_monitor_reads_the_ledger_window_detects_drift_and_writes_the_report(store):
    contract = seed_validated(store, rows=1200)
    version = register_small(store, contract)
    promote_if_better(store, "demo", version.version)
    with pytest.raises(NoScoringRunsError, match="scored no batch"):
        monitor(store, "demo", "demo")

    spec = SyntheticSpec(dataset="demo")
    clean = generate_batch(spec, 1500, seed=50, start_row=100_000)
    write_scoring_run(store, contract, version, "run-clean", clean)
    report = monitor(store, "demo", "demo", window_batches=1)
    assert report.decision.status == DECISION_NO_DRIFT, report.decision.reasons
    assert report.quality is not None and report.quality.labelled_rows == 1500
    # the batch's counts are cached: the next window merges them instead of reading its rows
    assert report.window["batches_counted"] == 1
    cached = keys.window_profile_key("demo", version.version,
                                     report.window["versions"][0]["version"], "run-clean")
    assert store.exists(cached)
    again = monitor(store, "demo", "demo", window_batches=1)
    assert again.window["batches_counted"] == 0
    assert again.drift.to_dict()["features"] == report.drift.to_dict()["features"]

    shifted = generate_batch(spec, 1500, seed=51, start_row=200_000, covariate_shift=1.5)
    write_scoring_run(store, contract, version, "run-shifted", shifted)
    report = monitor(store, "demo", "demo", window_batches=1)
    assert report.window["run_ids"] == ["run-shifted"]
    assert report.window["label_keys"] == [keys.labels_key("demo", "labels-run-shifted")]
    assert report.decision.drift and "feature_drift" in report.decision.rules_fired
    report_keys, markdown = write_report(store, report)
    document = json.loads(store.get_bytes(report_keys.json))
    assert document["decision"]["status"] == DECISION_DRIFT
    assert document["files"]["png"] == keys.monitoring_file_key("demo", report.run_id, "drift.png")
    assert store.get_bytes(report_keys.png).startswith(b"\x89PNG")
    assert store.get_bytes(report_keys.markdown).decode() == markdown


@pytest.mark.s3
def test_a_rescored_batch_counts_once_and_only_overlapping_label_objects_are_read(store):
    from mlops_onprem import batch_gate, ledger

    contract = seed_validated(store, rows=1200)
    version = register_small(store, contract)
    promote_if_better(store, "demo", version.version)
    spec = SyntheticSpec(dataset="demo")
    write_scoring_run(store, contract, version, "run-a",
        generate_batch(spec, 600, seed=60, start_row=100_000))
    index = ledger.read_index(store, "demo")
    (view,) = ledger.versions(index, stage="scoring")
    first = view.scored_by(f"demo@{version.version}")
    rescore = ledger.make_event(  # a forced rescore of the same batch: a second run, same rows
        "scored", view.id, identity=("demo", version.version, "run-b"), model_name="demo",
        model_version=version.version, run_id="run-b", manifest_key=first["manifest_key"],
        output_key=first["output_key"], rows=600, mode="rescore")
    far_labels = generate_batch(spec, 50, seed=61, start_row=900_000)[["row_id", "label"]]
    put_dataframe(store, keys.labels_key("demo", "far-away"), far_labels)
    index = ledger.record(store, "demo", [rescore])
    ledger.record(store, "demo", batch_gate.discover_labels(store, "demo", contract, index))

    report = monitor(store, "demo", "demo", window_days=7)
    assert report.window["feature_rows"] == 600 and report.window["prediction_rows"] == 600
    assert report.drift.n_current == 600 and report.window["run_ids"] == ["run-b"]
    assert report.window["label_keys"] == [keys.labels_key("demo", "labels-run-a")]
    assert report.quality.labelled_rows == 600
