"""Prefect tasks of monitoring: thin wrappers around :mod:`mlops_onprem.monitoring`,
:mod:`mlops_onprem.alerts` and :mod:`mlops_onprem.retrain_control`.

Tasks pass small records (keys, decisions, counts), never DataFrames.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.events import emit_event

from mlops_onprem import keys, ledger, registry
from mlops_onprem.alerts import AlertResult, drift_alert, retrain_alert, send_alert
from mlops_onprem.challenger import judge_challenger
from mlops_onprem.errors import StoreUnavailableError
from mlops_onprem.monitoring import (
    DECISION_INSUFFICIENT,
    DECISION_NO_DRIFT,
    MonitoringPolicy,
    NoScoringRunsError,
    monitor,
    monitored_events,
    note_outcome,
    read_signal_history,
    record_signals,
    write_report,
)
from mlops_onprem.monitoring.trend import trend_markdown
from mlops_onprem.number_format import format_number
from mlops_onprem.retrain_control import (
    RetrainClaim,
    adopt_retrain,
    claim_retrain,
    close_episode,
    finish_retrain,
)
from mlops_onprem.settings import get_settings
from mlops_onprem.store import open_store
from tasks.registry import emit_promoted
from tasks.run_labels import artifact_key, related_links

DRIFT_EVENT = "mlops.drift.detected"


def _store_unavailable(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only when the store could not be reached (never on a computation error)."""
    try:
        state.result()
    except StoreUnavailableError:
        return True
    except Exception:  # noqa: BLE001 - any other failure is final, not transient
        return False
    return False


@task(
    name="compute-drift-report", cache_policy=NONE, retries=2, retry_delay_seconds=[5, 30],
    retry_condition_fn=_store_unavailable,
)
def compute_drift_report(
    model_name: str, dataset: str, *, window_days: int | None, window_batches: int | None,
    as_of: str | None = None, run_id: str | None = None, policy: MonitoringPolicy | None = None,
) -> dict[str, Any]:
    """Monitor the batch versions the champion scored in the window (labels as the ledger
    registered them: ``ingest-batch`` registers new label objects), store the report, record
    which versions it counted, publish it. Lists nothing: its cost does not grow with history.

    ``policy`` sets the decision and per-method thresholds (documented defaults when None).

    Returns ``{model_name, model_version, run_id, drift, decision, decision_reason,
    rules_fired, reasons, summary, report_key, markdown_key, png_key, rows, drifted_features,
    drifted_share, prediction_drift, quality}``. No scoring run in the window is recorded as
    ``insufficient_data`` (nothing to judge is not an error for a scheduled monitor).
    """
    logger = get_run_logger()
    store = open_store()
    try:
        report = monitor(store, model_name, dataset, window_days=window_days,
                         window_batches=window_batches, as_of=as_of,
                         policy=policy or MonitoringPolicy(), run_id=run_id)
    except NoScoringRunsError as exc:
        logger.warning("%s", exc)
        return {
            "model_name": model_name, "model_version": registry.champion_version(store, model_name),
            "run_id": run_id, "drift": False, "retrain": False, "signals": [],
            "decision": DECISION_INSUFFICIENT,
            "decision_reason": str(exc), "rules_fired": [], "reasons": [str(exc)],
            "summary": f"{model_name}: no scoring run to monitor", "report_key": None,
            "markdown_key": None, "png_key": None, "rows": 0, "drifted_features": [],
            "drifted_share": 0.0, "prediction_drift": False, "quality": None,
            "window": None, "window_versions": [],
        }
    report_keys, markdown = write_report(store, report)
    ledger.record(store, dataset, monitored_events(report))
    record_signals(store, report)
    if report.decision.status == DECISION_NO_DRIFT and close_episode(
            store, model_name, report_key=report_keys.json):
        logger.info("clean window: the drift episode the last retrain answered is closed")
    links = related_links({"model card": artifact_key("model-card", model_name),
                           "trend": artifact_key("monitoring-trend", model_name),
                           "last promotion": artifact_key("promotion", model_name)})
    create_markdown_artifact(
        markdown=markdown + f"\nReport: `{report_keys.json}`\n\n{links}\n",
        key=artifact_key("drift-report", model_name),
        description=report.summary(),
    )
    logger.info("%s (report %s, drift computed in %.2fs)", report.summary(), report_keys.json,
                report.drift.seconds)
    return {
        "model_name": model_name,
        "model_version": report.model_version,
        "champion_spec": report.champion_spec,
        "run_id": report.run_id,
        "drift": report.decision.drift,
        "retrain": report.decision.retrain,
        "signals": list(report.decision.signals),
        "decision": report.decision.status,
        "decision_reason": "; ".join(report.decision.reasons),
        "rules_fired": list(report.decision.rules_fired),
        "reasons": list(report.decision.reasons),
        "summary": report.summary(),
        "report_key": report_keys.json,
        "markdown_key": report_keys.markdown,
        "png_key": report_keys.png,
        "rows": report.drift.n_current,
        "drifted_features": report.drift.drifted_features,
        "drifted_share": report.drift.drifted_share,
        "prediction_drift": report.drift.prediction_drift,
        "quality": report.quality.to_dict() if report.quality else None,
        "window": {k: report.window.get(k) for k in ("run_ids", "data_dates", "feature_rows",
                                                      "window_days", "window_batches", "as_of")},
        "window_versions": [v["version"] for v in report.window.get("versions", [])],
    }


