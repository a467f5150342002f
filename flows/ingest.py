"""Flow ``ingest-batch``: every pending batch version of a dataset through its data contract.

    incoming/<ds>/...  (training)   inbox/<ds>/...  (scoring)   flat or Hive-style dt=YYYY-MM-DD/
        -> register-landings   new (key, ETag) -> ``landed`` ledger events; same bytes = same
                               version (no-op); new bytes under a key = a new version
        -> validate-batch      one task per pending version (GX suite from data_contracts/)
              validated/<ds>/<version>.parquet (training) | validated-scoring/<ds>/<version>.parquet
              quarantine/<ds>/<version>/...   when a blocking rule fails
           then the ``validated``/``rejected`` ledger event (the commit marker)

One run gates every pending version (Great Expectations is imported once per process, not once
per batch). A rejected batch does not stop the others; the run ends Failed afterwards naming
every rejected key and its quarantine key (unless ``fail_on_rejected`` is False, as when
``score-batch`` gates its inbox and reports the rejections itself).
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger

from mlops_onprem import ledger
from mlops_onprem.validation import BatchRejectedError
from tasks.run_labels import mark_run, run_name
from tasks.validation import register_landings, validate_batch

Stage = Literal["training", "scoring"]


def rejected_error(dataset: str, rejected: list[dict[str, Any]]) -> BatchRejectedError:
    """The error a run ends with when batches were quarantined (names each key and where it went)."""
    names = "; ".join(f"{r['source_key']} -> {r['routed_key']}: {r['message'][:400]}" for r in rejected)
    return BatchRejectedError(f"{len(rejected)} batch(es) of {dataset!r} rejected and quarantined: "
                              f"{names}", dataset=dataset, batch_id=",".join(r["version"] for r in rejected))


@flow(name="ingest-batch", flow_run_name=run_name(lambda p: (
    f"ingest {p.get('dataset', 'demo')} {p.get('stage') or ''} "
    f"{(p.get('source_key') or '').rstrip('/').rsplit('/', 1)[-1]}")))
def ingest_batch(
    dataset: str = "demo",
    source_key: str | None = None,
    stage: Stage | None = None,
    start: str | None = None,
    end: str | None = None,
    contract_path: str | None = None,
    revalidate: bool = False,
    fail_on_rejected: bool = True,
) -> dict[str, Any]:
    """Gate every pending batch version of ``dataset`` (of ``stage``, or both stages; then
    delayed label objects under ``labels/<ds>/`` are registered too).

    ``source_key`` limits the run to one landed key or a key prefix; ``start``/``end`` (ISO
    dates) to batches whose data date (Hive partition, else newest timestamp, else landing day)
    lies in the range. ``revalidate`` gates again versions decided under another contract
    version. Returns ``{dataset, validated: [verdict], rejected: [verdict]}``.
    Raises BatchRejectedError after gating everything when a batch was rejected (unless
    ``fail_on_rejected`` is False); store or contract errors stop the run (not a verdict).
    """
    mark_run(tags=[f"dataset:{dataset}"])
    stages = [stage] if stage else [ledger.STAGE_TRAINING, ledger.STAGE_SCORING]
    todo = register_landings(dataset, stages, source_prefix=source_key, start=start, end=end,
                             contract_path=contract_path, revalidate=revalidate,
                             register_labels=stage is None)
    # one at a time, oldest first: each verdict is in the ledger before the next batch's
    # cross-batch row-key check reads it (an I/O error stops the run: it is not a verdict)
    verdicts = [v for v in (validate_batch(dataset, version, contract_path) for version in todo)
                if v is not None]
    summary = {"dataset": dataset,
               "validated": [v for v in verdicts if v["success"]],
               "rejected": [v for v in verdicts if not v["success"]]}
    get_run_logger().info("%s: %d batch version(s) validated, %d rejected", dataset,
                          len(summary["validated"]), len(summary["rejected"]))
    if summary["rejected"]:
        mark_run(suffix=f" - {len(summary['rejected'])} rejected", tags=["rejected"])
    if summary["rejected"] and fail_on_rejected:
        raise rejected_error(dataset, summary["rejected"])
    return summary


if __name__ == "__main__":  # the same options as `mlops ingest` (mlops_onprem/cli/)
    import sys

    from mlops_onprem.cli import main

    sys.exit(main(["ingest", *sys.argv[1:]]))
