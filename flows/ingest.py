"""Flow: land -> validate against the data contract -> validated/ or quarantine/.

    incoming/<dataset>/<batch>.(parquet|csv)
        -> validate-batch  (GX suite from data_contracts/<dataset>.yaml)
        -> validated/<dataset>/<batch>.parquet           when every blocking rule passes
           (validated-scoring/<dataset>/ at stage "scoring": never where training reads)
        -> quarantine/<dataset>/<batch>/...  + Failed    when one does not
"""

from __future__ import annotations

import argparse
from typing import Literal

from prefect import flow

from mlops_onprem.validation import batch_id_from_key
from tasks.validation import quarantine, rejection, validate_batch


@flow(name="ingest-batch")
def ingest_batch(
    dataset: str,
    source_key: str,
    batch_id: str | None = None,
    contract_path: str | None = None,
    stage: Literal["training", "scoring"] = "training",
) -> str:
    """Gate one landed batch. Returns the validated key; a rejected batch fails the run.

    ``stage`` is "training" (label required) or "scoring" (label must be absent).
    """
    batch_id = batch_id or batch_id_from_key(source_key)
    outcome = validate_batch(dataset, source_key, batch_id, stage, contract_path)
    if not outcome.success:
        quarantine_key = quarantine(outcome)
        raise rejection(outcome, quarantine_key)
    return outcome.validated_key


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Validate one landed batch against its contract.")
    parser.add_argument("dataset")
    parser.add_argument("source_key", help="object key of the landed batch, e.g. incoming/demo/b1.parquet")
    parser.add_argument("--batch-id")
    parser.add_argument("--contract")
    parser.add_argument("--stage", choices=["training", "scoring"], default="training")
    args = parser.parse_args()
    print(ingest_batch(args.dataset, args.source_key, args.batch_id, args.contract, args.stage))
