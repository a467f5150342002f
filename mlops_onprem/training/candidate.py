"""Candidates: train on the ledger's training set, export to ONNX and stage every file in the
store under ``models/<name>/staging/<run_id>/`` (what the training task runs; registration
turns a staged candidate into a version).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_onprem import keys
from mlops_onprem.contracts import Contract
from mlops_onprem.jsonio import jsonable
from mlops_onprem.model_spec import ModelSpec
from mlops_onprem.onnx_export import export_onnx
from mlops_onprem.onnx_io import metadata_for
from mlops_onprem.reference_profile import build_reference_profile
from mlops_onprem.store.base import ObjectStore
from mlops_onprem.store.parquet import put_dataframe
from mlops_onprem.training.data import load_training_frame
from mlops_onprem.training.evaluation import eval_frame_with_native
from mlops_onprem.training.fit import native_model_files, train_model

EVAL_FILE = "eval.parquet"
REFERENCE_FEATURES_FILE = "reference_features.json"  # staged: the training rows' feature profile
ONNX_FILE = "model.onnx"
CANDIDATE_FILE = "candidate.json"


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
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(**data)


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
    store.put_json(keys.model_staging_key(model_name, run_id, CANDIDATE_FILE), jsonable(candidate.to_dict()))
    return candidate
