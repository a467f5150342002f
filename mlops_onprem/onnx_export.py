"""Export a trained pipeline to ONNX (the :mod:`mlops_onprem.onnx_io` convention) and gate it
on parity with the native model.

scikit-learn pipelines are converted with skl2onnx; the XGBoost estimator inside a pipeline
with onnxmltools' converter registered into skl2onnx, so the preprocessing (one-hot encoding
of categorical features, imputation, scaling) is part of the graph. Opsets are pinned
(:data:`~mlops_onprem.onnx_io.ONNX_OPSET`, :data:`~mlops_onprem.onnx_io.ML_OPSET`).

The parity check scores the holdout through :mod:`mlops_onprem.onnx_io` — the same path batch
scoring uses — and compares with the native pipeline's predictions:

* classification: max |native - onnx| over all class probabilities;
* regression: max |native - onnx| / max(1, |native|), because the graph computes in float32
  (about 7 significant digits) and targets can be large. ``max_abs_diff`` is reported too.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx
from sklearn.pipeline import Pipeline

from mlops_onprem.contracts import Contract, Task
from mlops_onprem.errors import ModelError
from mlops_onprem.onnx_io import (
    ML_OPSET,
    ONNX_OPSET,
    OUTPUT_LABEL,
    OUTPUT_PROBABILITIES,
    OUTPUT_VARIABLE,
    ModelMetadata,
    ScoreArrays,
    check_metadata_matches_contract,
    create_session,
    input_kinds,
    read_metadata,
    run_scores,
)

DEFAULT_PARITY_TOLERANCE = 1e-5


class ExportError(ModelError):
    """The pipeline could not be converted to ONNX."""


class ParityError(ModelError):
    """The ONNX model's scores differ from the native model's beyond the tolerance."""

    def __init__(self, message: str, result: ParityResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class ParityResult:
    """Outcome of a parity check (also raised inside ParityError when it fails)."""

    passed: bool
    rows: int
    max_abs_diff: float
    gate_diff: float  # the quantity compared with the tolerance (see module docstring)
    tolerance: float
    label_mismatches: int
    worst_row: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_converters_registered = False


def register_xgboost_converters() -> None:
    """Teach skl2onnx to convert XGBoost estimators inside pipelines (idempotent)."""
    global _converters_registered
    if _converters_registered:
        return
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from xgboost import XGBClassifier, XGBRegressor

    update_registered_converter(
        XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes,
        convert_xgboost, options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes,
        convert_xgboost,
    )
    _converters_registered = True


def set_metadata_props(model_bytes: bytes, props: dict[str, str]) -> bytes:
    """Return the model with ``props`` set in ``metadata_props`` (other entries kept)."""
    model = onnx.load_from_string(model_bytes)
    existing = {entry.key: entry for entry in model.metadata_props}
    for key, value in props.items():
        if key in existing:
            existing[key].value = value
        else:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
    return model.SerializeToString()


def export_onnx(
    pipeline: Pipeline, contract: Contract, metadata: ModelMetadata
) -> bytes:
    """Convert a fitted pipeline to ONNX bytes following the onnx_io convention.

    Raises ExportError when conversion fails or the graph's inputs/outputs break the convention.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    if contract.label is None:
        raise ExportError(f"contract {contract.dataset!r} has no label: cannot export a model")
    task = contract.label.task
    register_xgboost_converters()
    initial_types = [
        (name, FloatTensorType([None, 1]) if kind == "float" else StringTensorType([None, 1]))
        for name, kind in input_kinds(contract)
    ]
    options = {} if task == Task.REGRESSION else {id(pipeline): {"zipmap": False}}
    try:
        model = convert_sklearn(
            pipeline,
            name=metadata.model_name,
            initial_types=initial_types,
            target_opset={"": ONNX_OPSET, "ai.onnx.ml": ML_OPSET},
            options=options,
        )
    except Exception as exc:  # skl2onnx raises many unrelated types; report them as one
        estimator = type(pipeline.steps[-1][1]).__name__
        raise ExportError(
            f"model {metadata.model_name}: skl2onnx could not convert {estimator}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    outputs = [output.name for output in model.graph.output]
    expected = (
        [OUTPUT_VARIABLE] if task == Task.REGRESSION else [OUTPUT_LABEL, OUTPUT_PROBABILITIES]
    )
    if outputs != expected:
        raise ExportError(
            f"model {metadata.model_name}: exported outputs {outputs}, convention needs {expected}"
        )
    model.doc_string = f"mlops-onprem model {metadata.model_name} for {contract.dataset}"
    model.producer_name = "mlops-onprem"
    return set_metadata_props(model.SerializeToString(), metadata.to_props())


def check_parity(
    onnx_bytes: bytes,
    feeds: dict[str, np.ndarray],
    native: ScoreArrays,
    contract: Contract,
    *,
    tolerance: float = DEFAULT_PARITY_TOLERANCE,
    raise_on_failure: bool = True,
) -> ParityResult:
    """Score ``feeds`` through onnx_io and compare with the native scores.

    Takes the ONNX bytes, the holdout feeds (:func:`~mlops_onprem.onnx_io.build_feeds`), the
    native model's :class:`ScoreArrays` on the same rows, the contract and the tolerance.
    Returns a :class:`ParityResult`; raises ParityError (carrying the result) when the gate
    fails and ``raise_on_failure``, FeatureMismatchError if the model's inputs disagree with
    the contract.
    """
    if contract.label is None:
        raise ExportError(f"contract {contract.dataset!r} declares no label: no parity to check")
    task = contract.label.task
    started = time.perf_counter()
    session = create_session(onnx_bytes, name=f"candidate for {contract.dataset}")
    check_metadata_matches_contract(
        read_metadata(session, f"candidate ONNX model for {contract.dataset}"), contract)
    onnx_scores = run_scores(session, feeds, task)
    if task == Task.REGRESSION:
        reference = native.score.reshape(-1, 1)
        got = onnx_scores.score.reshape(-1, 1)
        scale = np.maximum(1.0, np.abs(reference))
    else:
        if native.probabilities is None or onnx_scores.probabilities is None:
            raise ExportError(
                f"{contract.dataset}: a {task} model must give class probabilities (native: "
                f"{native.probabilities is not None}, ONNX: {onnx_scores.probabilities is not None})")
        reference = np.asarray(native.probabilities, dtype=np.float64)
        got = np.asarray(onnx_scores.probabilities, dtype=np.float64)
        scale = np.ones_like(reference)
    if reference.shape != got.shape:
        raise ParityError(
            f"parity: ONNX scores have shape {got.shape}, native {reference.shape}",
            ParityResult(False, len(reference), float("inf"), float("inf"), tolerance, -1, -1, 0.0),
        )
    diff = np.abs(reference - got)
    gate = diff / scale
    rows = len(reference)
    worst = int(np.unravel_index(np.argmax(gate), gate.shape)[0]) if rows else -1
    mismatches = 0
    if native.label is not None and onnx_scores.label is not None:
        mismatches = int(np.count_nonzero(native.label != onnx_scores.label))
    max_abs = float(diff.max()) if rows else 0.0
    gate_diff = float(gate.max()) if rows else 0.0
    result = ParityResult(
        passed=bool(gate_diff <= tolerance and np.isfinite(gate_diff)),
        rows=rows,
        max_abs_diff=max_abs,
        gate_diff=gate_diff,
        tolerance=tolerance,
        label_mismatches=mismatches,
        worst_row=worst,
        seconds=time.perf_counter() - started,
    )
    if not result.passed and raise_on_failure:
        raise ParityError(
            f"parity gate failed for {contract.dataset!r}: max diff {gate_diff:.3e} "
            f"(max abs {max_abs:.3e}) > tolerance {tolerance:.1e} on {rows} holdout rows "
            f"(worst row {worst}); registration refused",
            result,
        )
    return result
