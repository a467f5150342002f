"""Prefect tasks of training: thin wrappers around :mod:`mlops_onprem.training` and the parity
gate of :mod:`mlops_onprem.registry`.

Between tasks travel small records (dicts) and object keys: the candidate is staged in the
store by the training task. No retries: training and parity are deterministic, and the store
client already retries transient I/O (``Settings.s3_max_retries``).
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from mlops_onprem import ledger
from mlops_onprem.contracts import dataset_contract
from mlops_onprem.model_card import metrics_table
from mlops_onprem.model_spec import ModelSpec, ModelSpecError, load_model_spec
from mlops_onprem.registry import check_candidate_parity, get_version
from mlops_onprem.store import open_store
from mlops_onprem.training import Candidate, train_candidate
from tasks.run_labels import artifact_key

CARD_SPEC_PREFIX = "card:"


def resolve_spec(spec: str, *, seed: int | None = None) -> ModelSpec:
    """A spec name / path (``model_specs/``), or ``card:<model>@<version>``: the spec recorded
    in that version's card (what a drift retrain uses, so an edited YAML changes nothing)."""
    if not spec.startswith(CARD_SPEC_PREFIX):
        return load_model_spec(spec, seed=seed)
    name, _, version = spec[len(CARD_SPEC_PREFIX):].rpartition("@")
    if not name or not version.isdigit():
        raise ModelSpecError(f"spec reference {spec!r}: expected card:<model>@<version>")
    recorded = get_version(open_store(), name, int(version)).card.get("spec")
    if not recorded:
        raise ModelSpecError(f"model {name} v{version} has no spec recorded in its card")
    return ModelSpec.model_validate({**recorded, **({"seed": seed} if seed is not None else {})})


@task(name="train-candidate", cache_policy=NONE)
def train_candidate_task(
    dataset: str, model_name: str, spec: str, run_id: str,
    seed: int | None = None, contract_path: str | None = None,
    window_days: int | None = None, window_batches: int | None = None,
) -> dict[str, Any]:
    """Train ``spec`` on the ledger's training set of ``dataset`` (optionally the last
    ``window_days`` days / ``window_batches`` batches), export ONNX, stage the candidate.

    Returns the candidate record (metrics, lineage, staged keys). Publishes a metrics table.
    """
    logger = get_run_logger()
    contract = dataset_contract(dataset, contract_path)
    model_spec = resolve_spec(spec, seed=seed)
    candidate = train_candidate(
        open_store(), dataset=dataset, contract=contract, spec=model_spec,
        model_name=model_name, run_id=run_id, window_days=window_days,
        window_batches=window_batches,
    )
    data = candidate.data
    logger.info(
        "trained %s (%s) on %d rows (%s split, %d holdout) in %.2fs, exported in %.2fs; %s",
        model_name, model_spec.kind, data["rows"], data["split"], data["holdout_rows"],
        candidate.fit_seconds, candidate.export_seconds, candidate.metrics,
    )
    create_markdown_artifact(
        markdown=(
            f"# Candidate {model_name} ({model_spec.name}, {model_spec.kind})\n\n"
            f"{data['rows']} rows of `{dataset}` ({data['train_rows']} train, "
            f"{data['holdout_rows']} holdout, {data['split']} split), data sha256 "
            f"`{data['sha256'][:16]}...`, fit {candidate.fit_seconds:.2f}s, "
            f"export {candidate.export_seconds:.2f}s.\n\n"
            + metrics_table(candidate.metrics, candidate.primary_metric)
            + "\n\n## Training batches\n\n| landed as | batch version | data date | rows |\n"
            "|---|---|---|---|\n"
            + "".join(f"| `{v['source_key']}` | `{v['version']}` | {v['data_date']} | {v['rows']:,} |\n"
                      for v in data["batch_versions"])
            + "\nStaged: " + ", ".join(f"`{k}`" for k in candidate.staged.values())
        ),
        key=artifact_key("candidate", model_name),
        description=f"Holdout metrics of the {model_name} candidate",
    )
    return candidate.to_dict()


@task(name="check-onnx-parity", cache_policy=NONE)
def check_parity_task(
    candidate: dict[str, Any], contract_path: str | None = None, tolerance: float | None = None,
) -> dict[str, Any]:
    """The parity gate: ONNX vs native scores on the holdout, through onnx_io.

    Returns the parity result; raises ParityError (the flow fails, nothing is registered).
    """
    record = Candidate.from_dict(candidate)
    contract = dataset_contract(record.dataset, contract_path)
    result = check_candidate_parity(open_store(), record, contract, tolerance=tolerance)
    get_run_logger().info(
        "parity passed: max abs diff %.3e, gate diff %.3e <= %.1e on %d rows",
        result.max_abs_diff, result.gate_diff, result.tolerance, result.rows,
    )
    return result.to_dict()


@task(name="record-training-set", cache_policy=NONE, retries=2, retry_delay_seconds=[2, 10])
def record_training_set(candidate: dict[str, Any], model_version: int) -> int:
    """Record in the ledger which batch versions trained ``model_version`` (``trained``
    events; idempotent). Returns their count."""
    events = [ledger.make_event("trained", item["version"],
                                identity=(candidate["model_name"], model_version),
                                model_name=candidate["model_name"], model_version=model_version)
              for item in candidate["data"].get("batch_versions", [])]
    ledger.record(open_store(), candidate["dataset"], events)
    return len(events)
