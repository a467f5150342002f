"""Prefect tasks of the data-contract gate: thin wrappers around :mod:`mlops_onprem.validation`."""

from __future__ import annotations

import re

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from mlops_onprem.contracts import Contract, find_contract, load_contract
from mlops_onprem.store import open_store
from mlops_onprem.validation import (
    BatchRejectedError,
    GateOutcome,
    quarantine_batch,
    validate_landed_batch,
)


def _artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:200]


def _contract(dataset: str, contract_path: str | None) -> Contract:
    return load_contract(contract_path) if contract_path else find_contract(dataset)


# no retries: re-running a validation on the same bytes gives the same verdict; the store
# client retries transient I/O errors itself (Settings.s3_max_retries)
@task(name="validate-batch", cache_policy=NONE)
def validate_batch(
    dataset: str, source_key: str, batch_id: str, stage: str, contract_path: str | None = None,
) -> GateOutcome:
    """Validate the landed batch at ``source_key``; write its result and, if valid, validated/.

    Publishes a markdown artifact (summary + failures + key of the full JSON result).
    Returns the small :class:`GateOutcome` record (never the DataFrame).
    """
    logger = get_run_logger()
    contract = _contract(dataset, contract_path)
    if contract.dataset != dataset:
        raise ValueError(f"contract for dataset {contract.dataset!r} used for dataset {dataset!r}")
    outcome, result = validate_landed_batch(
        open_store(), contract=contract, source_key=source_key, batch_id=batch_id, stage=stage)
    create_markdown_artifact(
        markdown=result.summary_markdown(result_key=outcome.result_key),
        key=_artifact_key("validation", dataset),
        description=f"Contract validation of {source_key}",
    )
    log = logger.info if outcome.success else logger.error
    log("%s (result: %s)", outcome.summary, outcome.result_key)
    for warning in result.warnings:
        logger.warning("warn-only rule failed: %s", warning.describe())
    return outcome


@task(name="quarantine-batch", cache_policy=NONE, retries=2, retry_delay_seconds=[2, 10])
def quarantine(outcome: GateOutcome) -> str:
    """Copy a rejected batch and its result under quarantine/ (data first, result after).

    Returns the quarantine prefix's data key. Retried: it only copies, and copies are idempotent.
    """
    data_key, result_key = quarantine_batch(
        open_store(), dataset=outcome.dataset, batch_id=outcome.batch_id,
        source_key=outcome.source_key, result_key=outcome.result_key)
    get_run_logger().warning("quarantined %s as %s (result %s)", outcome.source_key, data_key, result_key)
    return data_key


def rejection(outcome: GateOutcome, quarantine_key: str) -> BatchRejectedError:
    """The exception a flow raises for a rejected batch (names rules, columns, quarantine key)."""
    return BatchRejectedError(
        f"{outcome.message} | quarantined at {quarantine_key}; full result {outcome.result_key}",
        dataset=outcome.dataset, batch_id=outcome.batch_id,
    )
