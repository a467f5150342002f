"""Stream-scoring one local Parquet file with an onnxruntime session (pure core: no store).

The input file is read with ``ParquetFile.iter_batches`` and each scored batch is written as
its own row group with ``ParquetWriter``, so peak memory depends on ``batch_rows`` (and the
input's row-group size), never on the number of rows in the file.

Output columns, in this order::

    <row key>        copied from the input (lineage back to the input row)
    score            binary: P(class index 1); multiclass: P(predicted class); regression: value
    predicted_label  classification only: the predicted class (value from the contract);
                     binary: positive where score >= the card's decision threshold
    proba_<class>    multiclass only: one probability column per class
    model_name       lineage: the model that produced the row
    model_version
    input_key        lineage: the object key of the input partition

Also here: the contract's scoring-stage schema gate (:func:`scoring_schema_check`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_onprem.contracts import Contract, Task
from mlops_onprem.errors import DataValidationError, ModelError, NotParquetError
from mlops_onprem.onnx_io import build_feeds, run_scores
from mlops_onprem.store.parquet import PARQUET_READ_ERRORS
from mlops_onprem.threshold import predicted_positive
from mlops_onprem.validation import check_arrow_schema

DEFAULT_BATCH_ROWS = 20_000
#: buffered reads: pages stream in through this buffer instead of whole column chunks
_READ_BUFFER_BYTES = 1 << 20
#: how many scores per partition are kept (evenly spaced) for the run's score distribution
SCORE_SAMPLE_SIZE = 1_000
SCORE_COLUMN = "score"
PREDICTED_LABEL_COLUMN = "predicted_label"
PROBA_PREFIX = "proba_"
LINEAGE_COLUMNS = ("model_name", "model_version", "input_key")


class CorruptPartitionError(NotParquetError):
    """An input partition cannot be read as Parquet (truncated, garbage, bad pages)."""


@dataclass
class PartitionResult:
    """What scoring one partition produced: counts, timing and a small score sample.

    ``score_sample`` holds at most :data:`SCORE_SAMPLE_SIZE` evenly spaced scores so the run
    summary can report quantiles without reading the outputs back.
    """

    input_key: str
    output_path: str
    rows: int
    batches: int
    seconds: float
    score_min: float | None = None
    score_max: float | None = None
    score_sum: float = 0.0
    score_sample: list[float] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        """A JSON-serialisable dict (what Prefect tasks pass around)."""
        return asdict(self)


def output_schema(row_key_field: pa.Field, contract: Contract) -> pa.Schema:
    """The schema of a scored partition (see the module docstring for the columns)."""
    if contract.label is None:
        raise ModelError(f"contract {contract.dataset!r} declares no label: task unknown")
    fields = [row_key_field, pa.field(SCORE_COLUMN, pa.float64())]
    task = contract.label.task
    classes = list(contract.label.classes or ())
    if task != Task.REGRESSION:
        label_type = pa.int64() if all(isinstance(c, int) for c in classes) else pa.string()
        fields.append(pa.field(PREDICTED_LABEL_COLUMN, label_type))
    if task == Task.MULTICLASS:
        fields.extend(pa.field(f"{PROBA_PREFIX}{c}", pa.float32()) for c in classes)
    fields += [
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.int64()),
        pa.field("input_key", pa.string()),
    ]
    return pa.schema(fields)


def _scored_batch(
    batch: pa.RecordBatch,
    schema: pa.Schema,
    session: ort.InferenceSession,
    contract: Contract,
    class_values: pa.Array | None,
    lineage: tuple[str, int, str],
    decision_threshold: float | None,
) -> tuple[pa.RecordBatch, np.ndarray]:
    task = contract.label.task if contract.label is not None else Task.REGRESSION
    scores = run_scores(session, build_feeds(batch, contract), task)
    n = batch.num_rows
    columns: list[pa.Array] = [batch.column(contract.row_key), pa.array(scores.score)]
    labels = scores.label
    if task == Task.BINARY and decision_threshold is not None:
        labels = predicted_positive(scores.score, decision_threshold)
    if labels is not None and class_values is not None:
        columns.append(class_values.take(pa.array(labels)))
    if task == Task.MULTICLASS and scores.probabilities is not None:
        probabilities = np.ascontiguousarray(scores.probabilities, dtype=np.float32)
        columns.extend(pa.array(probabilities[:, k]) for k in range(probabilities.shape[1]))
    model_name, model_version, input_key = lineage
    columns += [
        pa.repeat(model_name, n).cast(pa.string()),
        pa.repeat(pa.scalar(model_version, pa.int64()), n),
        pa.repeat(input_key, n).cast(pa.string()),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema), scores.score


def score_parquet_file(
    input_path: str | Path,
    output_path: str | Path,
    session: ort.InferenceSession,
    contract: Contract,
    *,
    model_name: str,
    model_version: int,
    input_key: str,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    schema_check: Callable[[pa.Schema], None] | None = None,
    decision_threshold: float | None = None,
) -> PartitionResult:
    """Stream-score the Parquet file at ``input_path`` into ``output_path``.

    Reads only the row key and the contract's features, ``batch_rows`` rows at a time, and
    writes one output row group per batch (columns: see the module docstring). ``input_key``
    is the object key the file came from (written to every row for lineage).
    ``schema_check`` (e.g. the validation module's Arrow schema check) runs on the file's
    schema before any row is scored. A binary model's ``predicted_label`` is the positive class
    where the score reaches ``decision_threshold`` (None: the model's own label output).

    Returns a :class:`PartitionResult`. Raises CorruptPartitionError naming ``input_key``
    when the file is not readable Parquet, the ``schema_check``'s DataValidationError,
    FeatureMismatchError when a feature column is missing, ScoringOutputError on bad outputs.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    started = time.perf_counter()
    try:
        # pre_buffer=False: pre-buffering fetches every row group up front (whole file in RAM)
        parquet = pq.ParquetFile(input_path, pre_buffer=False, buffer_size=_READ_BUFFER_BYTES)
        input_schema = parquet.schema_arrow
    except PARQUET_READ_ERRORS as exc:
        raise CorruptPartitionError(
            f"input partition {input_key!r} is not readable Parquet: {exc}"
        ) from exc
    if schema_check is not None:
        schema_check(input_schema)
    key_index = input_schema.get_field_index(contract.row_key)
    if key_index < 0:
        raise DataValidationError(
            f"input partition {input_key!r} lacks the row key column {contract.row_key!r} "
            f"of contract {contract.dataset!r} v{contract.version}"
        )
    schema = output_schema(input_schema.field(key_index), contract)
    if contract.label is None:
        raise DataValidationError(
            f"contract {contract.dataset!r} v{contract.version} declares no label: a model of it "
            f"cannot be scored ({input_key!r})")
    class_values = None
    if contract.label.task != Task.REGRESSION:
        class_values = pa.array(list(contract.label.classes or ()), schema.field(2).type)
    lineage = (model_name, int(model_version), input_key)

    total_rows = parquet.metadata.num_rows
    stride = max(1, -(-total_rows // SCORE_SAMPLE_SIZE))  # ceil: at most SAMPLE_SIZE kept
    result = PartitionResult(
        input_key=input_key, output_path=str(output_path), rows=0, batches=0, seconds=0.0
    )
    string_columns = [f.name for f in schema if pa.types.is_string(f.type)]
    batches = parquet.iter_batches(
        batch_size=batch_rows, columns=[contract.row_key, *contract.feature_names]
    )
    # Dictionary encoding only for the repeated strings: floats write ~3x faster without it.
    with pq.ParquetWriter(output_path, schema, use_dictionary=string_columns) as writer:
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except PARQUET_READ_ERRORS as exc:
                raise CorruptPartitionError(
                    f"input partition {input_key!r} is corrupt after {result.rows} rows: {exc}"
                ) from exc
            if batch.num_rows == 0:
                continue
            scored, score = _scored_batch(batch, schema, session, contract, class_values, lineage,
                                          decision_threshold)
            writer.write_batch(scored)
            # evenly spaced sample, aligned on the file's row numbers (deterministic)
            first = (-result.rows) % stride
            result.score_sample.extend(score[first::stride].tolist())
            low, high = float(np.nanmin(score)), float(np.nanmax(score))
            result.score_min = low if result.score_min is None else min(result.score_min, low)
            result.score_max = high if result.score_max is None else max(result.score_max, high)
            result.score_sum += float(np.nansum(score))
            result.rows += batch.num_rows
            result.batches += 1
    result.seconds = time.perf_counter() - started
    return result


def scoring_schema_check(contract: Contract) -> Callable[[pa.Schema], None]:
    """The contract's scoring-stage schema gate, tolerating a label column in the input.

    Validated batches carry their label (training reads them), and scoring never reads it:
    only the row key and the features are projected. So the label is dropped from the
    schema before the validation module's check (which would call it leakage); every other
    rule (missing / mistyped / unexpected columns) applies unchanged.
    """
    def check(schema: pa.Schema) -> None:
        if contract.label is not None and contract.label.name in schema.names:
            schema = schema.remove(schema.get_field_index(contract.label.name))
        check_arrow_schema(schema, contract, stage="scoring")

    return check


