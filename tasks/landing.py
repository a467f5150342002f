"""Prefect task that lands synthetic data in the store (the demo's upstream system)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from mlops_onprem import landing
from mlops_onprem.store import open_store
from mlops_onprem.synthetic import SyntheticSpec


@task(name="land-synthetic-batch", cache_policy=NONE)
def land_synthetic_batch(
    dataset: str, batch_id: str, *, rows: int, seed: int, start_row: int,
    for_scoring: bool = False, covariate_shift: float = 0.0, concept_shift: float = 0.0,
    corrupt: bool = False,
) -> dict[str, Any]:
    """Generate and land one synthetic batch (and its delayed labels for scoring batches)."""
    batch, labels = landing.land_synthetic_batch(
        open_store(), SyntheticSpec(dataset=dataset), batch_id=batch_id, rows=rows, seed=seed,
        start_row=start_row, for_scoring=for_scoring, covariate_shift=covariate_shift,
        concept_shift=concept_shift, corrupt=corrupt,
    )
    get_run_logger().info("landed %s (%d rows)%s", batch.key, batch.rows,
                          f" and labels {labels.key}" if labels else "")
    return {"key": batch.key, "rows": batch.rows, "labels_key": labels.key if labels else None}
