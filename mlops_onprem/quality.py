"""Model quality in production: realized (delayed labels) with a confidence interval, and
estimated before labels arrive (confidence-based performance estimation, CBPE).

**Realized.** The primary metric on the window's labelled rows is compared with the holdout
value from training. Both are noisy, so the drop is judged with a bootstrap of the difference
(labelled rows and holdout rows resampled independently): the window is *degraded* when the
drop is significant at ``quality_alpha`` (one-sided) **and** at least ``max_quality_drop``
(relative) as a point estimate, so noise does not alarm and a real drop on 200 rows does.

**Estimated (classification).** With calibrated probabilities, the expected confusion matrix of
a window follows from the scores alone (NannyML's CBPE, re-implemented here): accuracy, F1,
ROC AUC and log loss are estimated per window and reported next to the realized value once
labels arrive. Calibration is checked on the holdout at training (expected calibration error,
10 equal-mass bins); beyond ``CALIBRATION_TOLERANCE`` an isotonic map fitted on the holdout is
stored with the profile and applied; when even that fails, or the holdout is too small to
check, estimation is refused with the reason. Regression is not supported (it needs a model
of the loss), and the report says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn import metrics as skm

from mlops_onprem.contracts import Task
from mlops_onprem.threshold import predicted_positive

CALIBRATION_TOLERANCE = 0.05
MIN_CALIBRATION_ROWS = 100
ECE_BINS = 10
BOOTSTRAP_REPS = 300
BOOTSTRAP_MAX_ROWS = 20_000


# --- metrics of one (resampled) set of rows ---------------------------------------------------
# Binary ROC AUC, F1 and log loss are computed in numpy (the same values as scikit-learn's,
# ties included; tests/test_quality.py checks it): a bootstrap evaluates them hundreds of times,
# and scikit-learn's input validation costs ~1.5 ms a call, ~30x the arithmetic.
def binary_roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (tied scores count one half)."""
    positive = np.asarray(y) == 1
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _binary_f1(y: np.ndarray, predicted: np.ndarray) -> float:
    truth, guess = np.asarray(y) == 1, np.asarray(predicted) == 1
    tp = int(np.sum(truth & guess))
    wrong = int(np.sum(truth != guess))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + wrong)


def _log_loss(y: np.ndarray, probabilities: np.ndarray) -> float:
    p = probabilities / probabilities.sum(axis=1, keepdims=True)
    eps = np.finfo(p.dtype).eps
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), np.asarray(y, dtype=int)], eps,
                                         1 - eps))))


def metric_value(task: Task, metric: str, y: np.ndarray, probabilities: np.ndarray | None,
                 score: np.ndarray, threshold: float | None = None) -> float | None:
    """One metric (names as in training) from labels and scores; None when undefined.
    Binary accuracy and F1 predict positive at ``threshold`` (the model's decision threshold;
    None: the most likely class)."""
    task = Task(task)
    if task == Task.REGRESSION:
        error = score - y
        return {"rmse": float(np.sqrt(np.mean(error ** 2))), "mae": float(np.mean(np.abs(error))),
                "r2": float(skm.r2_score(y, score)) if len(y) > 1 else None}[metric]
    if probabilities is None:
        raise ValueError(f"{metric} of a {task.value} model needs class probabilities")
    k = probabilities.shape[1]
    if task == Task.BINARY and threshold is not None:
        predicted = predicted_positive(probabilities[:, 1], threshold)
    else:
        predicted = probabilities.argmax(axis=1)
    if metric == "accuracy":
        return float(np.mean(predicted == y))
    if metric == "f1" and task == Task.BINARY:
        return _binary_f1(y, predicted)
    if metric == "f1":
        return float(skm.f1_score(y, predicted, average="binary" if task == Task.BINARY else "macro",
                                  labels=None if task == Task.BINARY else list(range(k)),
                                  zero_division=0))
    if metric == "log_loss":
        return _log_loss(y, probabilities)
    if metric == "roc_auc":
        if len(np.unique(y)) < (2 if task == Task.BINARY else k):
            return None
        if task == Task.BINARY:
            return binary_roc_auc(y, probabilities[:, 1])
        return float(skm.roc_auc_score(y, probabilities, multi_class="ovr", labels=list(range(k))))
    raise ValueError(f"unknown metric {metric!r}")


@dataclass(frozen=True)
class Rows:
    """Labels and scores of a set of rows (classification: probabilities [n, k])."""

    y: np.ndarray
    score: np.ndarray
    probabilities: np.ndarray | None = None
    threshold: float | None = None  # binary decision threshold (None: most likely class)

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray) -> Rows:
        return Rows(self.y[idx], self.score[idx],
                    None if self.probabilities is None else self.probabilities[idx],
                    self.threshold)

    def metric(self, task: Task, metric: str) -> float | None:
        return metric_value(task, metric, self.y, self.probabilities, self.score, self.threshold)


