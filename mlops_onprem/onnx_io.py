"""The ONNX I/O convention every exported model follows, and the one code path that runs it.

Training's parity gate and batch scoring both go through this module, so a model that passed
its parity check is scored exactly the way it was checked.

Convention
----------
Graph inputs
    One input per contract feature, in contract order; the input name is the feature name and
    the shape is ``[None, 1]``.

    * numeric features (contract dtype ``float64``, ``int64``, ``bool``) -> ``tensor(float)``
      (float32); a missing value is ``NaN``. Models are trained on the same float32 values
      (see :func:`feeds_to_frame`), so native and ONNX predictions see identical inputs.
    * ``category`` and ``string`` features -> ``tensor(string)``; a missing value is
      :data:`MISSING_CATEGORY`. Unknown categories are the graph's business (the exported
      one-hot encoders ignore them: all-zero columns).
    * ``timestamp`` features are not model inputs (derive numeric features instead).

Graph outputs
    * classification: ``label`` ``[N]`` int64 — the *index* of the class in the contract's
      ``label.classes`` (``mlops.classes`` maps it back) — and ``probabilities`` ``[N, K]``
      float32, a plain tensor (no ZipMap), column ``k`` = class index ``k``.
    * regression: ``variable`` ``[N, 1]`` float32.

``metadata_props`` (all strings; JSON where noted)
    ``mlops.model_name``, ``mlops.model_version``, ``mlops.feature_names`` (JSON list, in
    order), ``mlops.feature_types`` (JSON object name -> contract dtype, in order),
    ``mlops.task`` (contract task value), ``mlops.classes`` (JSON list, ``[]`` for regression),
    ``mlops.contract_dataset``, ``mlops.contract_version``, ``mlops.training_data_sha256``.

Why one input per feature: the names make feature order checkable, and categorical inputs
can keep their string type. Measured here (XGBoost 200 trees, depth 6, 30 numeric features,
40k rows, 1 thread): a single concatenated ``[N, 30]`` input and 30 ``[N, 1]`` inputs scored
at the same speed (within 5%): tree evaluation dominates, the Concat is noise.

Scores (:func:`run_scores`)
    binary: ``score`` = P(class index 1); multiclass: ``score`` = probability of the predicted
    class, plus ``label`` and ``probabilities``; regression: ``score`` = predicted value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from mlops_onprem.contracts import Contract, Dtype, Task
from mlops_onprem.errors import ModelError

#: pinned opsets of every exported graph (onnxmltools' XGBoost converter accepts <= 15)
ONNX_OPSET = 15
ML_OPSET = 3
#: what a missing categorical value becomes in a string input
MISSING_CATEGORY = "__missing__"

META_PREFIX = "mlops."
META_KEYS = (
    "model_name", "model_version", "feature_names", "feature_types", "task", "classes",
    "contract_dataset", "contract_version", "training_data_sha256",
)
OUTPUT_LABEL = "label"
OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_VARIABLE = "variable"

_ORT_LOAD_ERRORS: tuple[type[BaseException], ...] = tuple(
    getattr(_ort_state, name)
    for name in (
        "Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoModel", "NotImplemented",
        "RuntimeException", "EngineError", "NotFound",
    )
    if hasattr(_ort_state, name)
)


class CorruptModelError(ModelError):
    """The bytes are not a loadable ONNX model, or they lack the mlops metadata."""


class FeatureMismatchError(ModelError):
    """A model's inputs and a data contract (or a batch) disagree on features."""


class ScoringOutputError(ModelError):
    """The model's outputs do not follow the convention (missing output, wrong shape)."""


@dataclass(frozen=True)
class ModelMetadata:
    """The ``mlops.*`` metadata of an exported model, plus its graph input names."""

    model_name: str
    model_version: str
    feature_names: list[str]
    feature_types: dict[str, str]
    task: str
    classes: list[Any]
    contract_dataset: str
    contract_version: str
    training_data_sha256: str
    input_names: list[str] = field(default_factory=list)

    def to_props(self) -> dict[str, str]:
        """The ``metadata_props`` dictionary to write into the ONNX model."""
        return {
            META_PREFIX + "model_name": self.model_name,
            META_PREFIX + "model_version": str(self.model_version),
            META_PREFIX + "feature_names": json.dumps(list(self.feature_names)),
            META_PREFIX + "feature_types": json.dumps(dict(self.feature_types)),
            META_PREFIX + "task": self.task,
            META_PREFIX + "classes": json.dumps(list(self.classes)),
            META_PREFIX + "contract_dataset": self.contract_dataset,
            META_PREFIX + "contract_version": self.contract_version,
            META_PREFIX + "training_data_sha256": self.training_data_sha256,
        }


@dataclass(frozen=True)
class ScoreArrays:
    """What :func:`run_scores` returns. ``label`` / ``probabilities`` are None for regression."""

    score: np.ndarray  # [N] float64
    label: np.ndarray | None = None  # [N] int64 class index
    probabilities: np.ndarray | None = None  # [N, K] float32


