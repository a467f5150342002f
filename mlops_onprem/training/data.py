"""Reading the training set from the object store: the ledger's current, validated training
batch versions, and their lineage (:class:`TrainingData`, with one SHA-256 over the inputs).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlops_onprem import keys, ledger
from mlops_onprem.contracts import Contract
from mlops_onprem.store.base import ObjectInfo, ObjectStore
from mlops_onprem.store.parquet import get_dataframe
from mlops_onprem.training.split import TrainingDataError


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