def bootstrap_drop(task: Task, metric: str, higher_is_better: bool, live: Rows, holdout: Rows,
                   *, reps: int = BOOTSTRAP_REPS, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of how much worse ``live`` is than ``holdout`` (metric units,
    positive = worse), both resampled; undefined replicates are dropped."""
    rng = np.random.default_rng(seed)
    if len(live) > BOOTSTRAP_MAX_ROWS:  # the interval only needs a large sample, not all rows
        live = live.take(rng.choice(len(live), BOOTSTRAP_MAX_ROWS, replace=False))
    drops = []
    for _ in range(reps):
        a = live.take(rng.integers(0, len(live), len(live))).metric(task, metric)
        b = holdout.take(rng.integers(0, len(holdout), len(holdout))).metric(task, metric)
        if a is not None and b is not None:
            drops.append((b - a) if higher_is_better else (a - b))
    return np.asarray(drops, dtype=np.float64)


# --- label-free estimates ---------------------------------------------------------------------
def _expected_auc(p: np.ndarray, score: np.ndarray) -> float | None:
    """CBPE ROC AUC: the ROC curve expected when each row is positive with probability ``p``,
    rows ordered by ``score`` (ties form one step)."""
    positives, negatives = p.sum(), (1 - p).sum()
    if positives <= 0 or negatives <= 0:
        return None
    order = np.argsort(-score, kind="stable")
    s, pp = score[order], p[order]
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tpr = np.r_[0.0, np.cumsum(pp)[ends] / positives]
    fpr = np.r_[0.0, np.cumsum(1 - pp)[ends] / negatives]
    return float(np.trapezoid(tpr, fpr))


def estimate_metrics(task: Task, probabilities: np.ndarray, *, threshold: float | None = None,
                     decision_scores: np.ndarray | None = None) -> dict[str, float | None]:
    """Expected accuracy, F1, ROC AUC and log loss of rows whose calibrated class
    probabilities are ``probabilities`` [n, k]. The predicted class is the most likely one, or
    for a binary model with a ``threshold`` the rows whose (uncalibrated) ``decision_scores``
    reach it: the class scoring delivered."""
    task = Task(task)
    proba = np.clip(probabilities / probabilities.sum(axis=1, keepdims=True), 1e-15, 1)
    n, k = proba.shape
    if task == Task.BINARY and threshold is not None:
        raw = proba[:, 1] if decision_scores is None else decision_scores
        predicted = predicted_positive(raw, threshold)
    else:
        predicted = proba.argmax(axis=1)
    chosen = proba[np.arange(n), predicted]
    f1s = []
    for c in (range(1, 2) if task == Task.BINARY else range(k)):
        tp = proba[predicted == c, c].sum()
        fp = (1 - proba[predicted == c, c]).sum()
        fn = proba[predicted != c, c].sum()
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0)
    aucs = [_expected_auc(proba[:, c], proba[:, c]) for c in (range(1, 2) if task == Task.BINARY
                                                                else range(k))]
    return {
        "accuracy": float(chosen.mean()),
        "f1": float(np.mean(f1s)),
        "roc_auc": None if any(a is None for a in aucs) else float(np.mean(aucs)),
        "log_loss": float(-(proba * np.log(proba)).sum(axis=1).mean()),
    }


# --- calibration (checked at training, applied in monitoring) ---------------------------------
def expected_calibration_error(y: np.ndarray, probabilities: np.ndarray) -> float:
    """Top-label ECE over ``ECE_BINS`` equal-mass bins of confidence."""
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities[np.arange(len(y)), predicted]
    correct = (predicted == y).astype(np.float64)
    order = np.argsort(confidence, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(ECE_BINS, len(y))):
        if chunk.size:
            total += chunk.size * abs(correct[chunk].mean() - confidence[chunk].mean())
    return total / len(y)


def _fit_isotonic(y: np.ndarray, probabilities: np.ndarray) -> list[dict[str, list[float]]]:
    from sklearn.isotonic import IsotonicRegression

    maps = []
    for c in range(probabilities.shape[1]):
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(probabilities[:, c], (y == c).astype(np.float64))
        maps.append({"x": [float(v) for v in iso.X_thresholds_],
                     "y": [float(v) for v in iso.y_thresholds_]})
    return maps


def apply_calibration(calibration: dict[str, Any] | None, probabilities: np.ndarray) -> np.ndarray:
    """Calibrated probabilities (rows renormalised); unchanged when no map is stored."""
    maps = (calibration or {}).get("maps")
    if not maps:
        return probabilities
    out = np.column_stack([np.interp(probabilities[:, c], m["x"], m["y"])
                           for c, m in enumerate(maps)])
    sums = out.sum(axis=1, keepdims=True)
    return np.where(sums > 0, out / np.where(sums > 0, sums, 1), 1.0 / out.shape[1])


class CalibrationStatus(StrEnum):
    """What training decided about label-free estimates (``status`` of the calibration record)."""

    CALIBRATED = "calibrated"  # scores used as they are
    RECALIBRATED = "recalibrated"  # an isotonic map is stored in ``maps``
    REFUSED = "refused"  # no estimates; ``reason`` says why


def check_calibration(task: Task, y: np.ndarray, probabilities: np.ndarray | None, *,
                      tolerance: float = CALIBRATION_TOLERANCE, seed: int = 0) -> dict[str, Any]:
    """Decide at training whether window estimates can be trusted, from the holdout.

    Returns the record stored in the reference profile: ``status`` (``calibrated``: scores
    used as they are; ``recalibrated``: an isotonic map is stored in ``maps``; ``refused``:
    no estimates, ``reason`` says why), ``ece_before`` and ``ece_after`` (cross-fitted).
    """
    task = Task(task)
    record: dict[str, Any] = {"tolerance": tolerance, "holdout_rows": int(len(y)),
                              "method": "top-label ECE, 10 equal-mass bins"}
    if task == Task.REGRESSION:
        return {**record, "status": CalibrationStatus.REFUSED,
                "reason": "label-free estimation is not supported for regression (it needs a "
                          "model of the loss); realized quality only"}
    if probabilities is None or len(y) < MIN_CALIBRATION_ROWS:
        return {**record, "status": CalibrationStatus.REFUSED,
                "reason": f"calibration cannot be checked on {len(y)} holdout rows (needs "
                          f"{MIN_CALIBRATION_ROWS}); estimates would be unfounded"}
    ece = expected_calibration_error(y, probabilities)
    record["ece_before"] = ece
    if ece <= tolerance:
        return {**record, "status": CalibrationStatus.CALIBRATED, "ece_after": ece}
    # isotonic maps, their error measured by 2-fold cross-fitting on the holdout
    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(y)) % 2 == 0
    crossed = np.empty_like(probabilities)
    for train in (fold, ~fold):
        maps = _fit_isotonic(y[train], probabilities[train])
        crossed[~train] = apply_calibration({"maps": maps}, probabilities[~train])
    ece_after = expected_calibration_error(y, crossed)
    record["ece_after"] = ece_after
    if ece_after > tolerance:
        return {**record, "status": CalibrationStatus.REFUSED,
                "reason": f"scores are miscalibrated on the holdout (ECE {ece:.3f}, "
                          f"{ece_after:.3f} after isotonic recalibration > {tolerance:g})"}
    return {**record, "status": CalibrationStatus.RECALIBRATED, "maps": _fit_isotonic(y, probabilities)}


# --- the window's verdict ---------------------------------------------------------------------
class QualityStatus(StrEnum):
    """A window's quality verdict. Realized (``status``): ok, degraded, insufficient_labels,
    no_labels; label-free estimate (``estimated_status``): ok, degraded, refused, not_estimated."""

    OK = "ok"
    DEGRADED = "degraded"
    INSUFFICIENT_LABELS = "insufficient_labels"
    NO_LABELS = "no_labels"
    REFUSED = "refused"
    NOT_ESTIMATED = "not_estimated"


@dataclass(frozen=True)
class QualityResult:
    """Realized quality from delayed labels vs the holdout, and the label-free estimate."""

    status: QualityStatus  # ok | degraded | insufficient_labels | no_labels
    metric: str | None
    higher_is_better: bool | None
    holdout: float | None
    live: float | None
    relative_drop: float | None
    labelled_rows: int
    live_metrics: dict[str, float | None] = field(default_factory=dict)
    drop_interval: tuple[float, float] | None = None  # one-sided bound .. upper, metric units
    significant: bool = False
    estimated: float | None = None  # label-free estimate of ``metric`` on the whole window
    estimated_metrics: dict[str, float | None] = field(default_factory=dict)
    estimated_status: QualityStatus = QualityStatus.NOT_ESTIMATED  # ok | degraded | refused
    estimate_note: str = ""
    estimated_relative_drop: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def relative_drop(holdout: float, value: float, higher_is_better: bool) -> float:
    worse_by = (holdout - value) if higher_is_better else (value - holdout)
    return worse_by / abs(holdout) if holdout else (math.inf if worse_by > 0 else 0.0)
