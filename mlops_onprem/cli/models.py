"""``mlops models list|show|history|diff|promote|rollback|challenger``: the model registry from
the command line.

Every champion move (promote, rollback) is recorded in the registry's history (the source of
truth) and, when a Prefect API is configured (``PREFECT_API_URL``), also emitted as a
``mlops.model.promoted`` event so automations see moves made by hand too."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from mlops_onprem import challenger, registry
from mlops_onprem.cli.output import cell, print_json, print_table
from mlops_onprem.store import open_store
from mlops_onprem.store.base import ObjectStore

Name = Annotated[str, typer.Argument(help="model name")]


def register(app: typer.Typer) -> None:
    from mlops_onprem.cli import add_command, new_app

    group = new_app("List, inspect, compare, promote and roll back models; shadow challengers.")
    for name, command in (("list", run_list), ("show", run_show), ("history", run_history),
                          ("diff", run_diff), ("promote", run_promote), ("rollback", run_rollback)):
        add_command(group, name, command)
    shadow = new_app("A shadow challenger: scored beside the champion, judged on live labels.")
    add_command(shadow, "set", run_challenger_set)
    add_command(shadow, "clear", run_challenger_clear)
    add_command(shadow, "status", run_challenger_status)
    group.add_typer(shadow, name="challenger")
    app.add_typer(group, name="models")


def _primary(card: dict) -> str:
    name = card.get("primary_metric", {}).get("name")
    value = card.get("metrics", {}).get(name)
    return f"{name}={value:.6g}" if isinstance(value, float) else f"{name}=n/a"


def run_list(
    name: Name,
    json_output: Annotated[bool, typer.Option(
        "--json", help="every version's card, with champion/challenger marks, as JSON")] = False,
) -> int:
    """Versions of a model, champion (*) and shadow challenger (~) marked; exit 1 when it has none."""
    store = open_store()
    versions = registry.list_versions(store, name)
    champion = registry.champion_version(store, name) if versions else None
    shadowing = challenger.challenger_version(store, name) if versions else None
    if json_output:
        print_json([{"version": mv.version, "champion": mv.version == champion,
                     "challenger": mv.version == shadowing, "card": mv.card} for mv in versions])
        return 0 if versions else 1
    if not versions:
        print(f"model {name!r} has no versions in {store.location}")
        return 1
    print(f"{'':2}{'version':>7}  {'created':<27} {'kind':<14} {'primary metric':<24} contract")
    for mv in versions:
        card = mv.card
        mark = "* " if mv.version == champion else "~ " if mv.version == shadowing else "  "
        contract = card.get("contract", {})
        print(f"{mark}{mv.version:>7}  {card.get('created_at', ''):<27} "
              f"{card.get('spec', {}).get('kind', ''):<14} {_primary(card):<24} "
              f"{contract.get('dataset')} v{contract.get('version')}")
    legend = ["* = champion" if champion is not None else "no champion yet"]
    legend += ["~ = shadow challenger"] if shadowing is not None else []
    print("\n" + "; ".join(legend))
    return 0


def _require_model(store: ObjectStore, name: str) -> None:
    """Raise ModelNotFoundError (exit 2) naming the model and store when it has no version."""
    if not registry.list_versions(store, name):
        raise registry.ModelNotFoundError(f"model {name!r} has no versions in {store.location}")


def _history_row(event: dict[str, Any]) -> list[Any]:
    candidate, champion = event.get("candidate_version"), event.get("champion_version")
    versions = f"v{candidate}" + (f" vs v{champion}" if champion not in (None, candidate) else "")
    metric = event.get("metric") or ""
    scores = [event.get("candidate_score"), event.get("champion_score")]
    if metric and scores[0] is not None:
        metric += f" {cell(scores[0], 4)}" + (f" vs {cell(scores[1], 4)}" if scores[1] is not None
                                              else "")
    reason = str(event.get("reason") or "")
    return [str(event.get("decided_at", ""))[:19].replace("T", " "), event.get("action", ""),
            versions, metric, reason if len(reason) <= 100 else reason[:97] + "..."]


def run_history(
    name: Name,
    json_output: Annotated[bool, typer.Option("--json", help="every history event in full, as JSON")] = False,
) -> int:
    """The registry's decisions on a model: promotions, rejections, rollbacks, challengers
    (oldest first)."""
    store = open_store()
    events = registry.history(store, name)
    if not events:
        _require_model(store, name)
    if json_output:
        print_json(events)
        return 0
    if not events:
        print(f"model {name!r} has no registry decisions yet")
        return 0
    print_table(["time (UTC)", "action", "versions", "metric", "reason"],
                [_history_row(e) for e in events])
    return 0


_OWN_PARAMS = ("params", "classifier_params", "regressor_params")  # the card's params say what ran


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        return {k: v for key, item in sorted(value.items())
                for k, v in _flat(f"{prefix}.{key}" if prefix else str(key), item).items()}
    return {prefix: value}


def _threshold(card: dict[str, Any]) -> str | None:
    threshold = card.get("decision_threshold")
    if not threshold:
        return None
    return f"{threshold.get('value'):.4g} ({threshold.get('rule')})"


def compare_cards(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two model cards side by side: every metric (with B - A), the spec and parameter fields
    that differ, the training data, the contract and the decision threshold."""
    metrics = [{"metric": name, "a": a.get("metrics", {}).get(name),
                "b": b.get("metrics", {}).get(name)}
               for name in sorted(set(a.get("metrics", {})) | set(b.get("metrics", {})))]
    for row in metrics:
        both = isinstance(row["a"], int | float) and isinstance(row["b"], int | float)
        row["delta"] = row["b"] - row["a"] if both else None
    spec_a = {**_flat("spec", {k: v for k, v in a.get("spec", {}).items() if k not in _OWN_PARAMS}),
              **_flat("params", a.get("params", {}))}
    spec_b = {**_flat("spec", {k: v for k, v in b.get("spec", {}).items() if k not in _OWN_PARAMS}),
              **_flat("params", b.get("params", {}))}
    spec = [{"field": field, "a": spec_a.get(field), "b": spec_b.get(field)}
            for field in sorted(set(spec_a) | set(spec_b))
            if spec_a.get(field) != spec_b.get(field) and field not in ("spec.name", "spec.kind")]
    data_a, data_b = a.get("data", {}), b.get("data", {})
    batches_a = [v["version"] for v in data_a.get("batch_versions", [])]
    batches_b = [v["version"] for v in data_b.get("batch_versions", [])]
    contract_a, contract_b = a.get("contract", {}), b.get("contract", {})
    return {
        "name": a.get("name"), "a": a.get("version"), "b": b.get("version"),
        "primary_metric": {"a": a.get("primary_metric", {}).get("name"),
                           "b": b.get("primary_metric", {}).get("name")},
        "metrics": metrics,
        "spec": {"a": {"name": a.get("spec", {}).get("name"), "kind": a.get("spec", {}).get("kind")},
                 "b": {"name": b.get("spec", {}).get("name"), "kind": b.get("spec", {}).get("kind")},
                 "differences": spec},
        "data": {side: {k: d.get(k) for k in ("rows", "train_rows", "holdout_rows", "split",
                                              "window", "sha256")}
                 for side, d in (("a", data_a), ("b", data_b))},
        "batch_versions": {"a": batches_a, "b": batches_b,
                           "common": [v for v in batches_a if v in batches_b],
                           "only_a": [v for v in batches_a if v not in batches_b],
                           "only_b": [v for v in batches_b if v not in batches_a]},
        "same_training_data": data_a.get("sha256") == data_b.get("sha256"),
        "contract": {"a": f"{contract_a.get('dataset')} {contract_a.get('version')}",
                     "b": f"{contract_b.get('dataset')} {contract_b.get('version')}"},
        "decision_threshold": {"a": a.get("decision_threshold"), "b": b.get("decision_threshold")},
    }


