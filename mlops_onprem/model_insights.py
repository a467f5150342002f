"""What a model card shows beyond its metrics: which features matter, and how the model errs.

- :func:`permutation_importance`: for each feature, how much the primary metric on the holdout
  worsens when that feature's values are shuffled (mean and spread over ``repeats`` shuffles;
  at most ``MAX_ROWS`` holdout rows). Model-agnostic, so XGBoost, forests and linear models are
  read on the same scale, in the units of the metric the gate compares.
- :func:`holdout_figure`: one PNG of the holdout. Binary: ROC and precision-recall curves and
  the confusion matrix at the decision threshold; multiclass: the confusion matrix; regression:
  predicted vs actual and residuals. Stored beside the card (``card.png``) and inlined in
  ``card.md`` and the model-card artifact.

Pure functions of arrays and a fitted estimator: no store, no Prefect.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mlops_onprem.contracts import Task
from mlops_onprem.model_spec import HIGHER_IS_BETTER
from mlops_onprem.quality import Rows

MAX_ROWS = 500
REPEATS = 2


def permutation_importance(
    predict: Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray | None]],
    features: pd.DataFrame, y: np.ndarray, task: Task, metric: str, *,
    threshold: float | None = None, seed: int = 0, repeats: int = REPEATS,
) -> list[dict[str, Any]]:
    """Per feature ``{feature, importance, std}`` (metric units, positive = the model needs
    it), most important first. ``predict`` returns (score, probabilities) for a frame."""
    rng = np.random.default_rng(seed)
    if len(features) > MAX_ROWS:
        chosen = rng.choice(len(features), MAX_ROWS, replace=False)
        features, y = features.iloc[chosen], np.asarray(y)[chosen]
    features = features.reset_index(drop=True)
    higher = HIGHER_IS_BETTER[metric]

    def measured(frame: pd.DataFrame) -> float | None:
        score, probabilities = predict(frame)
        return Rows(y, score, probabilities, threshold).metric(task, metric)

    baseline = measured(features)
    if baseline is None:
        return []
    out = []
    for column in features.columns:
        drops = []
        for _ in range(repeats):
            shuffled = features.copy()
            shuffled[column] = shuffled[column].to_numpy()[rng.permutation(len(shuffled))]
            value = measured(shuffled)
            if value is not None:
                drops.append((baseline - value) if higher else (value - baseline))
        if drops:
            out.append({"feature": column, "importance": float(np.mean(drops)),
                        "std": float(np.std(drops))})
    return sorted(out, key=lambda item: -item["importance"])


def _binary_panels(fig: Any, y: np.ndarray, score: np.ndarray, threshold: float) -> None:
    from sklearn.metrics import precision_recall_curve, roc_curve

    roc = fig.add_subplot(1, 3, 1)
    if len(np.unique(y)) == 2:
        fpr, tpr, _ = roc_curve(y, score)
        roc.plot(fpr, tpr, color="#4c72b0")
        precision, recall, _ = precision_recall_curve(y, score)
        pr = fig.add_subplot(1, 3, 2)
        pr.plot(recall, precision, color="#55a868")
        pr.axhline(float(np.mean(y)), linestyle=":", color="grey")
        pr.set(title="precision-recall", xlabel="recall", ylabel="precision", ylim=(0, 1.02))
    roc.plot([0, 1], [0, 1], linestyle=":", color="grey")
    roc.set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
    predicted = (score >= threshold).astype(int)
    _confusion(fig.add_subplot(1, 3, 3), y, predicted, ["0", "1"],
               f"confusion at threshold {threshold:.3g}")


def _confusion(ax: Any, y: np.ndarray, predicted: np.ndarray, classes: list[str], title: str) -> None:
    k = len(classes)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (y.astype(int), predicted.astype(int)), 1)
    ax.imshow(matrix, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black", fontsize=10)
    ax.set_xticks(range(k), classes, fontsize=9)
    ax.set_yticks(range(k), classes, fontsize=9)
    ax.set(title=title, xlabel="predicted", ylabel="actual")


def holdout_figure(task: Task, y: np.ndarray, score: np.ndarray,
                   probabilities: np.ndarray | None, *, threshold: float | None = None,
                   classes: list[str] | None = None) -> bytes | None:
    """The card's PNG of the holdout (None without rows)."""
    if len(y) == 0:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    task = Task(task)
    if task == Task.BINARY:
        fig = Figure(figsize=(12, 3.6), dpi=80)
        _binary_panels(fig, y, score, 0.5 if threshold is None else threshold)
    elif task == Task.MULTICLASS:
        labels = classes or [str(i) for i in range(probabilities.shape[1])]
        fig = Figure(figsize=(1.2 * len(labels) + 3, 1.0 * len(labels) + 2.5), dpi=80)
        _confusion(fig.add_subplot(1, 1, 1), y, probabilities.argmax(axis=1), labels,
                   "confusion (most likely class)")
    else:
        fig = Figure(figsize=(9, 3.6), dpi=80)
        fit = fig.add_subplot(1, 2, 1)
        fit.scatter(y, score, s=6, alpha=0.5)
        low, high = float(min(y.min(), score.min())), float(max(y.max(), score.max()))
        fit.plot([low, high], [low, high], linestyle=":", color="grey")
        fit.set(title="predicted vs actual", xlabel="actual", ylabel="predicted")
        residual = fig.add_subplot(1, 2, 2)
        residual.scatter(score, y - score, s=6, alpha=0.5)
        residual.axhline(0, linestyle=":", color="grey")
        residual.set(title="residuals", xlabel="predicted", ylabel="actual - predicted")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
