"""The store-facing side of the gate: the rejection message and the raising gate, the
validated batch as it is published (contract order, float64), and the quarantine copy of a
rejected batch. Routing a batch version lives in :mod:`mlops_onprem.batch_gate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlops_onprem import keys
from mlops_onprem.contracts import Contract, Dtype
from mlops_onprem.validation.errors import BatchRejectedError, NothingValidatedError
from mlops_onprem.validation.results import ValidationResult
from mlops_onprem.validation.rules import _stage

if TYPE_CHECKING:
    from mlops_onprem.store.base import ObjectStore


def rejection_message(result: ValidationResult, *, dataset: str, batch_id: str) -> str:
    """The message of a rejection: dataset, batch and every blocking rule with its column."""
    failures = result.blocking_failures
    columns = sorted({r.column for r in failures if r.column})
    head = (f"batch {batch_id!r} of dataset {dataset!r} rejected ({result.stage}): "
            f"{len(failures)} blocking failure(s)")
    if columns:
        head += f" on column(s) {columns}"
    return head + ": " + " | ".join(r.describe() for r in failures)


def raise_for_result(result: ValidationResult, *, dataset: str, batch_id: str) -> None:
    """Gate: raise :class:`BatchRejectedError` if ``result`` has a blocking failure.

    Takes the result and the dataset/batch it is about. Returns None when the batch passes
    (warnings do not block). Raises :class:`BatchRejectedError` whose message names each
    failing rule, its expectation and column; :class:`NothingValidatedError` if nothing was
    evaluated.
    """
    if result.evaluated_count == 0:
        raise NothingValidatedError(f"batch {batch_id!r} of dataset {dataset!r}: no rule was evaluated")
    if result.blocking_failures:
        raise BatchRejectedError(rejection_message(result, dataset=dataset, batch_id=batch_id),
                                 dataset=dataset, batch_id=batch_id, result=result)


def conform_to_contract(df: pd.DataFrame, contract: Contract, *, stage: str) -> pd.DataFrame:
    """The validated batch as it is published: contract column order, floats as float64.

    Takes a batch that passed validation. Returns a new DataFrame with the key, timestamp,
    features (contract order) and, at training, the label; ignored extra columns are dropped
    (the original stays in ``incoming/``).
    """
    columns = contract.input_columns(with_label=_stage(stage) == "training" and contract.label is not None)
    out = df.loc[:, columns].copy()
    for spec in contract.features:
        if spec.dtype == Dtype.FLOAT and out[spec.name].dtype != np.float64:
            out[spec.name] = out[spec.name].astype(np.float64)
    return out.reset_index(drop=True)


def quarantine_batch(store: ObjectStore, *, dataset: str, batch_id: str, source_key: str,
                     result_key: str) -> tuple[str, str]:
    """Copy a rejected batch and its result under ``quarantine/<dataset>/<batch_id>/``.

    The data copy is written first and the result JSON after it, so a quarantine folder
    with a ``validation.json`` always holds its data; the source object is left untouched.
    Returns (quarantined data key, quarantined result key). Raises store errors.
    """
    original_name = source_key.rsplit("/", 1)[-1]
    data_key = keys.quarantine_data_key(dataset, batch_id, original_name)
    store.copy(source_key, data_key)
    quarantine_result = keys.quarantine_result_key(dataset, batch_id)
    store.put_json(quarantine_result, store.get_json(result_key))
    return data_key, quarantine_result

