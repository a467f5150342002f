"""Small validated datasets and trained/registered models for the training and registry tests."""

from __future__ import annotations

import pandas as pd

from mlops_onprem import keys
from mlops_onprem.contracts import Contract, Task
from mlops_onprem.model_spec import ModelSpec, load_model_spec
from mlops_onprem.registry import ModelVersion, check_candidate_parity, register_candidate
from mlops_onprem.store.base import ObjectStore
from mlops_onprem.store.parquet import put_dataframe
from mlops_onprem.synthetic import SyntheticSpec, generate_batch, make_contract
from mlops_onprem.training import train_candidate

#: few, shallow trees: the tests check plumbing and parity, not accuracy
SMALL_PARAMS = {
    "xgboost": {"n_estimators": 15, "max_depth": 3, "n_jobs": 1},
    "random_forest": {"n_estimators": 8, "max_depth": 6, "n_jobs": 1},
    "logistic": {},
}


def small_spec(name: str = "logistic", **overrides: object) -> ModelSpec:
    params = SMALL_PARAMS.get(name, {})
    if params and "params" not in overrides:
        overrides["params"] = params
    return load_model_spec(name, **overrides)


def gate_landed(store: ObjectStore, contract: Contract) -> list[str]:
    """Register what landed for ``contract.dataset`` and gate every pending version with the
    library gate (what ``ingest-batch`` does, without Prefect). Returns the validated copies."""
    from mlops_onprem import batch_gate, ledger

    validated = []
    for stage in (ledger.STAGE_TRAINING, ledger.STAGE_SCORING):
        index = ledger.read_index(store, contract.dataset)
        index = ledger.record(store, contract.dataset,
                              batch_gate.discover_landings(store, contract.dataset, stage, index))
        for view in ledger.pending(index, stage):
            verdict, _result, event = batch_gate.gate_version(store, contract, index, view)
            index = ledger.record(store, contract.dataset, [event])
            if not verdict.success:
                raise AssertionError(f"fixture batch rejected: {verdict.message}")
            validated.append(verdict.routed_key)
    return validated


def seed_validated(
    store: ObjectStore, *, task: Task = Task.BINARY, dataset: str = "demo", rows: int = 1200,
    batches: int = 2, seed: int = 0,
) -> Contract:
    """Land ``batches`` synthetic batches for ``dataset`` under incoming/ and pass them through
    the gate (so the ledger holds them as validated); return their contract."""
    spec = SyntheticSpec(dataset=dataset, task=task)
    contract = make_contract(spec)
    per_batch = rows // batches
    for i in range(batches):
        frame = generate_batch(spec, per_batch, seed=seed + i, start_row=i * per_batch,
                               start_time=pd.Timestamp("2026-01-01")
                               + pd.Timedelta(seconds=i * per_batch))
        put_dataframe(store, keys.incoming_key(dataset, f"batch-{i:03d}"), frame)
    gate_landed(store, contract)
    return contract


def register_small(
    store: ObjectStore, contract: Contract, *, spec: ModelSpec | None = None,
    model_name: str = "demo", run_id: str = "run-1",
) -> ModelVersion:
    """Train, parity-check and register a small model; returns the new version."""
    candidate = train_candidate(
        store, dataset=contract.dataset, contract=contract, spec=spec or small_spec(),
        model_name=model_name, run_id=run_id,
    )
    parity = check_candidate_parity(store, candidate, contract)
    return register_candidate(store, candidate, contract, parity, flow_run_id="test-run")