# the ``mlops.retrain`` label of a drift event: only "requested" starts train-model (the
# deployment trigger in prefect.yaml matches it), so in-flow and event retraining never both fire
RETRAIN_REQUESTED, RETRAIN_IN_FLOW, RETRAIN_NONE = "requested", "in-flow", "none"


@task(name="emit-drift-event", cache_policy=NONE)
def emit_drift_event(record: dict[str, Any], retrain: str = RETRAIN_IN_FLOW,
                     request: dict[str, Any] | None = None) -> str | None:
    """Emit ``mlops.drift.detected`` (for Prefect automations) carrying the summary.

    ``retrain`` labels who retrains: ``requested`` (a granted claim travels in the payload as
    ``retrain: {claim, parameters}``, for the automation that starts ``train-model``),
    ``in-flow`` (the monitoring run retrains itself) or ``none``. The resource also carries
    ``mlops.retrain.claim`` (the claim id, or ``none``): the automation fires once per claim.
    """
    claim_id = ((request or {}).get("claim") or {}).get("claim_id")
    payload = {k: record[k] for k in (
        "model_name", "model_version", "run_id", "decision", "rules_fired", "summary",
        "report_key", "drifted_features", "drifted_share", "prediction_drift", "rows")}
    if request is not None:
        payload["retrain"] = request
    event = emit_event(
        event=DRIFT_EVENT,
        resource={
            "prefect.resource.id": f"mlops.model.{record['model_name']}",
            "prefect.resource.name": record["model_name"],
            "mlops.retrain": retrain,
            "mlops.retrain.claim": claim_id or "none",
        },
        payload=payload,
    )
    return str(event.id) if event is not None else None


def report_delivery(result: AlertResult, model_name: str, what: str) -> dict[str, Any]:
    """Log the delivery; a failed one is a WARNING and a ``alert-delivery-<model>`` artifact
    (URLs named by position only: they carry tokens)."""
    logger = get_run_logger()
    if result.ok:
        logger.info("%s alert delivered to %d/%d URL(s)", what, result.delivered, result.attempted)
        return result.to_dict()
    positions = ", ".join(str(p) for p in result.failed_positions)
    logger.warning("%s alert NOT delivered to %d of %d URL(s) (position(s) %s of "
                   "MLOPS_ALERT_URLS); nobody may have been told", what,
                   result.attempted - result.delivered, result.attempted, positions)
    create_markdown_artifact(
        key=artifact_key("alert-delivery", model_name),
        description=f"{what} alert of {model_name}: delivery failed",
        markdown=(f"# {what.capitalize()} alert of {model_name}: delivery FAILED\n\n"
                  f"Delivered to {result.delivered} of {result.attempted} URL(s); failed: "
                  f"position(s) {positions} of `MLOPS_ALERT_URLS` (values are never shown: they "
                  f"carry tokens). Alert title: {result.title}\n"))
    return result.to_dict()


