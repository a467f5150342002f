"""Scoring through the object store (the orchestration around :mod:`.stream`): list the input
partitions, score one object into its deterministic part key, quarantine a rejected input.

Each function takes an :class:`~mlops_onprem.store.base.ObjectStore` (the interface, no client)
and returns small, picklable records: what Prefect tasks pass to each other.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from mlops_onprem import keys
from mlops_onprem.contracts import Contract
from mlops_onprem.errors import DataValidationError, InvalidKeyError
from mlops_onprem.manifest import part_name_for
from mlops_onprem.scoring.model import ModelRef
from mlops_onprem.scoring.session import cached_session
from mlops_onprem.scoring.stream import DEFAULT_BATCH_ROWS, score_parquet_file
from mlops_onprem.store.base import ObjectStore
from mlops_onprem.store.parquet import PARQUET_CONTENT_TYPE


@dataclass(frozen=True)
class InputPartition:
    """One input object as listed: what a scoring task receives (small, picklable)."""

    key: str
    etag: str
    size: int

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
            output_key, output_path, content_type=PARQUET_CONTENT_TYPE,
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
