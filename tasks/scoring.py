"""Prefect tasks of batch scoring: thin wrappers around :mod:`mlops_onprem.scoring` / ``.manifest``.

Between tasks travel object keys and small records (dicts), never DataFrames; caching is off
(``cache_policy=NONE``) because every task reads or writes the store. Retries apply only to
transient I/O failures (:func:`retry_on_transient_io`), never to bad data or a bad model.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.logging import get_run_logger

from mlops_onprem import ledger
from mlops_onprem.challenger import challenger_version, shadow_score
from mlops_onprem.contracts import dataset_contract
from mlops_onprem.errors import DataValidationError, ModelError, StoreUnavailableError
from mlops_onprem.manifest import (
    STATUS_COMPLETE,
    ScoringManifest,
    ShadowStatus,
    find_manifest,
    manifest_from_results,
    prune_stale_parts,
    raise_if_failed,
    read_manifest,
    write_manifest,
)
from mlops_onprem.scoring import (
    DEFAULT_BATCH_ROWS,
    InputChangedError,
    InputPartition,
    ModelRef,
    quarantine_partition,
    resolve_scoring_model,
    score_distribution,
    score_object,
    scoring_schema_check,
    scoring_summary_markdown,
)
from mlops_onprem.scoring_plan import (
    ScoringPlanError,
    partitions_for,
    plan_run_id,
    scored_events,
    select_versions,
)
from mlops_onprem.settings import get_settings
from mlops_onprem.store import open_store
from tasks.run_labels import artifact_key, related_links

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    StoreUnavailableError, ConnectionError, TimeoutError,
)


def retry_on_transient_io(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the failure was transient I/O."""
    return isinstance(state.data, TRANSIENT_ERRORS)


_IO_RETRIES: dict[str, Any] = dict(
    retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_transient_io,
    cache_policy=NONE,
)


@task(name="resolve-scoring-model", **_IO_RETRIES)
def resolve_model(
    model_name: str, model_ref: str, dataset: str, contract_path: str | None = None
) -> dict[str, Any]:
    """Resolve ``model_name@model_ref`` and check it against the dataset's contract.

    Returns the model record (name, version, onnx_key, sha256) plus the contract's dataset
    and version. Raises ModelNotFoundError or FeatureMismatchError (not retried).
    """
    contract = dataset_contract(dataset, contract_path)
    model = resolve_scoring_model(open_store(), model_name, model_ref, contract)
    get_run_logger().info(
        "scoring with %s (onnx %s, sha256 %s)", model.label, model.onnx_key, model.sha256[:12]
    )
    return {**model.to_record(), "contract_dataset": contract.dataset,
            "contract_version": contract.version}


@task(name="plan-scoring-run", **_IO_RETRIES)
def plan_scoring_run(
    dataset: str, model: dict[str, Any], *, mode: str, start: str | None, end: str | None,
    prefix: str | None, run_id: str | None, nonce: str,
) -> dict[str, Any]:
    """Choose the batch versions to score from the ledger; return ``{run_id, partitions,
    existing}`` where ``existing`` is the run's manifest key when that run is already complete
    (then nothing is scored again)."""
    store = open_store()
    index = ledger.read_index(store, dataset)
    ref = f"{model['name']}@{model['version']}"
    views = select_versions(index, model["name"], mode=mode, start=start, end=end, prefix=prefix)
    partitions = partitions_for(store, views)
    selected = sorted(v.id for v in views)
    run = run_id or plan_run_id(model["name"], model["version"], selected, mode=mode, nonce=nonce)
    existing = find_manifest(store, model["name"], model["version"], run) if partitions else None
    for _ in range(20):
        if existing is None or existing.status == STATUS_COMPLETE or run_id:
            break
        # an earlier attempt left a partial run: its parts stay as the ledger recorded them,
        # and this attempt is a new run (deterministic, so a rerun of it is a no-op again)
        run = plan_run_id(model["name"], model["version"], selected, mode="rescore",
                          nonce=f"retry-of-{run}")
        existing = find_manifest(store, model["name"], model["version"], run)
    if existing is not None:
        inputs = sorted(i.version or "" for i in existing.inputs)
        if existing.status != STATUS_COMPLETE or inputs != selected:
            raise ScoringPlanError(
                f"run {run} already exists ({existing.key}, {existing.status}, {len(inputs)} "
                f"input(s)) and this selection is {len(selected)} other batch version(s): a run "
                "is never rewritten; leave run_id unset or choose a new one")
    complete = existing is not None
    logger = get_run_logger()
    if complete:
        logger.info("run %s is already complete (%s): nothing is rescored", run, existing.key)
    else:
        logger.info("%d batch version(s) to score with %s (mode %s) as run %s", len(partitions),
                    ref, mode, run)
    return {"run_id": run, "partitions": partitions, "existing": existing.key if complete else None}


