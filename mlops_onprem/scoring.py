"""Batch scoring of one Parquet partition with onnxruntime, streamed batch by batch.

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

Sessions are cached per process (one per model SHA-256 and thread setting), so a Dask or
Prefect worker process loads a model once however many partitions it scores.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_onprem import keys
from mlops_onprem.contracts import Contract, Task
from mlops_onprem.errors import DataValidationError, IntegrityError, InvalidKeyError, ModelError
from mlops_onprem.manifest import part_name_for
from mlops_onprem.onnx_io import (
    build_feeds,
    check_metadata_matches_contract,
    create_session,
    read_metadata,
    run_scores,
)
from mlops_onprem.store.base import ObjectStore
from mlops_onprem.threshold import predicted_positive, threshold_of
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

# Readers and writers raise these on bytes that are not (valid) Parquet.
_PARQUET_READ_ERRORS: tuple[type[BaseException], ...] = (pa.ArrowInvalid, pa.ArrowIOError, OSError)


class CorruptPartitionError(DataValidationError):
    """An input partition cannot be read as Parquet (truncated, garbage, bad pages)."""


class ModelIntegrityError(ModelError, IntegrityError):
    """Model bytes do not hash to the SHA-256 the caller resolved."""


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


# --- the per-process session cache -------------------------------------------------------
_SESSIONS: dict[tuple[str, int, int], ort.InferenceSession] = {}
_SESSIONS_LOCK = threading.Lock()
_SESSION_LOADS = 0  # how many sessions this process created (tests read it)


def cached_session(
    model_sha256: str,
    load_bytes: Callable[[], bytes],
    *,
    intra_op_threads: int = 1,
    inter_op_threads: int = 1,
    name: str | None = None,
) -> ort.InferenceSession:
    """The process-wide session for the model whose bytes hash to ``model_sha256``.

    ``load_bytes`` is called only on a cache miss (first partition in this process); its
    result is checked against ``model_sha256`` before a session is built.
    Raises ModelIntegrityError on a hash mismatch, CorruptModelError on unloadable bytes.
    """
    global _SESSION_LOADS
    cache_key = (model_sha256, intra_op_threads, inter_op_threads)
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(cache_key)
        if session is not None:
            return session
        # Loading under the lock: two threads of one worker must not build two sessions.
        model_bytes = load_bytes()
        actual = hashlib.sha256(model_bytes).hexdigest()
        if actual != model_sha256:
            raise ModelIntegrityError(
                f"model {name or '<unnamed>'}: bytes hash to {actual}, expected {model_sha256}"
            )
        session = create_session(
            model_bytes, intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads,
            name=name,
        )
        _SESSIONS[cache_key] = session
        _SESSION_LOADS += 1
        return session


def session_loads() -> int:
    """How many sessions this process has created through :func:`cached_session`."""
    return _SESSION_LOADS


def clear_session_cache() -> None:
    """Drop every cached session (tests; or to free memory after a run)."""
    with _SESSIONS_LOCK:
        _SESSIONS.clear()


def check_session_matches_contract(session: ort.InferenceSession, contract: Contract,
                                   source: str = "model") -> str:
    """Check a model's metadata against ``contract``; return the contract's task value.

    Raises FeatureMismatchError (names, order or types differ), CorruptModelError (no
    metadata) and ModelError when the contract has no label (no task to score for).
    """
    meta = read_metadata(session, source)
    check_metadata_matches_contract(meta, contract)
    if contract.label is None:
        raise ModelError(f"contract {contract.dataset!r} declares no label: task unknown")
    return contract.label.task.value


# --- output layout -----------------------------------------------------------------------
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
    if contract.label.task == Task.MULTICLASS and scores.probabilities is not None:
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
    except _PARQUET_READ_ERRORS as exc:
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
            except _PARQUET_READ_ERRORS as exc:
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


# --- one partition through the object store ----------------------------------------------
@dataclass(frozen=True)
class InputPartition:
    """One input object as listed: what a scoring task receives (small, picklable)."""

    key: str
    etag: str
    size: int

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelRef:
    """The resolved model a run scores with (small, picklable; the bytes stay in the store)."""

    name: str
    version: int
    onnx_key: str
    sha256: str
    decision_threshold: float | None = None  # binary: predicted_label is 1 at score >= it

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


class InputChangedError(DataValidationError):
    """An input object changed between listing and scoring (its ETag moved)."""


class NoInputPartitionsError(DataValidationError):
    """The input prefix holds no Parquet object to score."""


def list_input_partitions(store: ObjectStore, prefix: str) -> list[InputPartition]:
    """The ``.parquet`` objects under ``prefix``, sorted by key.

    Raises NoInputPartitionsError naming the prefix and store when there is none.
    """
    partitions = [
        InputPartition(key=info.key, etag=info.etag, size=info.size)
        for info in store.list(prefix) if info.key.endswith(".parquet")
    ]
    if not partitions:
        raise NoInputPartitionsError(f"no .parquet objects under {prefix!r} in {store.location}")
    return partitions


def batch_id_for(input_key: str) -> str:
    """A key-safe batch id for an input key: its file stem, or a digest if the stem is unusual."""
    stem = input_key.rsplit("/", 1)[-1].removesuffix(".parquet")
    try:
        return keys.validate_name(stem, "batch id")
    except InvalidKeyError:
        return "batch-" + hashlib.sha256(input_key.encode("utf-8")).hexdigest()[:16]


def quarantine_partition(
    store: ObjectStore, dataset: str, input_key: str, error: BaseException, *, run_id: str
) -> list[str]:
    """Copy a rejected input byte-for-byte to ``quarantine/<dataset>/<batch>/scoring/<run>/``
    with the reason (apart from the ingest gate's quarantine of the same batch id).

    The source object stays where it is (deleting data is the operator's call).
    Returns the keys written: the copy and ``scoring_error.json``.
    """
    batch_id = batch_id_for(input_key)
    try:
        original = keys.validate_name(input_key.rsplit("/", 1)[-1], "file name")
    except InvalidKeyError:
        original = batch_id + ".parquet"
    data_key = keys.scoring_quarantine_key(dataset, run_id, batch_id, original)
    reason_key = keys.scoring_quarantine_key(dataset, run_id, batch_id, "scoring_error.json")
    store.copy(input_key, data_key)
    store.put_json(reason_key, {
        "input_key": input_key, "run_id": run_id, "stage": "scoring",
        "error_type": type(error).__name__, "error": str(error),
    })
    return [data_key, reason_key]


def score_object(
    store: ObjectStore,
    partition: InputPartition,
    model: ModelRef,
    contract: Contract,
    *,
    run_id: str,
    scratch_dir: Path,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    intra_op_threads: int = 1,
    schema_check: Callable[[pa.Schema], None] | None = None,
    part_key: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Score one input object into its deterministic part key under the run prefix
    (``part_key(part_name)`` chooses another key, e.g. a shadow challenger's).

    Downloads the partition to ``scratch_dir`` (streamed; removed afterwards), scores it
    with the process-wide cached session, uploads the part and returns a small record:
    ``input_key, input_etag, input_sha256, output_key, output_sha256, rows, seconds,
    timings, worker (host:pid), score_min, score_max, score_sum, score_sample``.
    Raises InputChangedError if the object's ETag moved since listing, CorruptPartitionError
    / DataValidationError for unusable input, the store family on I/O failures.
    """
    started = time.perf_counter()
    work = Path(scratch_dir) / uuid.uuid4().hex
    work.mkdir(parents=True, exist_ok=True)
    try:
        input_path, output_path = work / "input.parquet", work / "output.parquet"
        info = store.get_file(partition.key, input_path)
        if info.etag and partition.etag and info.etag != partition.etag:
            raise InputChangedError(
                f"input {partition.key!r} changed after listing (etag {partition.etag} -> "
                f"{info.etag}); rerun to score the new version under a new run id"
            )
        downloaded = time.perf_counter()
        session = cached_session(
            model.sha256, lambda: store.get_bytes(model.onnx_key),
            intra_op_threads=intra_op_threads, name=f"{model.label} ({model.onnx_key})",
        )
        result = score_parquet_file(
            input_path, output_path, session, contract, model_name=model.name,
            model_version=model.version, input_key=partition.key, batch_rows=batch_rows,
            schema_check=schema_check, decision_threshold=model.decision_threshold,
        )
        scored = time.perf_counter()
        part_name = part_name_for(partition.key, partition.etag)
        output_key = (part_key(part_name) if part_key is not None else
                      keys.prediction_part_key(model.name, model.version, run_id, part_name))
        output = store.put_file(
            output_key, output_path, content_type="application/vnd.apache.parquet",
            metadata={"rows": str(result.rows)},
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = result.to_record()
    del record["output_path"]
    record.update(
        input_etag=partition.etag, input_sha256=info.sha256, output_key=output_key,
        output_sha256=output.sha256,
        timings={
            "download_s": downloaded - started, "score_s": scored - downloaded,
            "upload_s": time.perf_counter() - scored,
        },
    )
    record["seconds"] = time.perf_counter() - started
    record["worker"] = f"{socket.gethostname()}:{os.getpid()}"  # which process scored it
    return record


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


# --- run summary -------------------------------------------------------------------------
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def score_distribution(records: list[dict[str, Any]]) -> dict[str, float | int | None]:
    """Rows, exact min / max / mean and approximate quantiles of ``score`` over partitions.

    Quantiles come from each partition's evenly spaced ``score_sample``, each sampled value
    weighted by the rows it stands for (so a big partition counts more than a small one).
    """
    rows = sum(int(r["rows"]) for r in records)
    result: dict[str, float | int | None] = {"rows": rows}
    mins = [r["score_min"] for r in records if r.get("score_min") is not None]
    maxs = [r["score_max"] for r in records if r.get("score_max") is not None]
    result["min"] = min(mins) if mins else None
    result["max"] = max(maxs) if maxs else None
    result["mean"] = sum(float(r["score_sum"]) for r in records) / rows if rows else None
    values, weights = [], []
    for record in records:
        sample = [v for v in record.get("score_sample", []) if v == v]  # drop NaN
        if sample:
            values.extend(sample)
            weights.extend([int(record["rows"]) / len(sample)] * len(sample))
    for q in QUANTILES:
        result[f"p{round(q * 100):02d}"] = None
    if values:
        order = np.argsort(values)
        sorted_values = np.asarray(values)[order]
        cumulative = np.cumsum(np.asarray(weights)[order])
        cumulative /= cumulative[-1]
        for q in QUANTILES:
            index = min(int(np.searchsorted(cumulative, q)), len(sorted_values) - 1)
            result[f"p{round(q * 100):02d}"] = float(sorted_values[index])
    return result


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def scoring_summary_markdown(summary: dict[str, Any], distribution: dict[str, Any]) -> str:
    """The markdown of a run's summary artifact: volumes, throughput, score distribution."""
    timings = summary.get("timings", {})
    lines = [
        f"# Scoring run `{summary['run_id']}`",
        "",
        f"Model **{summary['model_name']} v{summary['model_version']}** on dataset "
        f"`{summary['contract_dataset']}` (contract v{summary['contract_version']}). "
        f"Status: **{summary['status']}**"
        + (f", **{len(summary['rejected'])} batch(es) rejected**." if summary.get("rejected") else "."),
        "",
        "| | |",
        "|---|---|",
        f"| rows scored | {summary['rows']:,} |",
        f"| partitions | {summary['partitions']} ({len(summary['failed_partitions'])} failed) |",
        f"| wall time | {_fmt(timings.get('wall_s'))} s |",
        f"| throughput | {_fmt(timings.get('rows_per_s'))} rows/s |",
        f"| manifest | `{summary['manifest_key']}` |",
        "",
        "## Score distribution",
        "",
        "| " + " | ".join(distribution) + " |",
        "|" + "---|" * len(distribution),
        "| " + " | ".join(_fmt(v) for v in distribution.values()) + " |",
    ]
    shadow = summary.get("shadow")
    if shadow:
        lines += ["", "## Shadow challenger (not delivered)", "",
                  f"{shadow['status']}: {shadow.get('reason') or ''}".rstrip(": ")
                  + (f" v{shadow['challenger_version']} scored {shadow['rows']:,} rows into "
                     f"`{shadow['manifest_key']}` ({shadow['failed']} partition(s) failed)."
                     if shadow["status"] == "scored" else "")]
    if summary.get("inputs"):
        lines += ["", "## Batches scored", "", "| landed as | batch version | rows |", "|---|---|---|"]
        lines += [f"| `{i['source_key']}` | `{i['version']}` | {i['rows']:,} |"
                  for i in summary["inputs"]]
    if summary.get("rejected"):
        lines += ["", "## Batches rejected by the contract (not scored)", "",
                  "| landed as | quarantined at | reason |", "|---|---|---|"]
        lines += [f"| `{r['source_key']}` | `{r['routed_key']}` | {r['message'][:300].replace('|', '/')} |"
                  for r in summary["rejected"]]
    if summary["failed_partitions"]:
        lines += ["", "## Failed partitions (quarantined)", "", "| input | error |", "|---|---|"]
        lines += [f"| `{f['key']}` | {f['error'][:300].replace('|', '/')} |"
                  for f in summary["failed_partitions"]]
    return "\n".join(lines)


# --- resolving the model -----------------------------------------------------------------
def resolve_scoring_model(
    store: ObjectStore, model_name: str, ref: str, contract: Contract
) -> ModelRef:
    """Resolve ``model_name@ref`` in the registry and check it against ``contract``.

    Loads the model once here (and caches its session for this process), so a model whose
    features differ from the contract fails before any partition is scored. The contract the
    version was trained under (stored beside it) must be compatible with ``contract``: no
    breaking change (``contract_diff`` rules) from it, or the model is refused.
    Raises ModelNotFoundError (no such model / alias), FeatureMismatchError (a breaking
    contract change, naming column and change; names, order or types differ from the
    contract), CorruptModelError, the store family on I/O errors.
    """
    from mlops_onprem import registry  # registry imports training code: keep it off import path
    from mlops_onprem.contract_diff import IncompatibleContractError, check_compatible
    from mlops_onprem.onnx_io import FeatureMismatchError

    version = registry.resolve(store, model_name, ref)
    # cards assembled by hand (no stored contract) are left to the metadata check below
    if "contract" in version.card.get("files", {}):
        trained = registry.load_contract(store, version)
        try:
            check_compatible(trained, contract, what=f"model {version.name} v{version.version}")
        except IncompatibleContractError as exc:
            raise FeatureMismatchError(
                f"model {version.name} v{version.version} ({ref}) refused for scoring: {exc}; "
                "retrain it under the new contract or score with the contract it was trained under"
            ) from exc
    model_bytes = registry.load_onnx_bytes(store, version)
    model = ModelRef(
        name=version.name, version=int(version.version), onnx_key=version.onnx_key,
        sha256=hashlib.sha256(model_bytes).hexdigest(),
        decision_threshold=threshold_of(version.card),
    )
    session = cached_session(model.sha256, lambda: model_bytes, name=f"{model.label} ({ref})")
    check_session_matches_contract(session, contract, f"{model.label} ({ref}, {model.onnx_key})")
    return model
