"""Landing data in the store: which landed batches still wait for validation, and synthetic landings.

Batches land under ``incoming/<dataset>/`` (labelled, for training) or ``inbox/<dataset>/``
(unlabelled, for scoring). A landed batch is *pending* until its validation result exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mlops_onprem import keys
from mlops_onprem.store.base import ObjectStore
from mlops_onprem.store.parquet import put_dataframe
from mlops_onprem.synthetic import LABEL, ROW_KEY, SyntheticSpec, corrupt_batch, generate_batch


@dataclass(frozen=True)
class LandedBatch:
    key: str
    rows: int
    sha256: str


def land_dataframe(store: ObjectStore, key: str, df: pd.DataFrame) -> LandedBatch:
    """Write ``df`` as Parquet at ``key`` (as an upstream system would)."""
    info = put_dataframe(store, key, df)
    return LandedBatch(key=key, rows=len(df), sha256=info.sha256 or "")


def land_synthetic_batch(
    store: ObjectStore, spec: SyntheticSpec, *, batch_id: str, rows: int, seed: int,
    start_row: int, for_scoring: bool = False, covariate_shift: float = 0.0,
    concept_shift: float = 0.0, corrupt: bool = False,
) -> tuple[LandedBatch, LandedBatch | None]:
    """Generate a synthetic batch and land it.

    Training batches (labelled) go to ``incoming/``. Scoring batches go to ``inbox/`` without
    their label; the label is landed separately under ``labels/`` (delayed ground truth).
    ``corrupt`` breaks the batch the way real feeds break (see ``synthetic.corrupt_batch``).
    Returns (landed batch, landed labels or None).
    """
    start_time = pd.Timestamp("2026-01-01") + pd.Timedelta(seconds=start_row)
    df = generate_batch(spec, rows, seed=seed, start_row=start_row, start_time=start_time,
                        covariate_shift=covariate_shift, concept_shift=concept_shift)
    if corrupt:
        df = corrupt_batch(spec, df)
    if not for_scoring:
        return land_dataframe(store, keys.incoming_key(spec.dataset, batch_id), df), None
    features = df.drop(columns=[LABEL])
    labels = df[[ROW_KEY, LABEL]]
    batch = land_dataframe(store, keys.scoring_inbox_key(spec.dataset, batch_id), features)
    landed_labels = land_dataframe(store, keys.labels_key(spec.dataset, batch_id), labels)
    return batch, landed_labels
