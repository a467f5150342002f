"""Flow ``train-model``: train a candidate, gate it on ONNX parity, register it, and promote
it if it beats the champion.

Pipeline::

    train-candidate (the ledger's training set) -> check-onnx-parity -> register-model
        -> record-training-set (``trained`` ledger events) -> promote-if-better

The candidate is staged in the store (``models/<name>/staging/<run>/``); tasks pass its
small record along. Monitoring calls ``train_model(...)`` directly to retrain on drift.

Started by the drift automation (``retrain_claim``: the claim a monitoring run took and sent
in ``mlops.drift.detected``), it first adopts that claim (at most one run per claim: a
duplicate event trains nothing) and afterwards records the outcome on it and alerts, as the
monitoring run does for an in-flow retrain.

The whole body holds one slot of the Prefect global concurrency limit for training
(``tasks/training_slot.py``), so a deployment run, ``python -m flows.train`` and the subflows of
``run-pipeline`` and ``monitor-model`` never train at the same time beyond that limit.
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from tasks.monitoring import adopt_retrain_slot, finish_retrain_slot, send_retrain_alert
from tasks.registry import promote_model_task, register_model_task
from tasks.run_labels import mark_run, run_name
from tasks.training import check_parity_task, record_training_set, train_candidate_task
from tasks.training_slot import training_slot


@flow(name="train-model", flow_run_name=run_name(lambda p: (
    f"train {p.get('model_name', 'demo')} {p.get('spec', 'xgboost')}")))
def train_model(
    dataset: str = "demo",
    model_name: str = "demo",
    spec: str = "xgboost",
    seed: int | None = None,
    promotion_margin: float = 0.0,
    contract_path: str | None = None,
    window_days: int | None = None,
    window_batches: int | None = None,
    retrain_claim: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``spec`` (a name in ``model_specs/``, a YAML path, or ``card:<model>@<version>``:
    the spec recorded in that version's card) on ``dataset``'s training set:
    the current, validated training batch versions the ledger holds (all by default; the last
    ``window_days`` days of data or the newest ``window_batches`` when given). The card and the
    ledger record exactly which batch versions trained the model.

    All of it runs holding one slot of the global training concurrency limit
    (``MLOPS_TRAINING_CONCURRENCY_LIMIT_NAME``): it first waits for a free slot.

    Returns ``{model_name, version, promoted, decision, metrics, card_key, training_slot}``
    (``training_slot``: ``{name, limit, waited_seconds}``); with a ``retrain_claim`` another
    run already answers: ``{model_name, version: None, promoted: False, skipped: <reason>}``
    (nothing trained).
    Raises TrainingDataError (no validated data), ParityError (ONNX differs from native:
    nothing registered), PromotionConflictError (a concurrent promotion won),
    TrainingSlotTimeoutError (no free training slot in ``MLOPS_TRAINING_SLOT_TIMEOUT_MINUTES``:
    nothing trained or registered).
    """
    mark_run(tags=[f"dataset:{dataset}", f"model:{model_name}"])
    run_id = flow_run.get_id() or uuid.uuid4().hex
    if retrain_claim is None:
        return _train(dataset, model_name, spec, run_id, seed, promotion_margin, contract_path,
                      window_days, window_batches)
    adopted = adopt_retrain_slot(retrain_claim, run_id)
    if not adopted["granted"]:
        mark_run(suffix=" - skipped", tags=["retrain-skipped"])
        return {"model_name": model_name, "version": None, "promoted": False,
                "skipped": adopted["reason"]}
    try:
        outcome = _train(dataset, model_name, spec, run_id, seed, promotion_margin,
                         contract_path, window_days, window_batches)
    except Exception as exc:
        failure = {"error": f"{type(exc).__name__}: {exc}", "flow_run_id": run_id}
        try:
            finish_retrain_slot(adopted, failure)
            send_retrain_alert(model_name, failure)
        except Exception as bookkeeping:  # noqa: BLE001 - never hide the training error
            get_run_logger().error("could not record the failed retrain: %s", bookkeeping)
        raise
    outcome = {**outcome, "flow_run_id": run_id}
    finish_retrain_slot(adopted, outcome)
    send_retrain_alert(model_name, outcome)
    return outcome


def _train(dataset: str, model_name: str, spec: str, run_id: str, seed: int | None,
           promotion_margin: float, contract_path: str | None, window_days: int | None,
           window_batches: int | None) -> dict[str, Any]:
    with training_slot(model_name) as slot:
        candidate = train_candidate_task(
            dataset, model_name, spec, run_id, seed=seed, contract_path=contract_path,
            window_days=window_days, window_batches=window_batches,
        )
        parity = check_parity_task(candidate, contract_path=contract_path)
        invocation = {"spec": spec, "contract_path": contract_path,
                      "promotion_margin": promotion_margin, "window_days": window_days,
                      "window_batches": window_batches}
        registered = register_model_task(
            candidate, parity, flow_run_id=flow_run.get_id(), contract_path=contract_path,
            invocation=invocation,
        )
        record_training_set(candidate, registered["version"])
        decision = promote_model_task(model_name, registered["version"], margin=promotion_margin)
    return {
        "model_name": model_name,
        "version": registered["version"],
        "promoted": decision["promoted"],
        "decision": decision,
        "metrics": registered["metrics"],
        "card_key": registered["card_key"],
        "training_slot": slot.record(),
    }


if __name__ == "__main__":  # the same options as `mlops train` (mlops_onprem/cli/)
    import sys

    from mlops_onprem.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
