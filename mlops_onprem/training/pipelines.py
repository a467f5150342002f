"""The ``preprocess -> estimator`` pipeline of a model spec (unfitted) and a fitted pipeline's
native scores.

Every model is a :class:`sklearn.pipeline.Pipeline` whose preprocessing (imputation, scaling,
one-hot encoding of the contract's categorical features) is exported into the ONNX graph with
the estimator, so scoring needs nothing but the graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_onprem.contracts import Contract, Dtype, Task
from mlops_onprem.errors import ModelError
from mlops_onprem.model_spec import ModelSpec
from mlops_onprem.onnx_io import ScoreArrays
from mlops_onprem.training.split import TrainingDataError


def _one_hot(contract: Contract, names: list[str]) -> OneHotEncoder:
    categories: Any = "auto"
    if all(contract.feature(n).dtype == Dtype.CATEGORY for n in names):
        # contract categories fix the encoding; unknown values become all-zero columns
        categories = [list(contract.feature(n).categories or ()) for n in names]
    return OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False)


def build_pipeline(spec: ModelSpec, contract: Contract) -> Pipeline:
    """The unfitted ``preprocess -> estimator`` pipeline for ``spec`` and ``contract``.

    Raises UnsupportedModelError for kinds we cannot export, ModelError for a contract
    without a label.
    """
    spec.check_supported()
    if contract.label is None:
        raise TrainingDataError(f"contract {contract.dataset!r} declares no label: cannot train")
    task = contract.label.task
    numeric = [c.name for c in contract.features if c.is_numeric]
    strings = [c.name for c in contract.features if c.dtype in (Dtype.CATEGORY, Dtype.STRING)]
    params = spec.estimator_params(task)
    numeric_steps: Any
    if spec.kind == "xgboost":
        from xgboost import XGBClassifier, XGBRegressor

        numeric_steps = "passthrough"  # trees route NaN natively
        params.setdefault("random_state", spec.seed)
        if task == Task.REGRESSION:
            estimator: Any = XGBRegressor(**params)
        else:
            estimator = XGBClassifier(**params)
    elif spec.kind == "random_forest":
        numeric_steps = SimpleImputer(strategy="median")
        params.setdefault("random_state", spec.seed)
        cls = RandomForestRegressor if task == Task.REGRESSION else RandomForestClassifier
        estimator = cls(**params)
    elif spec.kind == "linear":
        numeric_steps = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
        if task == Task.REGRESSION:
            estimator = Ridge(**params)
        else:
            params.setdefault("random_state", spec.seed)
            estimator = LogisticRegression(**params)
    else:  # pragma: no cover - the Literal type makes this unreachable
        raise ModelError(f"spec {spec.name!r}: unknown kind {spec.kind!r}")
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(("numeric", numeric_steps, numeric))
    if strings:
        transformers.append(("categorical", _one_hot(contract, strings), strings))
    preprocess = ColumnTransformer(transformers, remainder="drop")
    # numpy output keeps XGBoost's feature names f0..fN, which onnxmltools requires
    preprocess.set_output(transform="default")
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def native_scores(pipeline: Pipeline, features: pd.DataFrame, task: Task) -> ScoreArrays:
    """The fitted pipeline's own predictions in the :class:`ScoreArrays` convention."""
    if task == Task.REGRESSION:
        value = np.asarray(pipeline.predict(features), dtype=np.float64).reshape(-1)
        return ScoreArrays(score=value)
    probabilities = np.asarray(pipeline.predict_proba(features))
    label = probabilities.argmax(axis=1).astype(np.int64)
    score = probabilities[:, 1] if task == Task.BINARY else probabilities.max(axis=1)
    return ScoreArrays(score=score.astype(np.float64), label=label, probabilities=probabilities)