def _value(value: Any) -> str:
    return json.dumps(value, default=str) if isinstance(value, list | dict) else cell(value)


def run_diff(
    name: Name,
    a: Annotated[str, typer.Argument(help="version number or alias (A)")],
    b: Annotated[str, typer.Argument(help="version number or alias (B)")],
    json_output: Annotated[bool, typer.Option("--json", help="the comparison as JSON")] = False,
) -> int:
    """Two versions' cards side by side: metrics, spec, data, contract, threshold."""
    store = open_store()
    mv_a, mv_b = registry.resolve(store, name, a), registry.resolve(store, name, b)
    diff = compare_cards(mv_a.card, mv_b.card)
    if json_output:
        print_json(diff)
        return 0
    va, vb = f"v{mv_a.version}", f"v{mv_b.version}"
    primary = diff["primary_metric"]["b"]
    rows: list[list[Any]] = [
        [f"metric {m['metric']}" + (" (primary)" if m["metric"] == primary else ""),
         m["a"], m["b"], None if m["delta"] is None else f"{m['delta']:+.4g}"]
        for m in diff["metrics"]]
    rows += [["spec", f"{diff['spec']['a']['name']} ({diff['spec']['a']['kind']})",
              f"{diff['spec']['b']['name']} ({diff['spec']['b']['kind']})", None]]
    rows += [[d["field"], _value(d["a"]), _value(d["b"]), None] for d in diff["spec"]["differences"]]
    data_a, data_b = diff["data"]["a"], diff["data"]["b"]
    rows += [[f"data {k.replace('_', ' ')}", data_a.get(k), data_b.get(k), None]
             for k in ("rows", "train_rows", "holdout_rows", "split")]
    batches = diff["batch_versions"]
    rows += [["batch versions", len(batches["a"]), len(batches["b"]),
              f"{len(batches['common'])} common"]]
    rows += [["contract", diff["contract"]["a"], diff["contract"]["b"], None],
             ["decision threshold", _threshold(mv_a.card), _threshold(mv_b.card), None]]
    print(f"{name}: {va} (A) vs {vb} (B)")
    print_table(["", f"A {va}", f"B {vb}", "B - A"], rows)
    for side, label in (("only_a", va), ("only_b", vb)):
        if batches[side]:
            print(f"only in {label}: " + ", ".join(batches[side]))
    if not diff["same_training_data"]:
        print("note: each version's metrics are on its own holdout; they are not the same rows "
              f"(mlops models promote {name} <version> compares both on the same rows)")
    return 0


