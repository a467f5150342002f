"""Flow ``score-batch``: score what is new and valid with the champion, partition by partition.

Pipeline::

    ingest-batch (scoring stage: every pending inbox batch version through the contract's value
    rules; rejected ones are quarantined and named) -> resolve-scoring-model -> plan-scoring-run
    (batch versions chosen from the ledger) -> score-partition (one per version, fanned out on
    the task runner) -> write-scoring-manifest (last, create-only) -> record-scored-batches
    -> shadow-score-challenger (when a ``challenger`` alias is set: the same batches into
    ``shadow/<model>/<version>/<run_id>/``, never delivered) -> publish-scoring-summary
    -> check-scoring-complete -> rejected batches fail the run

Input: batches landed under ``inbox/<dataset>/`` (flat or Hive ``dt=YYYY-MM-DD/``); each
distinct content is one batch version, scored from its validated copy
``validated-scoring/<dataset>/<version>.parquet``. ``mode``:

    new       (default) versions the model version has not scored yet: the nightly run
              scores each batch once; a new champion scores new batches only
    backfill  every validated version in [start, end] with the chosen ``model_ref``; the run id
              derives from the versions, so a rerun is a no-op with the same keys and bytes
    rescore   the same, forced, under a new run id; the ledger's pointer moves to it atomically

Output: ``predictions/<model>/<version>/<run_id>/part-*.parquet`` plus ``_manifest.json``
written last. A complete run is never rewritten. The flow runs unchanged on Dask:
``score_batch.with_options(task_runner=DaskTaskRunner(...))``.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger, runtime, unmapped
from prefect.utilities.annotations import allow_failure

from flows.ingest import ingest_batch, rejected_error
from mlops_onprem import keys, ledger, progress
from mlops_onprem.scoring import DEFAULT_BATCH_ROWS, score_distribution
from mlops_onprem.scoring_plan import ScoringMode
from tasks.run_labels import mark_run, run_name
from tasks.scoring import (
    check_scoring_complete,
    plan_scoring_run,
    publish_scoring_summary,
    read_complete_run,
    record_scored,
    resolve_model,
    score_partition,
    shadow_score_challenger,
    write_scoring_manifest,
)


def _nothing_to_score(dataset: str, model: dict[str, Any] | None, run_id: str | None) -> dict[str, Any]:
    return {"run_id": run_id, "model_name": model["name"] if model else None,
            "model_version": model["version"] if model else None, "manifest_key": None,
            "status": "nothing-new", "rows": 0, "partitions": 0, "output_keys": [], "inputs": [],
            "failed_partitions": [], "pruned_keys": [], "timings": {},
            "contract_dataset": dataset, "contract_version": model["contract_version"] if model else None,
            "score_distribution": score_distribution([]), "workers": []}


@flow(name="score-batch", flow_run_name=run_name(lambda p: (
    f"score {p.get('dataset', 'demo')} {p.get('model_name', 'demo')}@{p.get('model_ref', 'champion')} "
    f"{p.get('mode', 'new')} {p.get('start') or ''}{'..' if p.get('end') else ''}{p.get('end') or ''}")))
def score_batch(
    dataset: str = "demo",
    model_name: str = "demo",
    model_ref: str = "champion",
    mode: ScoringMode = "new",
    start: str | None = None,
    end: str | None = None,
    input_prefix: str | None = None,
    run_id: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    ort_threads: int = 1,
    contract_path: str | None = None,
    fail_on_rejected: bool = True,
) -> dict[str, Any]:
    """Gate the inbox, then score the batch versions ``mode`` selects with ``model_name@model_ref``.

    ``start``/``end`` (ISO dates) and ``input_prefix`` (a key or prefix under
    ``inbox/<dataset>/``) limit the batches. ``ort_threads`` is onnxruntime's intra-op thread
    count per partition. ``contract_path`` overrides ``data_contracts/<dataset>.yaml``.

    Returns the run summary (run id, manifest key, rows, inputs, output keys, failed
    partitions, ``rejected``: the inbox batches the gate quarantined). ``status`` is
    ``complete``, ``partial`` or ``nothing-new``.
    Raises ModelNotFoundError (no champion), FeatureMismatchError (model vs contract),
    ScoringRunFailedError naming partitions that failed, and, after everything valid was
    scored and published, BatchRejectedError naming each rejected batch (unless
    ``fail_on_rejected`` is False).
    """
    started_at = time.time()
    mark_run(tags=[f"dataset:{dataset}", f"model:{model_name}"])
    inbox = keys.scoring_inbox_prefix(dataset)
    if input_prefix is not None and not input_prefix.startswith(inbox):
        raise ValueError(f"input_prefix {input_prefix!r} is not under the scoring inbox {inbox!r}")
    gated = ingest_batch(dataset, source_key=input_prefix, stage=ledger.STAGE_SCORING, start=start,
                         end=end, contract_path=contract_path, fail_on_rejected=False)
    model = resolve_model(model_name, model_ref, dataset, contract_path)
    plan = plan_scoring_run(dataset, model, mode=mode, start=start, end=end, prefix=input_prefix,
                            run_id=run_id, nonce=str(runtime.flow_run.id or started_at))
    if not plan["partitions"]:
        get_run_logger().info("nothing new to score for %s v%s", model["name"], model["version"])
        summary = _nothing_to_score(dataset, model, None)
    elif plan["existing"]:
        summary = read_complete_run(plan["existing"])
        record_scored(dataset, plan["existing"], mode)  # in case the last run died before it
    else:
        scored = score_partition.map(
            plan["partitions"], model=unmapped(model), dataset=unmapped(dataset),
            run_id=unmapped(plan["run_id"]), batch_rows=unmapped(batch_rows),
            ort_threads=unmapped(ort_threads), contract_path=unmapped(contract_path),
        )
        progress.follow("score-partition", scored, [p["key"] for p in plan["partitions"]])  # mlops score run
        summary = write_scoring_manifest(model, plan["run_id"], plan["partitions"],
                                         allow_failure(scored), started_at=started_at)
        record_scored(dataset, summary["manifest_key"], mode)
    if plan["partitions"] and summary["status"] == "complete":
        summary["shadow"] = shadow_score_challenger(
            dataset, model, summary["manifest_key"], plan["partitions"], batch_rows=batch_rows,
            ort_threads=ort_threads, contract_path=contract_path)
    summary["rejected"] = gated["rejected"]
    summary["mode"] = mode
    publish_scoring_summary(summary)
    mark_run(suffix=f" v{summary['model_version']}" + (
        f" - {len(gated['rejected'])} rejected" if gated["rejected"] else ""),
        tags=["rejected"] if gated["rejected"] else ())
    check_scoring_complete(summary)
    if gated["rejected"] and fail_on_rejected:
        raise rejected_error(dataset, gated["rejected"])
    return summary


if __name__ == "__main__":  # the same options as `mlops score run` (mlops_onprem/cli/)
    import sys

    from mlops_onprem.cli import main

    sys.exit(main(["score", "run", *sys.argv[1:]]))
