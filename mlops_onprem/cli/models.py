"""``mlops models list|show|promote|rollback``: the model registry from the command line."""

from __future__ import annotations

import argparse
import json

from mlops_onprem import registry
from mlops_onprem.store import open_store


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list, inspect, promote and roll back models")
    commands = parser.add_subparsers(dest="models_command", required=True)

    listing = commands.add_parser("list", help="versions of a model, champion marked")
    listing.add_argument("name", help="model name")
    listing.set_defaults(handler=run_list)

    show = commands.add_parser("show", help="the model card of a version or alias")
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
    print(f"{'':2}{'version':>7}  {'created':<27} {'kind':<14} {'primary metric':<24} contract")
    for mv in versions:
        card = mv.card
        mark = "* " if mv.version == champion else "  "
        contract = card.get("contract", {})
        print(f"{mark}{mv.version:>7}  {card.get('created_at', ''):<27} "
              f"{card.get('spec', {}).get('kind', ''):<14} {_primary(card):<24} "
              f"{contract.get('dataset')} v{contract.get('version')}")
    print("\n* = champion" if champion is not None else "\nno champion yet")
    return 0


def run_show(args: argparse.Namespace) -> int:
    mv = registry.resolve(open_store(), args.name, args.ref)
    if args.json:
        print(json.dumps(mv.card, indent=2, sort_keys=True, default=str))
    else:
        from mlops_onprem.model_card import render_card_markdown

        print(render_card_markdown(mv.card))
    return 0


def _print_decision(decision: registry.PromotionDecision) -> None:
    print(f"{decision.action}: {decision.reason}")
    if decision.event_key:
        print(f"history: {decision.event_key}")


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
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    _print_decision(registry.rollback(open_store(), args.name, args.to_version))
    return 0
