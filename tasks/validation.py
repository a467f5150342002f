"""Prefect tasks of the data-contract gate: thin wrappers around :mod:`mlops_onprem.batch_gate`
and :mod:`mlops_onprem.ledger` (the ledger decides what is pending; the gate validates and routes).
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from mlops_onprem import batch_gate, ledger
from mlops_onprem.contracts import dataset_contract
from mlops_onprem.store import open_store
from mlops_onprem.validation import report_markdown
from tasks.run_labels import artifact_key


def _under(view: ledger.VersionView, prefix: str | None) -> bool:
    return prefix is None or any(key.startswith(prefix) for key in view.state["keys"])


@task(name="register-landings", cache_policy=NONE, retries=2, retry_delay_seconds=[2, 10])
def register_landings(
    dataset: str, stages: list[str], *, source_prefix: str | None = None,
    start: str | None = None, end: str | None = None, contract_path: str | None = None,
    revalidate: bool = False, register_labels: bool = True,
) -> list[str]:
    """Record what landed (and, with ``register_labels``, new label objects under
    ``labels/<ds>/``) in the ledger; return the versions to gate.

    Those are the current versions of ``stages`` still pending (or, with ``revalidate``, decided
    under another contract version), limited to keys under ``source_prefix`` and data dates in
    [start, end]. Retried: discovery only adds idempotent events.
    """
    logger = get_run_logger()
    store, contract = open_store(), dataset_contract(dataset, contract_path)
    index = ledger.read_index(store, dataset)
    events: list[dict[str, Any]] = []
    for stage in stages:
        base = batch_gate.landing_prefix(dataset, stage)
        prefix = source_prefix if source_prefix and source_prefix.startswith(base) else base
        if source_prefix and not source_prefix.startswith(base):
            continue  # the requested key/prefix belongs to the other stage
        events += batch_gate.discover_landings(store, dataset, stage, index, prefix=prefix,
                                               start=start, end=end)
    index = ledger.record(store, dataset, events)
    label_events = (batch_gate.discover_labels(store, dataset, contract, index)
                    if register_labels else [])
    index = ledger.record(store, dataset, label_events)
    landed = sum(e["kind"] == "landed" for e in events)
    labelled = sum(e["version"] == "labels" for e in label_events)
    todo: list[str] = []
    for stage in stages:
        for view in ledger.versions(index, stage=stage):
            if not (view.current and _under(view, source_prefix) and ledger.in_range(view, start, end)):
                continue
            stale = (revalidate and view.validation is not None
                     and view.validation.get("contract_version") != contract.version)
            if view.status == ledger.BatchStatus.PENDING or stale:
                todo.append(view.id)
    logger.info("%s: %d new landing(s), %d new label object(s); %d batch version(s) to validate",
                dataset, landed, labelled, len(todo))
    return todo


def validation_artifact_keys(dataset: str, version: str) -> tuple[str, str]:
    """The report's artifact keys: the dataset's (its latest verdict, history in the key's
    timeline) and the batch version's own, so a later pass never hides a rejected batch."""
    return artifact_key("validation", dataset), artifact_key("validation", dataset, version)


# no retries: re-gating the same bytes gives the same verdict and the same keys; the store
# client retries transient I/O itself (Settings.s3_max_retries)
@task(name="validate-batch", task_run_name="validate-{version}", cache_policy=NONE)
def validate_batch(dataset: str, version: str, contract_path: str | None = None) -> dict[str, Any] | None:
    """Validate one batch version, route it (validated copy or quarantine), then record the
    verdict in the ledger (the commit marker). Returns the verdict record (None when the version
    was superseded by new bytes under its key meanwhile).

    Publishes the validation report (verdict, quarantine key or validated copy, failed rules
    with their expected bounds/values) under the dataset's artifact key and the version's own.
    """
    logger = get_run_logger()
    store, contract = open_store(), dataset_contract(dataset, contract_path)
    index = ledger.read_index(store, dataset)
    state = index["versions"].get(version)
    if state is None:
        raise ledger.LedgerError(f"batch version {version} of {dataset!r} is not in the ledger")
    if not any(entry["version"] == version for entry in index["keys"].values()):
        # new bytes landed under its key since it was registered: the next run gates those
        logger.warning("batch version %s of %s was superseded before it was gated; skipped",
                       version, dataset)
        return None
    view = ledger.VersionView(state, True)
    verdict, result, event = batch_gate.gate_version(store, contract, index, view)
    ledger.record(store, dataset, [event])
    report = report_markdown(result, source_key=verdict.source_key, version=verdict.version,
                             routed_key=verdict.routed_key, result_key=verdict.result_key)
    outcome = "passed" if verdict.success else "rejected"
    for key in validation_artifact_keys(dataset, verdict.version):
        create_markdown_artifact(markdown=report, key=key,
                                 description=f"Contract validation of {verdict.source_key}: {outcome}")
    if verdict.success:
        logger.info("%s -> %s: %s", verdict.source_key, verdict.routed_key, verdict.summary)
    else:
        logger.error("%s quarantined at %s: %s", verdict.source_key, verdict.routed_key,
                     verdict.message)
    for warning in verdict.warnings:
        logger.warning("warn-only rule failed on %s: %s", verdict.source_key, warning)
    return verdict.to_dict()