# --- inputs -----------------------------------------------------------------------------
def input_kind(dtype: Dtype | str) -> str:
    """``"float"`` or ``"string"``: the ONNX element type a contract dtype is fed as.

    Raises FeatureMismatchError for timestamp features (not model inputs).
    """
    dtype = Dtype(dtype)
    if dtype in (Dtype.FLOAT, Dtype.INT, Dtype.BOOL):
        return "float"
    if dtype in (Dtype.CATEGORY, Dtype.STRING):
        return "string"
    raise FeatureMismatchError(
        f"contract dtype {dtype.value!r} cannot be a model input; derive numeric features from it"
    )


def input_kinds(contract: Contract) -> list[tuple[str, str]]:
    """``[(feature name, "float" | "string"), ...]`` in contract order."""
    return [(column.name, input_kind(column.dtype)) for column in contract.features]


def _column(batch: pa.RecordBatch | pa.Table, name: str, contract: Contract) -> pa.Array:
    index = batch.schema.get_field_index(name)
    if index < 0:
        raise FeatureMismatchError(
            f"batch lacks feature column {name!r} required by contract "
            f"{contract.dataset!r} v{contract.version}"
        )
    column = batch.column(index)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column


def build_feeds(
    batch: pa.RecordBatch | pa.Table | pd.DataFrame, contract: Contract
) -> dict[str, np.ndarray]:
    """Convert a batch into the model's input feeds (columnar, no per-row Python).

    Takes a pyarrow RecordBatch/Table or a pandas DataFrame holding (at least) the contract's
    features. Returns ``{feature name: array of shape [N, 1]}``: float32 with NaN for missing
    numeric values, object arrays of ``str`` with :data:`MISSING_CATEGORY` for missing
    categorical values. Raises FeatureMismatchError naming a missing feature column.
    """
    if isinstance(batch, pd.DataFrame):
        missing = [name for name in contract.feature_names if name not in batch.columns]
        if missing:
            raise FeatureMismatchError(
                f"batch lacks feature column {missing[0]!r} required by contract "
                f"{contract.dataset!r} v{contract.version}"
            )
        batch = pa.Table.from_pandas(batch[contract.feature_names], preserve_index=False)
    feeds: dict[str, np.ndarray] = {}
    for name, kind in input_kinds(contract):
        column = _column(batch, name, contract)
        if kind == "float":
            values = pc.cast(column, pa.float32(), safe=False)
            if values.null_count:
                values = pc.fill_null(values, pa.scalar(np.nan, pa.float32()))
            array = values.to_numpy(zero_copy_only=False)
        else:
            values = pc.cast(column, pa.string())
            if values.null_count:
                values = pc.fill_null(values, MISSING_CATEGORY)
            array = values.to_numpy(zero_copy_only=False).astype(object, copy=False)
        feeds[name] = array.reshape(-1, 1)
    return feeds


def feeds_to_frame(feeds: Mapping[str, np.ndarray], contract: Contract) -> pd.DataFrame:
    """The feeds as a DataFrame (float32 / object columns) in contract order.

    Native models are trained and parity-checked on this frame, so they see exactly the
    values the ONNX graph sees.
    """
    return pd.DataFrame(
        {name: np.asarray(feeds[name]).reshape(-1) for name in contract.feature_names},
        columns=contract.feature_names,
    ).astype({name: object for name, kind in input_kinds(contract) if kind == "string"})


