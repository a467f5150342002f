"""``mlops models list|show|promote|rollback|challenger``: the model registry from the command line.

Every champion move (promote, rollback) is recorded in the registry's history (the source of
truth) and, when a Prefect API is configured (``PREFECT_API_URL``), also emitted as a
``mlops.model.promoted`` event so automations see moves made by hand too."""

from __future__ import annotations

import argparse
import json

from mlops_onprem import challenger, registry
from mlops_onprem.store import open_store


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list, inspect, promote and roll back models")
    commands = parser.add_subparsers(dest="models_command", required=True)

    listing = commands.add_parser("list", help="versions of a model, champion marked")
    listing.add_argument("name", help="model name")
    listing.set_defaults(handler=run_list)

    show = commands.add_parser(
        "show", help="the model card of a version or alias, with the registry's decisions on it")
    show.add_argument("name")
    show.add_argument("ref", nargs="?", default="champion", help="version number or alias")
    show.add_argument("--json", action="store_true", help="print card.json instead of a summary")
    show.set_defaults(handler=run_show)

    promote = commands.add_parser(
        "promote", help="make a version champion if it beats the champion on its holdout"
    )
    promote.add_argument("name")
    promote.add_argument("version", type=int)
    promote.add_argument("--margin", type=float, default=0.0,
                         help="required improvement on the primary metric")
    promote.add_argument("--metric", default=None, help="metric to compare (default: primary)")
    promote.add_argument("--force", action="store_true", help="skip the comparison")
    promote.set_defaults(handler=run_promote)

    back = commands.add_parser("rollback", help="point champion back at the previous (or a given) version")
    back.add_argument("name")
    back.add_argument("--to", type=int, default=None, dest="to_version",
                      help="version to restore (default: the champion before the current one)")
    back.set_defaults(handler=run_rollback)

    shadow = commands.add_parser(
        "challenger", help="a shadow challenger: scored beside the champion, judged on live labels")
    actions = shadow.add_subparsers(dest="challenger_command", required=True)
    set_ = actions.add_parser("set", help="deploy a version as the shadow challenger")
    set_.add_argument("name")
    set_.add_argument("version", type=int)
    set_.add_argument("--reason", default="", help="why (recorded in the history)")
    set_.set_defaults(handler=run_challenger_set)
    clear = actions.add_parser("clear", help="stop shadowing (its shadow predictions stay)")
    clear.add_argument("name")
    clear.add_argument("--reason", default="cleared by operator")
    clear.set_defaults(handler=run_challenger_clear)
    status = actions.add_parser(
        "status", help="labelled rows so far and both models' metric on them (decides nothing)")
    status.add_argument("name")
    status.add_argument("--dataset", default=None,
                        help="dataset whose labels to read (default: the champion's contract's)")
    status.add_argument("--min-rows", type=int, default=challenger.DEFAULT_MIN_ROWS,
                        help="labelled rows the monitoring policy requires before deciding")
    status.add_argument("--alpha", type=float, default=challenger.DEFAULT_ALPHA)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=run_challenger_status)


def _primary(card: dict) -> str:
    name = card.get("primary_metric", {}).get("name")
    value = card.get("metrics", {}).get(name)
    return f"{name}={value:.6g}" if isinstance(value, float) else f"{name}=n/a"


def run_list(args: argparse.Namespace) -> int:
    store = open_store()
    versions = registry.list_versions(store, args.name)
    if not versions:
        print(f"model {args.name!r} has no versions in {store.location}")
        return 1
    champion = registry.champion_version(store, args.name)
    shadowing = challenger.challenger_version(store, args.name)
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


def run_show(args: argparse.Namespace) -> int:
    store = open_store()
    mv = registry.resolve(store, args.name, args.ref)
    if args.json:
        print(json.dumps(mv.card, indent=2, sort_keys=True, default=str))
    else:
        from mlops_onprem.model_card import render_card_markdown

        print(render_card_markdown(mv.card, registry.decisions_about(store, args.name, mv.version)))
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


def run_promote(args: argparse.Namespace) -> int:
    try:
        decision = registry.promote_if_better(
            open_store(), args.name, args.version, margin=args.margin, metric=args.metric,
            force=args.force,
        )
    except registry.PromotionRejectedError as exc:
        _print_decision(exc.decision)
        return 1
    _print_decision(decision)
    _announce(decision)
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    decision = registry.rollback(open_store(), args.name, args.to_version)
    _print_decision(decision)
    _announce(decision)
    return 0


def run_challenger_set(args: argparse.Namespace) -> int:
    event = challenger.set_challenger(open_store(), args.name, args.version, reason=args.reason)
    replaced = event.get("replaced_challenger")
    print(f"challenger of {args.name}: v{args.version} shadows champion v{event['champion_version']}"
          + (f" (replaces v{replaced})" if replaced is not None else ""))
    print(f"history: {event['event_key']}")
    return 0


def run_challenger_clear(args: argparse.Namespace) -> int:
    event = challenger.clear_challenger(open_store(), args.name, reason=args.reason)
    if event is None:
        print(f"model {args.name!r} has no challenger")
        return 0
    print(f"challenger v{event['candidate_version']} of {args.name} cleared")
    print(f"history: {event['event_key']}")
    return 0


def run_challenger_status(args: argparse.Namespace) -> int:
    store = open_store()
    dataset = args.dataset
    if dataset is None and registry.champion_version(store, args.name) is not None:
        dataset = registry.resolve(store, args.name).card.get("contract", {}).get("dataset")
    report = challenger.judge_challenger(store, args.name, dataset or args.name,
                                         min_rows=args.min_rows, alpha=args.alpha, decide=False)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return 0
    if report.status == "none":
        print(f"model {args.name!r} has no challenger")
        return 0
    print(f"challenger v{report.challenger_version} vs champion v{report.champion_version} "
          f"({report.metric}): {report.status}")
    for who, score in (("challenger", report.challenger_score), ("champion", report.champion_score)):
        print(f"  {who:<10} {'n/a' if score is None else f'{score:.6g}'}")
    print(f"  labelled rows both scored: {report.labelled_rows} of {report.min_rows}; "
          f"{report.shadow_runs} shadow run(s), {report.shadow_rows} rows shadow-scored")
    print(f"  {report.reason}")
    return 0
