"""Training: validated data in, a fitted scikit-learn pipeline and holdout metrics out.

Every model is a :class:`sklearn.pipeline.Pipeline` ``preprocess -> estimator`` whose
preprocessing (imputation, scaling, one-hot encoding of the contract's categorical features)
is exported into the ONNX graph with the estimator, so scoring needs nothing but the graph.
Models are fitted on the float32 / string values of :func:`mlops_onprem.onnx_io.build_feeds`,
exactly what the ONNX graph receives.

Labels are trained as class *indices* (position in the contract's ``label.classes``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_onprem import keys
from mlops_onprem.contracts import Contract, Dtype, Task
from mlops_onprem.errors import ModelError
from mlops_onprem.model_insights import permutation_importance
from mlops_onprem.model_spec import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    ModelSpec,
)
from mlops_onprem.onnx_io import ScoreArrays, build_feeds, feeds_to_frame
from mlops_onprem.quality import metric_value
from mlops_onprem.store.base import ObjectInfo, ObjectStore
from mlops_onprem.store.parquet import get_dataframe
from mlops_onprem.threshold import ThresholdChoice, choose_threshold


class TrainingDataError(ModelError):
    """There is no usable training data (no validated batches, no label, a missing class)."""


@dataclass(frozen=True)
class TrainingData:
    """Lineage of the rows a model was trained on.

    ``sha256`` is the SHA-256 of the sorted lines ``"<object key>\\t<object sha256>\\n"`` of
    every validated Parquet object read: it changes when any input object's bytes change,
    and computing it costs no pass over the data. ``versions`` lists the ledger's batch versions
    read (id, landed keys, content hash, validated copy, data date, rows).
    """

    dataset: str
    object_keys: list[str]
    rows: int
    sha256: str
    versions: list[dict[str, Any]] = field(default_factory=list)


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


# --- data ---------------------------------------------------------------------------------
def training_data_sha256(objects: list[ObjectInfo]) -> str:
    """SHA-256 over the sorted ``key<TAB>sha256`` lines of the input objects (see TrainingData)."""
    digest = hashlib.sha256()
    for info in sorted(objects, key=lambda o: o.key):
        digest.update(f"{info.key}\t{info.sha256}\n".encode())
    return digest.hexdigest()


def load_training_frame(
    store: ObjectStore, dataset: str, contract: Contract, *, window_days: int | None = None,
    window_batches: int | None = None,
) -> tuple[pd.DataFrame, TrainingData]:
    """Read the training set the batch ledger decides: the current, validated training batch
    versions of ``dataset`` (optionally the last ``window_days`` days of data or the newest
    ``window_batches``), each once, oldest first.

    A row key present in two versions (a ``row_key_overlap`` policy of warn / keep_latest) is
    kept from the newest one. Returns the rows (contract input columns with the label) and
    their lineage, which names every batch version (landed key, content hash, validated copy).
    Raises TrainingDataError when the ledger holds no validated training batch.
    """
    from mlops_onprem import ledger

    index = ledger.read_index(store, dataset)
    views = ledger.training_set(index, last_days=window_days, last_batches=window_batches)
    if not views:
        raise TrainingDataError(
            f"no validated training batch of {dataset!r} in the ledger "
            f"{store.location}/{keys.ledger_index_key(dataset)} (window_days={window_days}, "
            f"window_batches={window_batches}): land batches under "
            f"{keys.incoming_prefix(dataset)} and run ingest-batch first")
    columns = contract.input_columns(with_label=True)
    objects, frames, versions = [], [], []
    for view in views:
        info = store.stat(view.validated_key)
        frame = get_dataframe(store, view.validated_key, columns=columns)
        objects.append(info)
        frames.append(frame)
        versions.append({"version": view.id, "source_key": (view.validation or {}).get("source_key"),
                         "keys": list(view.state["keys"]), "content_sha256": view.state["sha256"],
                         "validated_key": view.validated_key, "data_date": view.data_date,
                         "contract_version": (view.validation or {}).get("contract_version"),
                         "rows": len(frame)})
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if contract.row_key in frame:
        frame = frame.drop_duplicates(contract.row_key, keep="last").reset_index(drop=True)
    lineage = TrainingData(
        dataset=dataset,
        object_keys=[info.key for info in objects],
        rows=len(frame),
        sha256=training_data_sha256(objects),
        versions=versions,
    )
    return frame, lineage


def encode_labels(values: pd.Series, contract: Contract) -> np.ndarray:
    """Class indices (classification, int64) or float64 values (regression).

    Raises TrainingDataError for missing labels or labels outside the contract's classes.
    """
    label = contract.label
    if label is None:
        raise TrainingDataError(f"contract {contract.dataset!r} declares no label: cannot train")
    if values.isna().any():
        raise TrainingDataError(
            f"label column {label.name!r} has {int(values.isna().sum())} missing values"
        )
    if label.task == Task.REGRESSION:
        return values.to_numpy(dtype=np.float64)
    classes = list(label.classes or ())
    lookup = {c: i for i, c in enumerate(classes)} | {str(c): i for i, c in enumerate(classes)}
    encoded = values.map(lambda v: lookup.get(v, lookup.get(str(v), -1))).to_numpy(dtype=np.int64)
    if (encoded < 0).any():
        bad = values[encoded < 0].iloc[0]
        bad = bad.item() if isinstance(bad, np.generic) else bad
        raise TrainingDataError(
            f"label column {label.name!r} has value {bad!r} outside contract classes {classes}"
        )
    return encoded


def _class_counts(frame: pd.DataFrame, label: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame[label].value_counts().sort_index().items()}


def split_train_holdout(
    frame: pd.DataFrame, contract: Contract, *, holdout_fraction: float, seed: int,
    method: str = "auto",
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Split rows into train and holdout.

    ``method`` "time" (the latest ``holdout_fraction`` of rows by the contract's timestamp, ties
    broken by row key), "stratified" / "random" (seeded), or "auto": time when the contract names
    a timestamp, else stratified random for classification. Returns ``(train, holdout,
    method)``. Raises TrainingDataError if either side would be empty, and, for
    classification, when a class of the data is missing from the holdout or the training side
    (e.g. data ordered by class under a time split): the error gives the class counts of both
    sides and names the spec's ``split`` option, instead of an undefined metric at the gate.
    """
    n_holdout = int(round(len(frame) * holdout_fraction))
    if n_holdout < 1 or n_holdout >= len(frame):
        raise TrainingDataError(
            f"{len(frame)} rows cannot be split with holdout fraction {holdout_fraction}"
        )
    classification = contract.label is not None and contract.label.task != Task.REGRESSION
    if method == "time" or (method == "auto" and contract.timestamp):
        if not contract.timestamp:
            raise TrainingDataError(f"split 'time' needs a timestamp; contract {contract.dataset!r} "
                                    "names none")
        ordered = frame.sort_values([contract.timestamp, contract.row_key], kind="stable")
        cut = len(ordered) - n_holdout
        train, holdout, used = ordered.iloc[:cut], ordered.iloc[cut:], f"time ({contract.timestamp})"
    else:
        stratify = None
        if classification and method != "random":
            counts = frame[contract.label.name].value_counts()
            if counts.min() >= 2:  # stratification needs two rows per class
                stratify = frame[contract.label.name]
        train, holdout = train_test_split(
            frame, test_size=n_holdout, random_state=seed, shuffle=True, stratify=stratify
        )
        used = "stratified random" if stratify is not None else "random"
    if classification:
        classes = set(frame[contract.label.name].unique())
        missing_holdout = classes - set(holdout[contract.label.name].unique())
        missing_train = classes - set(train[contract.label.name].unique())
        if missing_holdout or missing_train:
            raise TrainingDataError(
                f"the {used} split of {len(frame)} rows leaves class(es) "
                f"{sorted(map(str, missing_holdout | missing_train))} out of the "
                f"{'holdout' if missing_holdout else 'training side'} (train "
                f"{_class_counts(train, contract.label.name)}, holdout "
                f"{_class_counts(holdout, contract.label.name)}): the holdout metric would be "
                "undefined or biased; set `split: stratified` (or `random`) in the model spec, "
                "or land data covering every class in the latest period")
    return train, holdout, used