# --- sessions and metadata ---------------------------------------------------------------
def create_session(
    model_bytes: bytes,
    *,
    intra_op_threads: int = 1,
    inter_op_threads: int = 1,
    name: str | None = None,
) -> ort.InferenceSession:
    """Load ONNX bytes into a CPU onnxruntime session.

    ``name`` (e.g. the object key or ``model:version``) is used in error messages.
    Raises CorruptModelError when the bytes are empty or not a valid ONNX model.
    """
    label = name or "<in-memory model>"
    if not model_bytes:
        raise CorruptModelError(f"model {label}: ONNX bytes are empty")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.log_severity_level = 3  # errors only: keep scoring logs clean
    try:
        return ort.InferenceSession(
            bytes(model_bytes), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except _ORT_LOAD_ERRORS as exc:
        raise CorruptModelError(
            f"model {label}: not a loadable ONNX model ({len(model_bytes)} bytes): {exc}"
        ) from exc


def read_metadata(session: ort.InferenceSession, source: str = "model") -> ModelMetadata:
    """The ``mlops.*`` metadata of a loaded model (``source`` names it in errors: name, key).

    Raises CorruptModelError when a key is missing or a JSON value does not parse (the model
    was not exported by mlops-onprem, or was tampered with).
    """
    props = session.get_modelmeta().custom_metadata_map
    missing = [key for key in META_KEYS if META_PREFIX + key not in props]
    if missing:
        raise CorruptModelError(
            f"{source} lacks metadata {', '.join(META_PREFIX + k for k in missing)}: "
            "not exported by mlops-onprem's exporter"
        )
    try:
        feature_names = json.loads(props[META_PREFIX + "feature_names"])
        feature_types = json.loads(props[META_PREFIX + "feature_types"])
        classes = json.loads(props[META_PREFIX + "classes"])
    except json.JSONDecodeError as exc:
        raise CorruptModelError(f"{source}: metadata is not valid JSON: {exc}") from exc
    return ModelMetadata(
        model_name=props[META_PREFIX + "model_name"],
        model_version=props[META_PREFIX + "model_version"],
        feature_names=list(feature_names),
        feature_types=dict(feature_types),
        task=props[META_PREFIX + "task"],
        classes=list(classes),
        contract_dataset=props[META_PREFIX + "contract_dataset"],
        contract_version=props[META_PREFIX + "contract_version"],
        training_data_sha256=props[META_PREFIX + "training_data_sha256"],
        input_names=[node.name for node in session.get_inputs()],
    )


def _first_difference(left: list[str], right: list[str]) -> tuple[int, str | None, str | None]:
    for position in range(max(len(left), len(right))):
        a = left[position] if position < len(left) else None
        b = right[position] if position < len(right) else None
        if a != b:
            return position, a, b
    return -1, None, None


def check_metadata_matches_contract(meta: ModelMetadata, contract: Contract) -> None:
    """Check that a model expects exactly the contract's features, in order, with its types.

    Checks ``mlops.feature_names`` and the graph input names against ``contract.feature_names``
    and each feature's dtype. Raises FeatureMismatchError naming the first differing position.
    """
    expected = contract.feature_names
    for what, actual in (("metadata feature_names", meta.feature_names),
                         ("graph inputs", meta.input_names or meta.feature_names)):
        position, got, want = _first_difference(list(actual), expected)
        if position >= 0:
            raise FeatureMismatchError(
                f"model {meta.model_name} v{meta.model_version} {what} differ from contract "
                f"{contract.dataset!r} v{contract.version} at position {position}: model has "
                f"{got!r}, contract has {want!r}"
            )
    for position, column in enumerate(contract.features):
        model_type = meta.feature_types.get(column.name)
        if model_type is not None and input_kind(model_type) != input_kind(column.dtype):
            raise FeatureMismatchError(
                f"model {meta.model_name} v{meta.model_version} feature {column.name!r} "
                f"(position {position}) has type {model_type!r}, contract "
                f"{contract.dataset!r} v{contract.version} says {column.dtype.value!r}"
            )


# --- running -----------------------------------------------------------------------------
def run_scores(
    session: ort.InferenceSession, feeds: Mapping[str, np.ndarray], task: Task | str
) -> ScoreArrays:
    """Run the model on ``feeds`` and return scores per the convention.

    Raises ScoringOutputError when the graph lacks the outputs the task needs.
    """
    task = Task(task)
    names = [output.name for output in session.get_outputs()]
    if task == Task.REGRESSION:
        if OUTPUT_VARIABLE not in names:
            raise ScoringOutputError(f"regression model has no {OUTPUT_VARIABLE!r} output: {names}")
        (values,) = session.run([OUTPUT_VARIABLE], dict(feeds))
        return ScoreArrays(score=np.asarray(values, dtype=np.float64).reshape(-1))
    for required in (OUTPUT_LABEL, OUTPUT_PROBABILITIES):
        if required not in names:
            raise ScoringOutputError(f"classification model has no {required!r} output: {names}")
    labels, probabilities = session.run([OUTPUT_LABEL, OUTPUT_PROBABILITIES], dict(feeds))
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2:
        raise ScoringOutputError(
            f"'probabilities' must be a [N, K] tensor (no ZipMap), got shape {probabilities.shape}"
        )
    labels = np.asarray(labels).reshape(-1).astype(np.int64, copy=False)
    if task == Task.BINARY:
        score = probabilities[:, 1].astype(np.float64)
    else:
        score = probabilities.max(axis=1).astype(np.float64)
    return ScoreArrays(score=score, label=labels, probabilities=probabilities)


def metadata_for(
    contract: Contract,
    *,
    model_name: str,
    model_version: int | str,
    training_data_sha256: str,
) -> ModelMetadata:
    """The metadata an exporter writes for a model trained under ``contract``."""
    if contract.label is None:
        raise ModelError(f"contract {contract.dataset!r} has no label: cannot describe a model")
    return ModelMetadata(
        model_name=model_name,
        model_version=str(model_version),
        feature_names=contract.feature_names,
        feature_types={c.name: c.dtype.value for c in contract.features},
        task=contract.label.task.value,
        classes=list(contract.label.classes or ()),
        contract_dataset=contract.dataset,
        contract_version=contract.version,
        training_data_sha256=training_data_sha256,
        input_names=contract.feature_names,
    )