@task(name="score-partition", task_run_name="score-partition-{partition[key]}", **_IO_RETRIES)
def score_partition(
    partition: dict[str, Any],
    model: dict[str, Any],
    dataset: str,
    run_id: str,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    ort_threads: int = 1,
    contract_path: str | None = None,
) -> dict[str, Any]:
    """Download one partition to scratch, stream-score it, upload its part; return a record.

    A partition that is not readable or breaks the contract's schema is copied to
    ``quarantine/<dataset>/<batch>/`` with the reason, and the task fails naming it.
    """
    logger = get_run_logger()
    store = open_store()
    contract = dataset_contract(dataset, contract_path)
    model_ref = ModelRef(**{k: model[k] for k in ("name", "version", "onnx_key", "sha256")},
                         decision_threshold=model.get("decision_threshold"))
    item = InputPartition(**{k: partition[k] for k in ("key", "etag", "size")})
    try:
        record = score_object(
            store, item, model_ref, contract, run_id=run_id,
            scratch_dir=get_settings().scratch_dir / "scoring", batch_rows=batch_rows,
            intra_op_threads=ort_threads, schema_check=scoring_schema_check(contract),
        )
    except InputChangedError:
        raise
    except DataValidationError as exc:
        written = quarantine_partition(store, dataset, item.key, exc, run_id=run_id)
        logger.error("partition %s rejected and quarantined at %s: %s", item.key, written[0], exc)
        raise
    logger.info(
        "scored %s: %d rows in %.2f s -> %s", item.key, record["rows"], record["seconds"],
        record["output_key"],
    )
    return record


def run_summary(manifest: ScoringManifest, *, records: list[dict[str, Any]],
                pruned: list[str], partitions: int) -> dict[str, Any]:
    """The small record a scoring run returns (and its artifact shows)."""
    return {
        "run_id": manifest.run_id, "model_name": manifest.model_name,
        "model_version": manifest.model_version, "manifest_key": manifest.key,
        "status": manifest.status, "rows": manifest.rows, "partitions": partitions,
        "output_keys": [o.key for o in manifest.outputs],
        "inputs": [{"version": i.version, "source_key": i.source_key, "rows": i.rows}
                   for i in manifest.inputs],
        "failed_partitions": [
            {"key": f.key, "etag": f.etag, "error": f.error} for f in manifest.failed_partitions
        ],
        "pruned_keys": pruned, "timings": manifest.timings,
        "contract_dataset": manifest.contract_dataset,
        "contract_version": manifest.contract_version,
        "score_distribution": score_distribution(records),
        "workers": sorted({r["worker"] for r in records}),
    }


@task(name="write-scoring-manifest", **_IO_RETRIES)
def write_scoring_manifest(
    model: dict[str, Any],
    run_id: str,
    partitions: list[dict[str, Any]],
    results: list[Any],
    started_at: float,
) -> dict[str, Any]:
    """Write the run's manifest last (create-only), prune stale parts; return the run summary.

    ``results`` holds, per partition, its record or the exception it failed with (pass the
    futures wrapped in ``allow_failure``). A run with failures still gets a manifest listing
    them (status ``partial``); :func:`check_scoring_complete` then fails the flow.
    """
    records = [r for r in results if isinstance(r, dict)]
    rows = sum(int(r["rows"]) for r in records)
    wall = max(time.time() - started_at, 1e-9)
    timings = {
        "wall_s": wall, "rows_per_s": rows / wall,
        **{f"{name}_total": sum(r["timings"][name] for r in records)
           for name in ("download_s", "score_s", "upload_s")},
    }
    manifest = manifest_from_results(
        model_name=model["name"], model_version=model["version"], run_id=run_id,
        partitions=partitions, results=results, contract_dataset=model["contract_dataset"],
        contract_version=model["contract_version"], timings=timings,
    )
    store = open_store()
    key = write_manifest(store, manifest)
    pruned = prune_stale_parts(store, manifest)
    logger = get_run_logger()
    if pruned:
        logger.warning("removed %d stale object(s) from the run prefix: %s", len(pruned), pruned)
    logger.info("manifest %s written (%s, %d rows)", key, manifest.status, manifest.rows)
    return run_summary(manifest, records=records, pruned=pruned, partitions=len(partitions))


