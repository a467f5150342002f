"""Flow ``score-batch``: score validated batches with the champion model, partition by partition.

Pipeline::

    resolve-scoring-model -> list-partitions -> score-partition (one per input object, fanned
    out on the task runner) -> write-scoring-manifest (last) -> publish-scoring-summary
    -> check-scoring-complete

Input: every ``.parquet`` object under ``input_prefix`` (default ``inbox/<dataset>/``, where
batches to score land; ``validated-scoring/<dataset>/`` holds those that went through the
ingest gate at the scoring stage; pass e.g. ``inbox/demo/2026-11-01`` to score one
batch). Output: ``predictions/<model>/<version>/<run_id>/part-*.parquet`` plus
``_manifest.json`` written last. The run id is derived from the model version and the input
listing's ETags unless pinned, so a rerun over the same input and model rewrites the same keys.

The flow runs unchanged on Dask: ``score_batch.with_options(task_runner=DaskTaskRunner(...))``.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, unmapped
from prefect.utilities.annotations import allow_failure

from mlops_onprem import keys
from mlops_onprem.manifest import derive_run_id
from mlops_onprem.scoring import DEFAULT_BATCH_ROWS
from tasks.scoring import (
    check_scoring_complete,
    list_partitions,
    publish_scoring_summary,
    resolve_model,
    score_partition,
    write_scoring_manifest,
)


@flow(name="score-batch")
def score_batch(
    dataset: str = "demo",
    input_prefix: str | None = None,
    model_name: str = "demo",
    model_ref: str = "champion",
    run_id: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    ort_threads: int = 1,
    contract_path: str | None = None,
) -> dict[str, Any]:
    """Score every partition under ``input_prefix`` with ``model_name@model_ref``.

    ``ort_threads`` is onnxruntime's intra-op thread count per partition (partitions already
    run in parallel on the task runner). ``contract_path`` overrides
    ``data_contracts/<dataset>.yaml``.

    Returns the run summary (run id, manifest key, rows, output keys, failed partitions).
    Raises ModelNotFoundError (no champion), FeatureMismatchError (model vs contract),
    NoInputPartitionsError, and ScoringRunFailedError naming the partitions that failed
    (after their quarantine and after the manifest recorded them).
    """
    started_at = time.time()
    prefix = input_prefix or keys.scoring_inbox_prefix(dataset)
    model = resolve_model(model_name, model_ref, dataset, contract_path)
    partitions = list_partitions(prefix)
    run = run_id or derive_run_id(
        model["name"], model["version"], [(p["key"], p["etag"]) for p in partitions]
    )
    scored = score_partition.map(
        partitions, model=unmapped(model), dataset=unmapped(dataset), run_id=unmapped(run),
        batch_rows=unmapped(batch_rows), ort_threads=unmapped(ort_threads),
        contract_path=unmapped(contract_path),
    )
    summary = write_scoring_manifest(
        model, run, partitions, allow_failure(scored), started_at=started_at
    )
    publish_scoring_summary(summary)
    check_scoring_complete(summary)
    return summary


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Score a dataset's batches with a registered model.")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--input-prefix", default=None)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--ref", default="champion")
    parser.add_argument("--run-id", default=None)
    parser.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS)
    parser.add_argument("--ort-threads", type=int, default=1)
    parser.add_argument("--contract-path", default=None)
    args = parser.parse_args()
    print(json.dumps(score_batch(
        dataset=args.dataset, input_prefix=args.input_prefix, model_name=args.model,
        model_ref=args.ref, run_id=args.run_id, batch_rows=args.batch_rows,
        ort_threads=args.ort_threads, contract_path=args.contract_path,
    ), indent=2, default=str))
