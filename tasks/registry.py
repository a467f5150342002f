"""Prefect tasks of the model registry: thin wrappers around :mod:`mlops_onprem.registry`."""

from __future__ import annotations

from functools import partial
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.events import emit_event

from mlops_onprem import keys
from mlops_onprem.challenger import set_challenger
from mlops_onprem.contracts import dataset_contract
from mlops_onprem.model_card import render_card_markdown
from mlops_onprem.number_format import format_number
from mlops_onprem.onnx_export import ParityResult
from mlops_onprem.registry import (
    ModelNotFoundError,
    champion_version,
    decisions_about,
    get_version,
    list_versions,
    load_card_figure,
    promote_if_better,
    register_candidate,
)
from mlops_onprem.store import open_store
from mlops_onprem.training import Candidate
from tasks.run_labels import artifact_key, related_links

PROMOTED_EVENT = "mlops.model.promoted"  # emitted on every champion move by the gate


@task(name="register-model", cache_policy=NONE)
def register_model_task(
    candidate: dict[str, Any], parity: dict[str, Any], flow_run_id: str | None = None,
    contract_path: str | None = None, invocation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Register a staged candidate that passed parity as a new version.

    Returns ``{name, version, onnx_key, card_key, reference_profile_key, metrics}``.
    Publishes the model card as a markdown artifact.
    """
    record = Candidate.from_dict(candidate)
    contract = dataset_contract(record.dataset, contract_path)
    store = open_store()
    mv = register_candidate(
        store, record, contract, ParityResult(**parity), flow_run_id=flow_run_id,
        invocation=invocation,
    )
    card_key = keys.model_card_key(mv.name, mv.version)
    create_markdown_artifact(
        markdown=render_card_markdown(mv.card, figure_png=load_card_figure(store, mv))
        + f"\n\nCard: `{card_key}`\n\n"
        + related_links({"promotion decision": artifact_key("promotion", mv.name)}) + "\n",
        key=artifact_key("model-card", mv.name),
        description=f"Model card of {mv.name} v{mv.version}",
    )
    get_run_logger().info("registered %s v%d (%s)", mv.name, mv.version, mv.onnx_key)
    return {
        "name": mv.name, "version": mv.version, "onnx_key": mv.onnx_key, "card_key": card_key,
        "reference_profile_key": mv.card["reference_profile_key"], "metrics": mv.card["metrics"],
    }


def decision_markdown(decision: dict[str, Any]) -> str:
    """A short markdown report of a promotion decision."""
    fmt = partial(format_number, digits=6)
    return "\n".join([
        f"# Promotion of {decision['model_name']} v{decision['candidate_version']}: "
        f"{decision['action']}",
        "",
        "| | version | " + fmt(decision["metric"]) + " |",
        "|---|---|---|",
        f"| candidate | v{decision['candidate_version']} | {fmt(decision['candidate_score'])} |",
        f"| champion before | {fmt(decision['champion_version'])} | {fmt(decision['champion_score'])} |",
        "",
        f"Margin {decision['margin']}, {decision['eval_rows']} evaluation rows (the same rows "
        "for both models)."
        + (f" Improvement {fmt(decision.get('improvement'))}, paired bootstrap interval "
           f"[{fmt(decision['interval'][0])}, {fmt(decision['interval'][1])}]"
           if decision.get("interval") else "")
        + (f"; significance required at alpha {decision['alpha']}" if decision.get("alpha")
           else "")
        + (f"; floors {decision['floors']}" if decision.get("floors") else ""),
        "",
        f"Reason: {decision['reason']}",
        "",
        f"History event: `{decision['event_key']}`",
    ])


def emit_promoted(decision: dict[str, Any]) -> str | None:
    """Emit ``mlops.model.promoted`` for a champion move (gate, shadow challenger, rollback)."""
    event = emit_event(
        event=PROMOTED_EVENT,
        resource={"prefect.resource.id": f"mlops.model.{decision['model_name']}",
                  "prefect.resource.name": decision["model_name"]},
        payload={k: decision.get(k) for k in (
            "model_name", "action", "candidate_version", "champion_version", "metric",
            "candidate_score", "champion_score", "reason", "event_key")},
    )
    return None if event is None else str(event.id)


@task(name="promote-if-better", cache_policy=NONE)
def promote_model_task(model_name: str, version: int, margin: float = 0.0) -> dict[str, Any]:
    """Run the promotion gate; a kept champion is a normal outcome here (returned, not raised).

    Raises PromotionConflictError when another promotion won the race meanwhile.
    Publishes the decision and the model card again, now with the decision in it.
    """
    store = open_store()
    decision = promote_if_better(
        store, model_name, version, margin=margin, raise_on_reject=False
    ).to_dict()
    create_markdown_artifact(
        markdown=decision_markdown(decision) + "\n\n" + related_links(
            {"model card": artifact_key("model-card", model_name)}) + "\n",
        key=artifact_key("promotion", model_name),
        description=f"Promotion decision for {model_name} v{version}",
    )
    mv = get_version(store, model_name, version)
    create_markdown_artifact(
        markdown=render_card_markdown(mv.card, decisions_about(store, model_name, version),
                                      figure_png=load_card_figure(store, mv))
        + f"\n\nCard: `{keys.model_card_key(model_name, version)}`\n",
        key=artifact_key("model-card", model_name),
        description=f"Model card of {model_name} v{version} with its promotion decision",
    )
    get_run_logger().info("promotion of %s v%d: %s (%s)", model_name, version,
                          decision["action"], decision["reason"])
    if decision["promoted"]:
        emit_promoted(decision)
    return decision


@task(name="set-shadow-challenger", cache_policy=NONE)
def set_shadow_challenger(model_name: str, version: int | None = None, reason: str = "") -> dict[str, Any]:
    """Deploy ``version`` (default: the newest version that is not the champion) as the shadow
    challenger; returns the history event. Raises ChallengerError / ModelNotFoundError."""
    store = open_store()
    if version is None:
        champion = champion_version(store, model_name)
        others = [mv.version for mv in list_versions(store, model_name) if mv.version != champion]
        if not others:
            raise ModelNotFoundError(f"model {model_name!r} has no version besides the champion")
        version = others[-1]
    event = set_challenger(store, model_name, version, reason=reason)
    get_run_logger().info("v%d of %s is now the shadow challenger of champion v%d", version,
                          model_name, event["champion_version"])
    return event