@task(name="send-drift-alert", cache_policy=NONE)
def send_drift_alert(record: dict[str, Any]) -> dict[str, Any]:
    """Alert the configured apprise URLs about a drift decision (counts only in the result)."""
    title, body = drift_alert(
        model_name=record["model_name"], model_version=record["model_version"],
        decision=record["decision"], summary=record["summary"],
        rules_fired=record["rules_fired"], reasons=record["reasons"],
        report_key=record["report_key"] or "n/a",
    )
    result = send_alert(get_settings().alert_urls, title, body, notify_type="warning")
    return report_delivery(result, record["model_name"], "drift")


@task(name="claim-retrain", cache_policy=NONE)
def claim_retrain_slot(record: dict[str, Any]) -> dict[str, Any]:
    """Ask the debounce pointer whether this drift may trigger a retrain (one per cooldown)."""
    claim = claim_retrain(
        open_store(), record["model_name"], champion_version=record["model_version"],
        cooldown_minutes=get_settings().retrain_cooldown_minutes,
        trigger={"monitoring_run_id": record["run_id"], "report_key": record["report_key"],
                 "rules_fired": record["rules_fired"],
                 "drifted_features": record.get("drifted_features") or [],
                 "window_data_dates": (record.get("window") or {}).get("data_dates")},
    )
    get_run_logger().info("retrain claim %s: %s", "granted" if claim.granted else "refused",
                          claim.reason)
    return claim.to_dict()


@task(name="check-new-training-data", cache_policy=NONE, retries=2, retry_delay_seconds=[2, 10])
def check_new_training_data(model_name: str, dataset: str, champion_version: int | None) -> dict[str, Any]:
    """Whether the ledger's training set holds a labelled batch version the champion did not
    train on. Returns ``{"new_versions": n | None, "reason": str}`` (None: the champion's card
    predates the ledger, so nothing can be compared and retraining is allowed)."""
    store = open_store()
    trained: set[str] = set()
    if champion_version is not None:
        card = registry.get_version(store, model_name, champion_version).card
        trained = {v["version"] for v in card.get("data", {}).get("batch_versions") or []}
    if not trained:
        return {"new_versions": None, "reason": "the champion's card lists no batch versions"}
    current = {v.id for v in ledger.training_set(ledger.read_index(store, dataset))}
    new = sorted(current - trained)
    reason = ("" if new else
              f"no new labelled batch version of {dataset!r} since v{champion_version}'s training "
              f"set ({len(trained)} version(s)): a retrain would learn nothing new")
    get_run_logger().info("%d new training batch version(s) since v%s", len(new), champion_version)
    return {"new_versions": len(new), "reason": reason}


@task(name="read-retrain-outcome", cache_policy=NONE)
def read_retrain_outcome(model_name: str, previous_champion: int | None,
                         flow_run_id: str | None = None) -> dict[str, Any]:
    """The training flow's outcome as the registry recorded it (for deployment runs, whose
    return value is not persisted): the version **that run** registered (matched on the flow
    run id in its card, so a concurrent training is never reported as this one), whether it is
    champion, its promotion decision. Without ``flow_run_id``: the newest version."""
    store = open_store()
    versions = registry.list_versions(store, model_name)
    if flow_run_id is not None:
        versions = [mv for mv in versions
                    if (mv.card.get("lineage") or {}).get("flow_run_id") == str(flow_run_id)]
    if not versions:
        return {"model_name": model_name, "version": None, "promoted": False, "decision": None,
                "reason": f"training run {flow_run_id} registered no version"
                if flow_run_id else "no version registered"}
    newest = versions[-1]
    decisions = [e for e in registry.history(store, model_name)
                 if e.get("candidate_version") == newest.version]
    champion = registry.champion_version(store, model_name)
    return {
        "model_name": model_name,
        "version": newest.version if newest.version != previous_champion else None,
        "promoted": champion == newest.version and newest.version != previous_champion,
        "decision": decisions[-1] if decisions else None,
        "metrics": newest.card.get("metrics"),
        "card_key": keys.model_card_key(model_name, newest.version),
    }