@task(name="read-complete-run", **_IO_RETRIES)
def read_complete_run(manifest_key: str) -> dict[str, Any]:
    """The summary of a run that is already complete (a rerun of it changes nothing)."""
    manifest = read_manifest(open_store(), manifest_key)
    return run_summary(manifest, records=[], pruned=[], partitions=len(manifest.inputs))


@task(name="record-scored-batches", **_IO_RETRIES)
def record_scored(dataset: str, manifest_key: str, mode: str) -> int:
    """Commit ``scored`` ledger events for every batch version the manifest's outputs cover
    (moves each version's pointer for this model version to this run). Returns their count."""
    store = open_store()
    events = scored_events(read_manifest(store, manifest_key), mode=mode)
    ledger.record(store, dataset, events)
    return len(events)


@task(name="publish-scoring-summary", cache_policy=NONE)
def publish_scoring_summary(summary: dict[str, Any]) -> str:
    """Publish the run's markdown summary artifact; return the markdown."""
    markdown = scoring_summary_markdown(summary, summary["score_distribution"])
    if summary.get("model_name"):
        name = summary["model_name"]
        markdown += "\n\n" + related_links({
            "model card": artifact_key("model-card", name),
            "latest drift report": artifact_key("drift-report", name),
        }) + "\n"
    create_markdown_artifact(
        markdown=markdown, key=artifact_key("scoring", summary["model_name"]),
        description=f"scoring run {summary['run_id']} of {summary['model_name']} "
                    f"v{summary['model_version']}",
    )
    return markdown


@task(name="check-scoring-complete", cache_policy=NONE)
def check_scoring_complete(summary: dict[str, Any]) -> None:
    """Gate: fail naming every partition that could not be scored (after the manifest)."""
    raise_if_failed(summary)


@task(name="shadow-score-challenger", **_IO_RETRIES)
def shadow_score_challenger(
    dataset: str, champion: dict[str, Any], manifest_key: str, partitions: list[dict[str, Any]],
    batch_rows: int = DEFAULT_BATCH_ROWS, ort_threads: int = 1, contract_path: str | None = None,
) -> dict[str, Any] | None:
    """Score the run's batches with the model's ``challenger`` too, into ``shadow/...`` (never
    delivered; :mod:`mlops_onprem.challenger`). None when no challenger is set. A challenger
    that cannot score is logged and skipped: the champion's delivery never depends on it."""
    store, logger = open_store(), get_run_logger()
    version = challenger_version(store, champion["name"])
    if version is None:
        return None
    if version == champion["version"]:
        return {"status": ShadowStatus.SKIPPED, "challenger_version": version,
                "reason": f"challenger v{version} is the champion"}
    contract = dataset_contract(dataset, contract_path)
    try:
        model = resolve_scoring_model(store, champion["name"], str(version), contract)
    except ModelError as exc:  # FeatureMismatchError, ModelNotFoundError, integrity
        logger.warning("shadow challenger v%d not scored: %s", version, exc)
        return {"status": ShadowStatus.SKIPPED, "challenger_version": version, "reason": str(exc)}
    manifest = shadow_score(
        store, partitions, model, contract, champion_manifest_key=manifest_key,
        scratch_dir=get_settings().scratch_dir / "shadow", batch_rows=batch_rows,
        ort_threads=ort_threads)
    for failure in manifest["failed"]:
        logger.warning("shadow challenger v%d failed on %s: %s", version, failure["key"],
                       failure["error"])
    logger.info("shadow challenger v%d scored %d rows (%s)", version, manifest["rows"],
                manifest["key"])
    return {"status": ShadowStatus.SCORED, "challenger_version": version, "rows": manifest["rows"],
            "failed": len(manifest["failed"]), "manifest_key": manifest["key"]}