def run_show(
    name: Name,
    ref: Annotated[str, typer.Argument(help="version number or alias")] = "champion",
    json_output: Annotated[bool, typer.Option("--json", help="print card.json instead of a summary")]
    = False,
) -> int:
    """The model card of a version or alias, with the registry's decisions on it."""
    store = open_store()
    mv = registry.resolve(store, name, ref)
    if json_output:
        print(json.dumps(mv.card, indent=2, sort_keys=True, default=str))
    else:
        from mlops_onprem.model_card import render_card_markdown

        print(render_card_markdown(mv.card, registry.decisions_about(store, name, mv.version)))
    return 0


def _print_decision(decision: registry.PromotionDecision) -> None:
    print(f"{decision.action}: {decision.reason}")
    if decision.event_key:
        print(f"history: {decision.event_key}")


def _announce(decision: registry.PromotionDecision) -> None:
    """Emit ``mlops.model.promoted`` when a Prefect API is configured (never starts a server)."""
    from prefect.settings import get_current_settings

    if not decision.promoted or not get_current_settings().api.url:
        return
    from tasks.registry import emit_promoted

    try:
        emit_promoted(decision.to_dict())
    except Exception as exc:  # noqa: BLE001 - the move is done and in the history
        print(f"note: the mlops.model.promoted event was not sent ({type(exc).__name__})")


