"""Flow ``monitor-model``: drift and quality of the batches the champion scored in a window
(from the batch ledger: each batch once), and the closed loop back to training.

Pipeline::

    compute-drift-report -> judge-challenger (a shadow challenger, once enough delayed labels
    pair up: promoted or retired) -> (drift) emit-drift-event -> send-drift-alert
        -> check-new-training-data (no labelled batch version the champion did not train on:
           no retrain, the reason recorded)
        -> claim-retrain (debounced: one per cooldown, none while one runs, one per drift episode)
        -> train-model (deployment run or embedded subflow) -> finish-retrain
        -> send-retrain-alert
    -> publish-monitoring-trend (always: this run's row of the keyed trend artifact)

``retrain_mode="event"`` (the Prefect-native alternative): the run makes the same checks and
takes the same claim, then emits ``mlops.drift.detected`` labelled ``mlops.retrain: requested``
with the claim and the training parameters; the deployment trigger of ``train-model/onprem``
(prefect.yaml) starts the training, which adopts the claim, trains and finishes it. The
monitoring run does not wait for it. In the default ``"in-flow"`` mode the event is labelled
``in-flow`` and the trigger ignores it: one drift never trains twice.

The retrained model still has to pass the promotion gate: the training flow decides.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.utilities.callables import get_parameter_defaults

from flows.train import train_model
from mlops_onprem.monitoring import MonitoringPolicy
from tasks.deployments import run_child_deployment
from tasks.monitoring import (
    RETRAIN_IN_FLOW,
    RETRAIN_NONE,
    RETRAIN_REQUESTED,
    check_new_training_data,
    claim_retrain_slot,
    compute_drift_report,
    emit_drift_event,
    finish_retrain_slot,
    judge_challenger_task,
    publish_monitoring_trend,
    read_retrain_outcome,
    retrain_parameters,
    send_drift_alert,
    send_retrain_alert,
)
from tasks.run_labels import mark_run, run_name


@flow(name="monitor-model", flow_run_name=run_name(lambda p: (
    f"monitor {p.get('model_name', 'demo')} {p.get('dataset', 'demo')}")))
def monitor_model(
    model_name: str = "demo",
    dataset: str = "demo",
    window_days: int | None = 7,
    window_batches: int | None = None,
    as_of: str | None = None,
    retrain: bool = True,
    training_deployment: str | None = None,
    policy: MonitoringPolicy | None = None,
    retrain_mode: Literal["in-flow", "event"] = "in-flow",
) -> dict[str, Any]:
    """Monitor ``model_name``'s champion over the batches it scored in the window; on drift
    emit an event, alert and (with ``retrain``) retrain.

    The window holds the batch versions whose data date lies within ``window_days`` days up
    to ``as_of`` (ISO date; default: the newest data date the champion scored) and, with
    ``window_batches``, at most that many newest ones; each version once, whatever the number
    of scoring runs. Labels join by row key; labels that arrive late count in every later
    window holding their rows.

    ``training_deployment`` ("train-model/<deployment>") runs training as a deployment; without
    it the training flow runs embedded as a subflow. ``policy`` (a
    :class:`~mlops_onprem.monitoring.MonitoringPolicy`: drifted share, quality drop and the
    per-method drift thresholds) overrides the documented defaults; in a deployment it is a
    JSON parameter (the Prefect UI shows it as a form). ``retrain_mode`` "event" hands the
    claimed retrain to the automation on ``mlops.drift.detected`` instead (module docstring;
    ``training_deployment`` is then unused). Returns the monitoring record plus
    ``event_id``, ``alert`` and ``retrain``. Raises the child's failure (ChildRunFailedError
    with its message) or the embedded training error, after recording it on the retrain
    pointer and alerting.
    """
    mark_run(tags=[f"dataset:{dataset}", f"model:{model_name}"])
    record = compute_drift_report(model_name, dataset, window_days=window_days,
                                  window_batches=window_batches, as_of=as_of, policy=policy)
    outcome = {"drift": " - drift", "insufficient_data": " - insufficient data"}
    mark_run(suffix=f"@v{record['model_version']}" + outcome.get(record["decision"], ""),
             tags=[record["decision"]])
    challenger = judge_challenger_task(model_name, dataset, policy)
    result: dict[str, Any] = {**record, "event_id": None, "alert": None, "challenger": challenger,
                              "retrain": {"status": "not_needed"}}
    try:
        _respond_to_drift(result, record, challenger, model_name, dataset, retrain,
                          training_deployment, retrain_mode)
    finally:  # the trend records what this run did, a failed retrain included
        publish_monitoring_trend(model_name, record["run_id"], result["retrain"], challenger,
                                 record.get("markdown_key"))
    return result


def _respond_to_drift(result: dict[str, Any], record: dict[str, Any],
                      challenger: dict[str, Any] | None, model_name: str, dataset: str,
                      retrain: bool, training_deployment: str | None,
                      retrain_mode: str = "in-flow") -> None:
    """On drift: event, alert and (when asked and useful) one retrain; fills ``result``."""
    if not record["drift"]:
        return
    if retrain_mode == "event":
        _request_retrain(result, record, challenger, model_name, dataset, retrain)
        return
    result["event_id"] = emit_drift_event(record, RETRAIN_IN_FLOW)
    result["alert"] = send_drift_alert(record)
    gate = _retrain_gate(result, record, challenger, model_name, dataset, retrain)
    if gate is None:
        return
    claim, training = gate
    try:
        if training_deployment:
            child = run_child_deployment(training_deployment, training,
                                         idempotency_key=claim["idempotency_key"])
            outcome = {**read_retrain_outcome(model_name, record["model_version"],
                                              child["flow_run_id"]),
                       "flow_run_id": child["flow_run_id"]}
        else:
            outcome = train_model(**training)
    except Exception as exc:
        failure = {"error": f"{type(exc).__name__}: {exc}"}
        result["retrain"] = {"status": "failed", **failure}
        try:
            finish_retrain_slot(claim, failure)
            send_retrain_alert(model_name, failure)
        except Exception as bookkeeping:  # noqa: BLE001 - never hide the training error
            get_run_logger().error("could not record the failed retrain: %s", bookkeeping)
        raise
    finish_retrain_slot(claim, outcome)
    send_retrain_alert(model_name, outcome)
    result["retrain"] = {"status": "triggered", "mode": "deployment" if training_deployment
                         else "embedded", "idempotency_key": claim["idempotency_key"], **outcome}


def _request_retrain(result: dict[str, Any], record: dict[str, Any],
                     challenger: dict[str, Any] | None, model_name: str, dataset: str,
                     retrain: bool) -> None:
    """Event mode: the same checks and claim, then the drift event carries a granted claim to
    the automation (label ``requested``); without one it is labelled ``none``. The event and
    the alert go out whatever the checks did (a failing check still raises afterwards)."""
    gate = None
    try:
        gate = _retrain_gate(result, record, challenger, model_name, dataset, retrain)
    finally:
        request = None
        if gate is not None:
            claim, training = gate
            # every train-model parameter the trigger maps, so none renders as undefined
            defaults = {k: v for k, v in get_parameter_defaults(train_model.fn).items()
                        if k != "retrain_claim"}
            request = {"claim": claim, "parameters": {**defaults, **training}}
        result["event_id"] = emit_drift_event(
            record, RETRAIN_REQUESTED if request else RETRAIN_NONE, request)
        result["alert"] = send_drift_alert(record)
    if gate is not None:
        result["retrain"] = {"status": "requested", "mode": "event",
                             "reason": "claimed; the automation on mlops.drift.detected starts "
                                       "the training run",
                             "idempotency_key": gate[0]["idempotency_key"],
                             "claim_id": gate[0]["claim_id"], "event_id": result["event_id"]}


def _retrain_gate(result: dict[str, Any], record: dict[str, Any],
                  challenger: dict[str, Any] | None, model_name: str,
                  dataset: str, retrain: bool) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Whether this drift may retrain now: ``(granted claim, training parameters)``, or None
    with the reason in ``result["retrain"]``."""
    if not record["retrain"]:
        result["retrain"] = {"status": "not_requested",
                             "reason": "no alarm in the policy's retrain_on"}
        return None
    if not retrain:
        result["retrain"] = {"status": "disabled"}
        return None
    if challenger and challenger["status"] == "promoted":
        result["retrain"] = {"status": "skipped", "reason": (
            f"shadow challenger v{challenger['challenger_version']} was promoted in this run; "
            "the next window monitors it")}
        return None
    # retrain exactly as the champion was made: the spec recorded in its card (an edited YAML
    # changes nothing), its contract path, margin and window
    training = retrain_parameters(model_name, record["model_version"], dataset)
    fresh = check_new_training_data(model_name, dataset, record["model_version"])
    if fresh["new_versions"] == 0:
        result["retrain"] = {"status": "skipped", "reason": fresh["reason"]}
        return None
    claim = claim_retrain_slot(record)
    if not claim["granted"]:
        result["retrain"] = {"status": "skipped", "reason": claim["reason"],
                             "idempotency_key": claim["idempotency_key"]}
        return None
    return claim, training


if __name__ == "__main__":  # the same options as `mlops monitor` (mlops_onprem/cli/)
    import sys

    from mlops_onprem.cli import main

    sys.exit(main(["monitor", *sys.argv[1:]]))
