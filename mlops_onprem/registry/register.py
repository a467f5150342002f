"""Registering a model version: the parity gate on a staged candidate, its monitoring
reference profile, and the version's files written in order (``card.json`` last, the commit
marker; see :mod:`mlops_onprem.registry.versions` for the layout).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from mlops_onprem import keys
from mlops_onprem.clock import utc_now_iso
from mlops_onprem.contracts import Contract, Task
from mlops_onprem.jsonio import jsonable
from mlops_onprem.model_card import code_version as current_code_version
from mlops_onprem.model_card import package_versions, render_card_markdown
from mlops_onprem.model_insights import holdout_figure
from mlops_onprem.model_spec import HIGHER_IS_BETTER
from mlops_onprem.onnx_export import ParityError, ParityResult, check_parity, set_metadata_props
from mlops_onprem.onnx_io import (
    META_PREFIX,
    ML_OPSET,
    ONNX_OPSET,
    ScoreArrays,
    build_feeds,
    create_session,
    run_scores,
)
from mlops_onprem.reference_profile import (
    ReferenceProfile,
    build_reference_profile,
    profile_scores,
)
from mlops_onprem.registry.versions import (
    CARD_FIGURE,
    CARD_MD,
    CONTRACT_FILE,
    ModelVersion,
    allocate_version,
)
from mlops_onprem.store.base import ObjectStore, sha256_bytes
from mlops_onprem.store.parquet import get_dataframe, put_dataframe
from mlops_onprem.training import (
    EVAL_FILE,
    ONNX_FILE,
    REFERENCE_FEATURES_FILE,
    Candidate,
    encode_labels,
    native_scores_from_eval,
)


def check_candidate_parity(
    store: ObjectStore, candidate: Candidate, contract: Contract, *, tolerance: float | None = None
) -> ParityResult:
    """Run the parity gate on a staged candidate (its ONNX model vs its stored native scores).

    Raises ParityError when the gate fails.
    """
    onnx_bytes = store.get_bytes(candidate.staged[ONNX_FILE])
    frame = get_dataframe(store, candidate.staged[EVAL_FILE])
    tolerance = candidate.spec.get("parity_tolerance", 1e-5) if tolerance is None else tolerance
    return check_parity(
        onnx_bytes, build_feeds(frame, contract), native_scores_from_eval(frame), contract,
        tolerance=tolerance,
    )


def _profile_scores(scores: ScoreArrays, task: Task) -> np.ndarray:
    if task == Task.MULTICLASS and scores.probabilities is not None:
        return np.asarray(scores.probabilities, dtype=np.float64)
    return scores.score


def reference_profile_for(store: ObjectStore, candidate: Candidate, contract: Contract,
                          eval_frame: pd.DataFrame, scores: ScoreArrays) -> ReferenceProfile:
    """The monitoring reference of a candidate: features profiled on every training row (staged
    by training), score columns on the holdout (out-of-sample scores of the exported model), and
    the holdout's calibration check behind label-free estimates."""
    from mlops_onprem.quality import check_calibration

    task = Task(candidate.task)
    score_values = _profile_scores(scores, task)
    calibration = check_calibration(
        task, encode_labels(eval_frame[contract.label_name], contract),
        None if task == Task.REGRESSION else np.asarray(scores.probabilities), seed=candidate.seed)
    staged = candidate.staged.get(REFERENCE_FEATURES_FILE)
    if staged is None:  # a candidate staged before training profiled its rows: holdout only
        return build_reference_profile(eval_frame, contract, score_values, calibration=calibration)
    features = ReferenceProfile.from_dict(store.get_json(staged))
    return replace(features, scores=profile_scores(contract, score_values),
                   score_rows=len(score_values), calibration=calibration)