# --- pipelines ----------------------------------------------------------------------------
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


# --- metrics ------------------------------------------------------------------------------
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


# --- training -----------------------------------------------------------------------------
def train_model(frame: pd.DataFrame, contract: Contract, spec: ModelSpec) -> TrainedModel:
    """Split ``frame``, fit the spec's pipeline on the training part, score the holdout.

    Returns a :class:`TrainedModel`. Raises TrainingDataError (no label, class missing from
    the training part) and UnsupportedModelError (estimator cannot be exported).
    """
    import time

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
        params=json.loads(json.dumps(spec.estimator_params(task), default=str)),
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


# --- candidates: train, export and stage in the store (what the training task runs) -------
EVAL_FILE = "eval.parquet"
REFERENCE_FEATURES_FILE = "reference_features.json"  # staged: the training rows' feature profile
ONNX_FILE = "model.onnx"
CANDIDATE_FILE = "candidate.json"
NATIVE_SCORE = "_native_score"
NATIVE_LABEL = "_native_label"
NATIVE_PROBA = "_native_p"  # + class index


@dataclass(frozen=True)
class Candidate:
    """A trained, exported model staged at ``models/<name>/staging/<run_id>/``, not yet a version.

    Small and JSON-able (:meth:`to_dict`): this is what tasks pass to each other.
    """

    model_name: str
    run_id: str
    dataset: str
    task: str
    spec: dict[str, Any]
    primary_metric: str
    metrics: dict[str, float | None]
    params: dict[str, Any]
    data: dict[str, Any]
    contract: dict[str, Any]
    seed: int
    fit_seconds: float
    export_seconds: float
    staged: dict[str, str]  # file name -> staging key
    decision_threshold: dict[str, Any] | None = None  # binary: ThresholdChoice.to_dict()
    feature_importance: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(**data)


