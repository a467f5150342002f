"""Fitting a model (pure: a DataFrame in, a :class:`TrainedModel` out): split, fit, holdout
scores and metrics, the binary decision threshold and permutation importance; and the native
model's files in a non-pickle format.

Models are fitted on the float32 / string values of :func:`mlops_onprem.onnx_io.build_feeds`,
exactly what the ONNX graph receives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlops_onprem.contracts import Contract, Task
from mlops_onprem.jsonio import jsonable
from mlops_onprem.model_insights import permutation_importance
from mlops_onprem.model_spec import ModelSpec
from mlops_onprem.onnx_io import ScoreArrays, build_feeds, feeds_to_frame
from mlops_onprem.threshold import ThresholdChoice, choose_threshold
from mlops_onprem.training.metrics import compute_metrics
from mlops_onprem.training.pipelines import build_pipeline, native_scores
from mlops_onprem.training.split import TrainingDataError, encode_labels, split_train_holdout


@dataclass
class TrainedModel:
    """A fitted pipeline with its split, holdout and native holdout scores."""

    pipeline: Pipeline
    spec: ModelSpec
    contract: Contract
    task: Task
    split_method: str
    train_rows: int
    holdout: pd.DataFrame  # holdout rows: row key, timestamp, features, label (as read)
    y_holdout: np.ndarray  # encoded: class index (int64) or value (float64)
    native_holdout: ScoreArrays
    metrics: dict[str, float | None]
    fit_seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    threshold: ThresholdChoice | None = None  # binary only
    feature_importance: list[dict[str, Any]] = field(default_factory=list)  # permutation, holdout


def train_model(frame: pd.DataFrame, contract: Contract, spec: ModelSpec) -> TrainedModel:
    """Split ``frame``, fit the spec's pipeline on the training part, score the holdout.

    Returns a :class:`TrainedModel`. Raises TrainingDataError (no label, class missing from
    the training part) and UnsupportedModelError (estimator cannot be exported).
    """
    pipeline = build_pipeline(spec, contract)
    if contract.label is None:  # build_pipeline checked; explicit under python -O too
        raise TrainingDataError(f"contract {contract.dataset!r} declares no label: nothing to train")
    task = contract.label.task
    train, holdout, method = split_train_holdout(
        frame, contract, holdout_fraction=spec.holdout_fraction, seed=spec.seed, method=spec.split
    )
    y_train = encode_labels(train[contract.label.name], contract)
    y_holdout = encode_labels(holdout[contract.label.name], contract)
    if task != Task.REGRESSION:
        n_classes = len(contract.label.classes or ())
        seen = set(np.unique(y_train).tolist())
        absent = [contract.label.classes[i] for i in range(n_classes) if i not in seen]  # type: ignore[index]
        if absent:
            raise TrainingDataError(
                f"training rows of {contract.dataset!r} ({method} split) lack classes {absent}; "
                "the model could not predict them"
            )
    x_train = feeds_to_frame(build_feeds(train, contract), contract)
    x_holdout = feeds_to_frame(build_feeds(holdout, contract), contract)
    started = time.perf_counter()
    pipeline.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - started
    scores = native_scores(pipeline, x_holdout, task)
    rule = spec.threshold_for(task)  # raises for a threshold on a non-binary spec
    threshold = (choose_threshold(rule, y_holdout, np.asarray(scores.probabilities)[:, 1])
                 if task == Task.BINARY else None)

    def predict(x: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        native = native_scores(pipeline, x, task)
        return native.score, native.probabilities

    importance = permutation_importance(
        predict, x_holdout, y_holdout, task, spec.primary_metric_for(task),
        threshold=None if threshold is None else threshold.value, seed=spec.seed)
    return TrainedModel(
        pipeline=pipeline,
        spec=spec,
        contract=contract,
        task=task,
        split_method=method,
        train_rows=len(train),
        holdout=holdout.reset_index(drop=True),
        y_holdout=y_holdout,
        native_holdout=scores,
        metrics=compute_metrics(task, y_holdout, scores,
                                None if threshold is None else threshold.value),
        fit_seconds=fit_seconds,
        threshold=threshold,
        params=jsonable(spec.estimator_params(task)),
        feature_importance=importance,
    )


def native_model_files(trained: TrainedModel) -> dict[str, bytes]:
    """The native model in a non-pickle format: ``{file name: bytes}``.

    XGBoost: the booster as JSON (``model.xgb.json``; the preprocessing lives in the ONNX
    graph). scikit-learn: the whole pipeline with skops (``model.skops``).
    """
    estimator = trained.pipeline.named_steps["model"]
    if trained.spec.kind == "xgboost":
        return {"model.xgb.json": bytes(estimator.get_booster().save_raw(raw_format="json"))}
    import skops.io

    return {"model.skops": skops.io.dumps(trained.pipeline)}
