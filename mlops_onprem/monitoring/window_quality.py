"""The window's model quality: realized on the delayed labels of its rows (with a bootstrap
interval of the drop against the holdout) and estimated without labels (CBPE on every
prediction of the window, through the holdout calibration check).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlops_onprem import quality
from mlops_onprem.contracts import Contract, Task
from mlops_onprem.monitoring.decision import MonitoringPolicy
from mlops_onprem.quality import CalibrationStatus, QualityResult, QualityStatus
from mlops_onprem.threshold import threshold_of


def _probabilities(predictions: pd.DataFrame, contract: Contract) -> np.ndarray | None:
    task = contract.label.task if contract.label else Task.REGRESSION
    if task == Task.REGRESSION:
        return None
    if task == Task.BINARY:
        score = predictions["score"].to_numpy(dtype=np.float64)
        return np.column_stack([1.0 - score, score])
    return predictions[[f"proba_{c}" for c in contract.label.classes or ()]].to_numpy(
        dtype=np.float64)


def _rows(frame: pd.DataFrame, contract: Contract, y: np.ndarray,
          threshold: float | None) -> quality.Rows:
    return quality.Rows(y, frame["score"].to_numpy(dtype=np.float64),
                        _probabilities(frame, contract), threshold)


def holdout_rows(eval_frame: pd.DataFrame, contract: Contract,
                 threshold: float | None = None) -> quality.Rows:
    """The model's holdout rows (labels and native scores) as :class:`quality.Rows`."""
    from mlops_onprem.training import encode_labels, native_scores_from_eval

    native = native_scores_from_eval(eval_frame)
    return quality.Rows(encode_labels(eval_frame[contract.label_name], contract), native.score,
                        native.probabilities, threshold)


def live_quality(
    predictions: pd.DataFrame, labels: pd.DataFrame, contract: Contract, card: dict[str, Any],
    policy: MonitoringPolicy, *, holdout: quality.Rows | None = None,
    calibration: dict[str, Any] | None = None,
) -> QualityResult:
    """Realized quality of the window's labelled rows vs the holdout (with a bootstrap interval
    when ``holdout`` rows are given, else the holdout value is taken as exact), and the
    label-free estimate over all the window's predictions when ``calibration`` allows it.

    A label the contract does not allow raises the training module's ``TrainingDataError``.
    """
    from mlops_onprem.onnx_io import ScoreArrays
    from mlops_onprem.training import compute_metrics, encode_labels

    primary = card.get("primary_metric", {})
    metric, higher = primary.get("name"), primary.get("higher_is_better")
    held = card.get("metrics", {}).get(metric) if metric else None
    task = contract.label.task if contract.label else Task.REGRESSION
    threshold = threshold_of(card)
    estimate = _estimate(task, metric, higher, held, predictions, contract, calibration, policy,
                         threshold)
    if labels.empty or predictions.empty:
        return QualityResult(QualityStatus.NO_LABELS, metric, higher, held, None, None, 0, **estimate)
    joined = predictions.merge(labels, on=contract.row_key, how="inner")
    n = len(joined)
    if n < policy.min_labelled_rows:
        return QualityResult(QualityStatus.INSUFFICIENT_LABELS, metric, higher, held, None, None, n,
                             **estimate)
    y_true = encode_labels(joined[contract.label_name], contract)
    rows = _rows(joined, contract, y_true, threshold)
    live_metrics = compute_metrics(task, y_true, ScoreArrays(
        score=rows.score, probabilities=rows.probabilities), threshold)
    live = live_metrics.get(metric) if metric else None
    if live is None or held is None or higher is None:
        return QualityResult(QualityStatus.INSUFFICIENT_LABELS, metric, higher, held, live, None, n,
                             live_metrics, **estimate)
    drop = quality.relative_drop(held, live, higher)
    interval, significant = None, drop > 0
    if holdout is not None and len(holdout):
        drops = quality.bootstrap_drop(task, metric, higher, rows, holdout)
        if drops.size:
            lower = float(np.quantile(drops, policy.quality_alpha))
            interval = (lower, float(np.quantile(drops, 1 - policy.quality_alpha)))
            significant = lower > 0
    status = (QualityStatus.DEGRADED if significant and drop >= policy.max_quality_drop
              else QualityStatus.OK)
    return QualityResult(status, metric, higher, held, live, drop, n, live_metrics, interval,
                         significant, **estimate)


def _estimate(task: Task, metric: str | None, higher: bool | None, held: float | None,
              predictions: pd.DataFrame, contract: Contract, calibration: dict[str, Any] | None,
              policy: MonitoringPolicy, threshold: float | None) -> dict[str, Any]:
    if calibration is None:
        return {"estimate_note": "no calibration record (model registered before estimates)"}
    if calibration.get("status") == CalibrationStatus.REFUSED:
        return {"estimated_status": QualityStatus.REFUSED, "estimate_note": calibration.get("reason", "")}
    if predictions.empty:
        return {"estimate_note": "no predictions in the window"}
    raw = _probabilities(predictions, contract)
    probabilities = quality.apply_calibration(calibration, raw)
    estimated = quality.estimate_metrics(
        task, probabilities, threshold=threshold,
        decision_scores=None if raw is None or task != Task.BINARY else raw[:, 1])
    value = estimated.get(metric) if metric else None
    note = (f"CBPE on {len(predictions):,} rows; scores {calibration['status']} on "
            f"{calibration['holdout_rows']} holdout rows (ECE {calibration.get('ece_after', 0):.3f})")
    if value is None or held is None or higher is None:
        return {"estimated_metrics": estimated, "estimated": value, "estimate_note": note}
    drop = quality.relative_drop(held, value, higher)
    return {"estimated_metrics": estimated, "estimated": value, "estimate_note": note,
            "estimated_relative_drop": drop,
            "estimated_status": (QualityStatus.DEGRADED if drop >= policy.estimated_quality_drop
                                 else QualityStatus.OK)}