def eval_frame_with_native(trained: TrainedModel) -> pd.DataFrame:
    """The holdout rows plus the native model's scores (``_native_*`` columns)."""
    frame = trained.holdout.copy()
    scores = trained.native_holdout
    frame[NATIVE_SCORE] = scores.score
    if scores.label is not None and scores.probabilities is not None:
        frame[NATIVE_LABEL] = scores.label
        for k in range(scores.probabilities.shape[1]):
            frame[f"{NATIVE_PROBA}{k}"] = np.asarray(scores.probabilities[:, k], dtype=np.float64)
    return frame


def native_scores_from_eval(frame: pd.DataFrame) -> ScoreArrays:
    """Inverse of :func:`eval_frame_with_native`: the stored native scores."""
    score = frame[NATIVE_SCORE].to_numpy(dtype=np.float64)
    if NATIVE_LABEL not in frame.columns:
        return ScoreArrays(score=score)
    proba_columns = sorted(
        (c for c in frame.columns if c.startswith(NATIVE_PROBA)), key=lambda c: int(c[len(NATIVE_PROBA):])
    )
    return ScoreArrays(
        score=score,
        label=frame[NATIVE_LABEL].to_numpy(dtype=np.int64),
        probabilities=frame[proba_columns].to_numpy(dtype=np.float64),
    )


def _time_range(frame: pd.DataFrame, contract: Contract) -> list[str] | None:
    """First and last timestamp of the training rows (None without a timestamp column)."""
    if not contract.timestamp or contract.timestamp not in frame or frame.empty:
        return None
    values = pd.to_datetime(frame[contract.timestamp], errors="coerce").dropna()
    return None if values.empty else [values.min().isoformat(), values.max().isoformat()]


def train_candidate(
    store: ObjectStore,
    *,
    dataset: str,
    contract: Contract,
    spec: ModelSpec,
    model_name: str,
    run_id: str,
    window_days: int | None = None,
    window_batches: int | None = None,
) -> Candidate:
    """Train on the ledger's training set of ``dataset`` (see :func:`load_training_frame`),
    export to ONNX and stage the candidate.

    Writes ``model.onnx``, the native model file, ``eval.parquet`` (holdout + native scores)
    and ``candidate.json`` under :func:`keys.model_staging_prefix`. The ONNX model carries
    version ``0`` until registration stamps the real one.
    Raises TrainingDataError, UnsupportedModelError, ExportError.
    """
    import time

    from mlops_onprem.onnx_export import export_onnx
    from mlops_onprem.onnx_io import metadata_for
    from mlops_onprem.reference_profile import build_reference_profile
    from mlops_onprem.store.parquet import put_dataframe

    frame, lineage = load_training_frame(store, dataset, contract, window_days=window_days,
                                         window_batches=window_batches)
    trained = train_model(frame, contract, spec)
    started = time.perf_counter()
    onnx_bytes = export_onnx(
        trained.pipeline, contract,
        metadata_for(contract, model_name=model_name, model_version=0,
                     training_data_sha256=lineage.sha256),
    )
    export_seconds = time.perf_counter() - started
    staged: dict[str, str] = {}
    for filename, data in {ONNX_FILE: onnx_bytes, **native_model_files(trained)}.items():
        key = keys.model_staging_key(model_name, run_id, filename)
        store.put_bytes(key, data)
        staged[filename] = key
    eval_key = keys.model_staging_key(model_name, run_id, EVAL_FILE)
    put_dataframe(store, eval_key, eval_frame_with_native(trained))
    staged[EVAL_FILE] = eval_key
    # the monitoring reference: every row the model trained on (train and holdout)
    profile_key = keys.model_staging_key(model_name, run_id, REFERENCE_FEATURES_FILE)
    store.put_json(profile_key, build_reference_profile(
        frame, contract, np.zeros(len(frame))).to_dict())
    staged[REFERENCE_FEATURES_FILE] = profile_key
    candidate = Candidate(
        model_name=model_name,
        run_id=run_id,
        dataset=dataset,
        task=trained.task.value,
        spec=spec.model_dump(mode="json"),
        primary_metric=spec.primary_metric_for(trained.task),
        metrics=trained.metrics,
        params=trained.params,
        data={
            "dataset": dataset,
            "object_keys": lineage.object_keys,
            "batch_versions": lineage.versions,
            "window": {"days": window_days, "batches": window_batches},
            "rows": lineage.rows,
            "time_range": _time_range(frame, contract),
            "train_rows": trained.train_rows,
            "holdout_rows": len(trained.holdout),
            "split": trained.split_method,
            "holdout_fraction": spec.holdout_fraction,
            "sha256": lineage.sha256,
        },
        contract={
            "dataset": contract.dataset,
            "version": contract.version,
            "feature_names": contract.feature_names,
            "label": contract.label_name,
            "classes": list(contract.label.classes or ()) if contract.label else [],
        },
        seed=spec.seed,
        fit_seconds=trained.fit_seconds,
        export_seconds=export_seconds,
        staged=staged,
        decision_threshold=trained.threshold.to_dict() if trained.threshold else None,
        feature_importance=trained.feature_importance,
    )
    store.put_json(keys.model_staging_key(model_name, run_id, CANDIDATE_FILE), candidate.to_dict())
    return candidate
