"""Holdout metrics of a model and the rule that says whether one score beats another (pure).

One metric definition with monitoring: :func:`mlops_onprem.quality.metric_value`.
"""

from __future__ import annotations

import numpy as np

from mlops_onprem.contracts import Task
from mlops_onprem.errors import ModelError
from mlops_onprem.model_spec import CLASSIFICATION_METRICS, HIGHER_IS_BETTER, REGRESSION_METRICS
from mlops_onprem.onnx_io import ScoreArrays
from mlops_onprem.quality import metric_value


def compute_metrics(task: Task, y_true: np.ndarray, scores: ScoreArrays,
                    threshold: float | None = None) -> dict[str, float | None]:
    """Holdout metrics. Classification: roc_auc (ovr for multiclass), log_loss, f1 (macro for
    multiclass), accuracy (binary: positive at ``threshold``, None: the most likely class);
    regression: rmse, mae, r2. A metric undefined on this data (e.g. ROC AUC with one class
    present) is None. One definition with monitoring: :func:`quality.metric_value`."""
    task = Task(task)
    if task == Task.REGRESSION:
        names = REGRESSION_METRICS
        probabilities = None
    else:
        if scores.probabilities is None:
            raise ModelError("classification metrics need class probabilities")
        names = CLASSIFICATION_METRICS
        probabilities = np.asarray(scores.probabilities, dtype=np.float64)
    score = np.asarray(scores.score, dtype=np.float64)
    return {name: metric_value(task, name, y_true, probabilities, score, threshold)
            for name in names}


def is_better(metric: str, candidate: float, champion: float, margin: float) -> bool:
    """Whether ``candidate`` beats ``champion`` on ``metric`` by more than ``margin``."""
    if metric not in HIGHER_IS_BETTER:
        raise ModelError(f"unknown metric {metric!r}; known: {sorted(HIGHER_IS_BETTER)}")
    if HIGHER_IS_BETTER[metric]:
        return candidate > champion + margin
    return candidate < champion - margin


