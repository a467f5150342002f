"""Quality without labels (CBPE) and the calibration check behind it; metrics of resampled rows.

Promise (README, monitoring): on synthetic covariate shift (inputs move, the label's dependence
on them does not) the label-free ROC AUC of a calibrated binary classifier is within 0.03 of the
realized one on 5,000-row windows.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlops_onprem.contracts import Task
from mlops_onprem.quality import (
    apply_calibration,
    check_calibration,
    estimate_metrics,
    expected_calibration_error,
    metric_value,
)
from mlops_onprem.synthetic import SyntheticSpec, generate_batch


def _model(spec: SyntheticSpec):
    columns = [c for c in spec.numeric_names if c != spec.nullable_feature]
    frame = generate_batch(spec, 6000, seed=1)
    model = LogisticRegression(max_iter=1000).fit(frame[columns][:4000], frame["label"][:4000])
    holdout = frame[4000:]
    return model, columns, holdout["label"].to_numpy(), model.predict_proba(holdout[columns])


@pytest.mark.parametrize("shift", [0.0, 0.5, 1.0])
def test_estimated_roc_auc_is_within_0_03_of_realized_under_covariate_shift(shift):
    spec = SyntheticSpec()
    model, columns, y_holdout, p_holdout = _model(spec)
    calibration = check_calibration(Task.BINARY, y_holdout, p_holdout)
    assert calibration["status"] in ("calibrated", "recalibrated")
    window = generate_batch(spec, 5000, seed=100 + int(10 * shift), covariate_shift=shift)
    p = apply_calibration(calibration, model.predict_proba(window[columns]))
    estimated = estimate_metrics(Task.BINARY, p)
    y = window["label"].to_numpy()
    realized = metric_value(Task.BINARY, "roc_auc", y, p, p[:, 1])
    assert abs(estimated["roc_auc"] - realized) <= 0.03
    assert abs(estimated["accuracy"] - metric_value(Task.BINARY, "accuracy", y, p, p[:, 1])) <= 0.03


def test_multiclass_estimates_track_realized_on_a_moderate_shift():
    spec = SyntheticSpec(task=Task.MULTICLASS, n_classes=3)
    model, columns, y_holdout, p_holdout = _model(spec)
    calibration = check_calibration(Task.MULTICLASS, y_holdout, p_holdout)
    window = generate_batch(spec, 5000, seed=7, covariate_shift=0.5)
    p = apply_calibration(calibration, model.predict_proba(window[columns]))
    y = window["label"].to_numpy()
    estimated = estimate_metrics(Task.MULTICLASS, p)
    assert abs(estimated["roc_auc"] - metric_value(Task.MULTICLASS, "roc_auc", y, p, p[:, 0])) <= 0.03


def test_miscalibrated_scores_are_recalibrated_and_the_card_says_how_much():
    spec = SyntheticSpec()
    _, _, y, p = _model(spec)
    skewed = np.column_stack([1 - p[:, 1] ** 3, p[:, 1] ** 3])  # confidently wrong
    calibration = check_calibration(Task.BINARY, y, skewed)
    assert calibration["ece_before"] > 0.05
    assert calibration["status"] == "recalibrated" and calibration["ece_after"] <= 0.05
    fixed = apply_calibration(calibration, skewed)
    assert expected_calibration_error(y, fixed) < calibration["ece_before"]


def test_estimates_are_refused_with_a_reason_when_they_cannot_be_founded():
    rng = np.random.default_rng(0)
    small = check_calibration(Task.BINARY, rng.integers(0, 2, 40), rng.dirichlet([1, 1], 40))
    assert small["status"] == "refused" and "40 holdout rows" in small["reason"]
    noise = check_calibration(Task.BINARY, rng.integers(0, 2, 400),
                              np.column_stack([np.zeros(400), np.ones(400)]))
    assert noise["status"] == "refused" and "miscalibrated" in noise["reason"]
    regression = check_calibration(Task.REGRESSION, np.zeros(0), np.zeros((0, 1)))
    assert "not supported for regression" in regression["reason"]


def test_binary_metrics_in_numpy_equal_scikit_learns_ties_and_extremes_included():
    """quality computes binary ROC AUC, F1 and log loss itself (bootstrap speed); the values
    must be scikit-learn's on random, tied and 0/1 probabilities."""
    from sklearn import metrics as skm

    from mlops_onprem.contracts import Task
    from mlops_onprem.quality import metric_value

    rng = np.random.default_rng(1)
    for trial in range(60):
        n = int(rng.integers(5, 300))
        y = rng.integers(0, 2, n)
        p = rng.random(n)
        if trial % 3 == 0:
            p = np.round(p, 1)  # ties
        if trial % 5 == 0:
            p[: n // 3] = 0.0  # certain, and sometimes wrong
        probabilities = np.column_stack([1 - p, p])
        predicted = (p >= 0.5).astype(int)
        if len(np.unique(y)) == 2:
            assert metric_value(Task.BINARY, "roc_auc", y, probabilities, p, 0.5) == \
                pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
        assert metric_value(Task.BINARY, "f1", y, probabilities, p, 0.5) == \
            pytest.approx(skm.f1_score(y, predicted, zero_division=0), abs=1e-12)
        assert metric_value(Task.BINARY, "log_loss", y, probabilities, p, 0.5) == \
            pytest.approx(skm.log_loss(y, probabilities, labels=[0, 1]), rel=1e-9)