def register_candidate(
    store: ObjectStore,
    candidate: Candidate,
    contract: Contract,
    parity: ParityResult,
    *,
    flow_run_id: str | None = None,
    code_version: str | None = None,
    invocation: dict[str, Any] | None = None,
) -> ModelVersion:
    """Turn a staged candidate that passed parity into a new immutable version.

    ``invocation`` (the training flow's parameters: spec, contract path, promotion margin,
    window) is recorded in the card, so a retrain repeats exactly how this version was made.

    Allocates the version (CAS), stamps it into the ONNX metadata, writes the files, the
    reference profile and ``card.md``, then ``card.json`` last; removes the staging objects.
    Raises ParityError if ``parity`` did not pass (registration refused).
    """
    if not parity.passed:
        raise ParityError(
            f"model {candidate.model_name}: parity gate failed (diff {parity.gate_diff:.3e} > "
            f"{parity.tolerance:.1e}); registration refused", parity,
        )
    name = candidate.model_name
    version = allocate_version(store, name, run_id=candidate.run_id)
    stamps = {META_PREFIX + "model_version": str(version)}
    if candidate.decision_threshold:  # for consumers reading the ONNX file alone
        stamps[META_PREFIX + "decision_threshold"] = repr(float(candidate.decision_threshold["value"]))
    onnx_bytes = set_metadata_props(store.get_bytes(candidate.staged[ONNX_FILE]), stamps)
    files: dict[str, dict[str, Any]] = {}

    def put(role: str, filename: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        key = keys.model_file_key(name, version, filename)
        info = store.put_bytes(key, data, content_type=content_type)
        files[role] = {"key": key, "sha256": sha256_bytes(data), "bytes": info.size}

    put("onnx", ONNX_FILE, onnx_bytes)
    for filename, key in candidate.staged.items():
        if filename not in (ONNX_FILE, EVAL_FILE, REFERENCE_FEATURES_FILE):
            put("native", filename, store.get_bytes(key))
    put("contract", CONTRACT_FILE, contract.to_yaml().encode("utf-8"), "application/yaml")
    eval_frame = get_dataframe(store, candidate.staged[EVAL_FILE])
    eval_key = keys.model_file_key(name, version, EVAL_FILE)
    files["eval"] = {"key": eval_key, "bytes": put_dataframe(store, eval_key, eval_frame).size}
    native = native_scores_from_eval(eval_frame)
    figure = holdout_figure(
        Task(candidate.task), encode_labels(eval_frame[contract.label_name], contract),
        native.score, native.probabilities,
        threshold=(candidate.decision_threshold or {}).get("value"),
        classes=list(contract.label.classes or ()) or None)
    if figure:
        put("figure", CARD_FIGURE, figure, "image/png")

    task = Task(candidate.task)
    scores = run_scores(create_session(onnx_bytes, name=f"{name} v{version}"),
                        build_feeds(eval_frame, contract), task)
    profile = reference_profile_for(store, candidate, contract, eval_frame, scores)
    profile_key = keys.reference_profile_key(name, version)
    store.put_json(profile_key, profile.to_dict())
    files["reference_profile"] = {"key": profile_key}

    card = {
        "name": name,
        "version": version,
        "created_at": utc_now_iso(),
        "task": candidate.task,
        "spec": candidate.spec,
        "params": candidate.params,
        "metrics": candidate.metrics,
        "decision_threshold": candidate.decision_threshold,
        "feature_importance": candidate.feature_importance,
        "primary_metric": {
            "name": candidate.primary_metric,
            "higher_is_better": HIGHER_IS_BETTER[candidate.primary_metric],
        },
        "parity": parity.to_dict(),
        "data": candidate.data,
        "contract": candidate.contract,
        "lineage": {
            "seed": candidate.seed,
            "code_version": code_version or current_code_version(),
            "flow_run_id": flow_run_id,
            "training_run_id": candidate.run_id,
            "packages": package_versions(),
            "data_sha256_method": (
                "sha256 of the sorted lines '<object key>\\t<object sha256>\\n' of the "
                "validated Parquet objects read"
            ),
        },
        "timings": {"fit_seconds": candidate.fit_seconds, "export_seconds": candidate.export_seconds},
        "opsets": {"": ONNX_OPSET, "ai.onnx.ml": ML_OPSET},
        "reference_profile_key": profile_key,
        "invocation": invocation or {},
        "monitoring": {
            "reference_rows": profile.n_rows, "score_rows": profile.score_rows,
            "calibration": {k: v for k, v in (profile.calibration or {}).items() if k != "maps"},
        },
        "files": files,
    }
    card_md = render_card_markdown(card, figure_png=figure)
    put("card_md", CARD_MD, card_md.encode("utf-8"), "text/markdown")
    card["files"] = files
    store.put_json(keys.model_card_key(name, version), jsonable(card))  # commit marker: last
    for key in candidate.staged.values():
        store.delete(key)
    store.delete(keys.model_staging_key(name, candidate.run_id, "candidate.json"))
    return ModelVersion(name=name, version=version, onnx_key=files["onnx"]["key"], card=card)