def retrain_parameters(model_name: str, champion_version: int | None,
                       dataset: str) -> dict[str, Any]:
    """The training flow's parameters for a retrain of the champion: the spec recorded in its
    card (``card:<model>@<version>``), and the contract path, promotion margin and window it
    was trained with (versions registered before the card recorded them: spec only)."""
    if champion_version is None:
        return {"dataset": dataset, "model_name": model_name, "spec": "xgboost"}
    card = registry.get_version(open_store(), model_name, champion_version).card
    invocation = card.get("invocation") or {}
    parameters = {"dataset": dataset, "model_name": model_name,
                  "spec": f"card:{model_name}@{champion_version}"}
    for key in ("contract_path", "promotion_margin", "window_days", "window_batches"):
        if invocation.get(key) is not None:
            parameters[key] = invocation[key]
    return parameters


@task(name="finish-retrain", cache_policy=NONE)
def finish_retrain_slot(claim: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    """Record the retrain outcome on the debounce pointer and free it."""
    return finish_retrain(open_store(), RetrainClaim(**claim), outcome)


@task(name="adopt-retrain", cache_policy=NONE)
def adopt_retrain_slot(claim: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Bind the claim a drift event carried to this training run (at most one run per claim)."""
    adopted = adopt_retrain(open_store(), RetrainClaim(**claim), run_id)
    get_run_logger().info("retrain claim %s %s: %s", claim.get("claim_id"),
                          "adopted" if adopted.granted else "refused", adopted.reason)
    return adopted.to_dict()


@task(name="send-retrain-alert", cache_policy=NONE)
def send_retrain_alert(model_name: str, outcome: dict[str, Any]) -> dict[str, Any]:
    """Alert the configured apprise URLs about a triggered retrain's outcome."""
    title, body = retrain_alert(model_name=model_name, outcome=outcome)
    failed = "error" in outcome
    notify_type = "failure" if failed else ("success" if outcome.get("promoted") else "info")
    result = send_alert(get_settings().alert_urls, title, body, notify_type=notify_type)
    return report_delivery(result, model_name, "retrain")


def challenger_markdown(report: dict[str, Any]) -> str:
    """The shadow challenger's standing, as the Prefect UI shows it."""
    fmt = partial(format_number, digits=6)
    interval = report.get("interval")
    return "\n".join([
        f"# Shadow challenger of {report['model_name']}: {report['status']}", "",
        f"| | version | {fmt(report['metric'])} on the same labelled rows |", "|---|---|---|",
        f"| challenger | v{fmt(report['challenger_version'])} | {fmt(report['challenger_score'])} |",
        f"| champion | v{fmt(report['champion_version'])} | {fmt(report['champion_score'])} |", "",
        f"{report['labelled_rows']} of {report['min_rows']} labelled rows needed (fixed-sample "
        f"test, decided once; {report['shadow_runs']} shadow run(s), {report['shadow_rows']} rows "
        f"shadow-scored). Alpha {report['alpha']}, margin {report['margin']}"
        + (f", improvement {fmt(report['improvement'])}, paired bootstrap interval "
           f"[{fmt(interval[0])}, {fmt(interval[1])}]" if interval else "") + ".", "",
        f"Reason: {report['reason']}",
    ] + (["", f"History event: `{report['event_key']}`"] if report.get("event_key") else []))


@task(name="judge-challenger", cache_policy=NONE, retries=2, retry_delay_seconds=[5, 30],
      retry_condition_fn=_store_unavailable)
def judge_challenger_task(model_name: str, dataset: str,
                          policy: MonitoringPolicy | None = None) -> dict[str, Any] | None:
    """Judge the shadow challenger on the delayed labels both models' predictions have; promote
    or retire it once enough pair up (:mod:`mlops_onprem.challenger`). None without one."""
    policy = policy or MonitoringPolicy()
    report = judge_challenger(open_store(), model_name, dataset,
                              min_rows=policy.challenger_min_labelled_rows,
                              alpha=policy.challenger_alpha).to_dict()
    if report["status"] == "none":
        return None
    create_markdown_artifact(markdown=challenger_markdown(report),
                             key=artifact_key("challenger", model_name),
                             description=f"Shadow challenger of {model_name}: {report['status']}")
    get_run_logger().info("shadow challenger of %s: %s (%s)", model_name, report["status"],
                          report["reason"])
    if report["status"] == "promoted":
        emit_promoted({**report, "action": "promoted", "candidate_version":
                       report["challenger_version"], "candidate_score": report["challenger_score"]})
    return report


def next_steps_markdown(retrain: dict[str, Any] | None,
                        challenger: dict[str, Any] | None) -> str:
    """What a monitoring run did after its verdict, for the end of its drift report."""
    from prefect.settings import get_current_settings

    lines = ["## What this run did next", ""]
    retrain = retrain or {}
    status = retrain.get("status", "not_needed")
    line = f"- **Retrain:** {status}"
    if status == "triggered":
        line += (f" → v{retrain.get('version')}, "
                 + ("promoted" if retrain.get("promoted") else "kept out by the promotion gate"))
        ui = (get_current_settings().ui_url or "").rstrip("/")
        if retrain.get("flow_run_id"):
            run = retrain["flow_run_id"]
            line += f" ([training run]({ui}/runs/flow-run/{run}))" if ui else f" (run `{run}`)"
    if retrain.get("reason") or retrain.get("error"):
        line += f": {retrain.get('reason') or retrain.get('error')}"
    lines.append(line)
    if challenger:
        lines.append(f"- **Shadow challenger** v{challenger.get('challenger_version')}: "
                     f"{challenger['status']} ({challenger.get('reason', '')})")
    return "\n".join(lines) + "\n"


@task(name="publish-monitoring-trend", cache_policy=NONE)
def publish_monitoring_trend(model_name: str, run_id: str | None,
                             retrain: dict[str, Any] | None = None,
                             challenger: dict[str, Any] | None = None,
                             report_markdown_key: str | None = None) -> str:
    """Record what this monitoring run did next, append it to the run's drift report artifact
    (the retrain it triggered, with a link) and publish the ``monitoring-trend-<model>`` artifact
    (drifted share, top features, realized/estimated/holdout quality over the runs)."""
    store = open_store()
    acted = (retrain or {}).get("status", "not_needed") != "not_needed" or challenger
    if report_markdown_key and acted:
        report = store.get_bytes(report_markdown_key).decode("utf-8")
        create_markdown_artifact(
            markdown=report + "\n" + next_steps_markdown(retrain, challenger) + "\n"
            + related_links({"trend": artifact_key("monitoring-trend", model_name),
                             "model card": artifact_key("model-card", model_name)}) + "\n",
            key=artifact_key("drift-report", model_name),
            description=f"Drift report of {model_name} and what the run did next")
    outcome = {
        "retrain": {k: (retrain or {}).get(k) for k in ("status", "version", "promoted", "flow_run_id")}
        if retrain else None,
        "challenger": {"status": challenger["status"], "version": challenger["challenger_version"]}
        if challenger else None,
    }
    history = (note_outcome(store, model_name, run_id, **outcome) if run_id
               else read_signal_history(store, model_name))
    markdown = trend_markdown(model_name, history) + "\n" + related_links({
        "latest drift report": artifact_key("drift-report", model_name),
        "model card": artifact_key("model-card", model_name)}) + "\n"
    create_markdown_artifact(markdown=markdown, key=artifact_key("monitoring-trend", model_name),
                             description=f"Monitoring trend of {model_name} (last runs)")
    return markdown