def run_promote(
    name: Name,
    version: Annotated[int, typer.Argument(help="the version to promote")],
    margin: Annotated[float, typer.Option(help="required improvement on the primary metric")] = 0.0,
    metric: Annotated[str | None, typer.Option(help="metric to compare (default: primary)")] = None,
    force: Annotated[bool, typer.Option("--force", help="skip the comparison")] = False,
) -> int:
    """Make a version champion if it beats the champion on its holdout (exit 1 when it does not)."""
    try:
        decision = registry.promote_if_better(
            open_store(), name, version, margin=margin, metric=metric,
            force=force,
        )
    except registry.PromotionRejectedError as exc:
        _print_decision(exc.decision)
        return 1
    _print_decision(decision)
    _announce(decision)
    return 0


def run_rollback(
    name: Name,
    to_version: Annotated[int | None, typer.Option(
        "--to", help="version to restore (default: the champion before the current one)")] = None,
) -> int:
    """Point champion back at the previous (or a given) version."""
    decision = registry.rollback(open_store(), name, to_version)
    _print_decision(decision)
    _announce(decision)
    return 0


def run_challenger_set(
    name: Name,
    version: Annotated[int, typer.Argument(help="the version to shadow the champion")],
    reason: Annotated[str, typer.Option(help="why (recorded in the history)")] = "",
) -> int:
    """Deploy a version as the shadow challenger."""
    event = challenger.set_challenger(open_store(), name, version, reason=reason)
    replaced = event.get("replaced_challenger")
    print(f"challenger of {name}: v{version} shadows champion v{event['champion_version']}"
          + (f" (replaces v{replaced})" if replaced is not None else ""))
    print(f"history: {event['event_key']}")
    return 0


def run_challenger_clear(
    name: Name,
    reason: Annotated[str, typer.Option(help="why (recorded in the history)")] = "cleared by operator",
) -> int:
    """Stop shadowing (its shadow predictions stay)."""
    event = challenger.clear_challenger(open_store(), name, reason=reason)
    if event is None:
        print(f"model {name!r} has no challenger")
        return 0
    print(f"challenger v{event['candidate_version']} of {name} cleared")
    print(f"history: {event['event_key']}")
    return 0


def run_challenger_status(
    name: Name,
    dataset: Annotated[str | None, typer.Option(
        help="dataset whose labels to read (default: the champion's contract's)")] = None,
    min_rows: Annotated[int, typer.Option(
        help="labelled rows the monitoring policy requires before deciding")] = challenger.DEFAULT_MIN_ROWS,
    alpha: Annotated[float, typer.Option(
        help="significance level of the comparison")] = challenger.DEFAULT_ALPHA,
    json_output: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
) -> int:
    """Labelled rows so far and both models' metric on them (decides nothing)."""
    store = open_store()
    if dataset is None and registry.champion_version(store, name) is not None:
        dataset = registry.resolve(store, name).card.get("contract", {}).get("dataset")
    report = challenger.judge_challenger(store, name, dataset or name,
                                         min_rows=min_rows, alpha=alpha, decide=False)
    if json_output:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return 0
    if report.status == "none":
        print(f"model {name!r} has no challenger")
        return 0
    print(f"challenger v{report.challenger_version} vs champion v{report.champion_version} "
          f"({report.metric}): {report.status}")
    for who, score in (("challenger", report.challenger_score), ("champion", report.champion_score)):
        print(f"  {who:<10} {'n/a' if score is None else f'{score:.6g}'}")
    print(f"  labelled rows both scored: {report.labelled_rows} of {report.min_rows}; "
          f"{report.shadow_runs} shadow run(s), {report.shadow_rows} rows shadow-scored")
    print(f"  {report.reason}")
    return 0
