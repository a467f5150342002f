"""The kit's core claim, asserted: after a concept shift (the label's dependence on the inputs
changes while the inputs do not), monitoring sees the realized quality drop on delayed labels
(no feature drift) and asks for a retrain; the retrain, trained on the data that arrived since,
is promoted by the gate on rows the champion never saw, and beats the old champion on fresh
post-shift labels by at least 0.10 ROC AUC. Library level (no Prefect); the flows' wiring of the
same steps is in ``test_monitor_flow.py``."""

from __future__ import annotations

import pandas as pd

from mlops_onprem import keys, registry
from mlops_onprem.contracts import Task
from mlops_onprem.monitoring import monitor
from mlops_onprem.registry import promote_if_better
from mlops_onprem.store.parquet import put_dataframe
from mlops_onprem.synthetic import SyntheticSpec, generate_batch, make_contract
from tests.fixtures.monitoring import write_scoring_run
from tests.fixtures.training import CONCEPT_SHIFT, gate_landed, train_and_register

SPEC = SyntheticSpec(dataset="demo")
SHIFT = CONCEPT_SHIFT
WINDOW_BATCHES = 2  # the champion trains on the newest two batches; so does its retrain
RECOVERY = 0.10  # ROC AUC the retrain must win by on post-shift labels


def _land(store, name: str, n: int, seed: int, start_row: int, concept: float) -> None:
    frame = generate_batch(SPEC, n, seed=seed, start_row=start_row, concept_shift=concept,
                           start_time=pd.Timestamp("2026-01-01") + pd.Timedelta(hours=seed))
    put_dataframe(store, keys.incoming_key("demo", name), frame)


def test_a_quality_drop_after_a_concept_shift_retrains_and_the_retrain_recovers(local_store):
    store = local_store
    contract = make_contract(SPEC)
    for i in range(2):
        _land(store, f"pre-{i}", 1500, seed=i, start_row=i * 10_000, concept=0.0)
    gate_landed(store, contract)
    champion = train_and_register(store, contract, "run-champion", WINDOW_BATCHES)
    assert promote_if_better(store, "demo", champion.version).promoted

    # the world changes: new labelled training batches, a scored batch whose labels arrive late
    for i in range(2):
        _land(store, f"post-{i}", 1500, seed=10 + i, start_row=100_000 + i * 10_000, concept=SHIFT)
    gate_landed(store, contract)
    scored = generate_batch(SPEC, 1500, seed=20, start_row=200_000, concept_shift=SHIFT)
    write_scoring_run(store, contract, champion, "run-post", scored)

    report = monitor(store, "demo", "demo", window_batches=1)
    assert "quality_drop" in report.decision.rules_fired and report.decision.retrain, \
        report.decision.reasons
    assert report.drift.drifted_features == []  # the inputs did not move

    retrain = train_and_register(store, contract, "run-retrain", WINDOW_BATCHES)
    decision = promote_if_better(store, "demo", retrain.version)
    assert decision.promoted, decision.reason
    assert decision.excluded_rows == 0  # its holdout is post-shift rows the champion never saw

    fresh = generate_batch(SPEC, 3000, seed=30, start_row=300_000, concept_shift=SHIFT)
    old = registry.evaluate_on(store, champion, fresh, contract, "roc_auc")
    new = registry.evaluate_on(store, registry.resolve(store, "demo"), fresh, contract, "roc_auc")
    assert new >= old + RECOVERY, (old, new)
    assert Task(contract.label.task) == Task.BINARY
