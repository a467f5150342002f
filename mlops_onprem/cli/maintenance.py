"""``mlops gc`` (retention; a dry run unless ``--apply``) and ``mlops lineage`` (where a
prediction, a row or a model version came from)."""

from __future__ import annotations

import argparse
import json

from mlops_onprem.store import open_store


def register(subparsers: argparse._SubParsersAction) -> None:
    gc = subparsers.add_parser("gc", help="remove what the retention policy lets go (dry run by default)")
    gc.add_argument("--dataset", action="append", help="only this dataset (repeatable; default all)")
    gc.add_argument("--model", action="append", help="only this model (repeatable; default all)")
    mode = gc.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print what would go (the default)")
    mode.add_argument("--apply", action="store_true", help="delete what the policy lets go")
    gc.add_argument("--policy", default=None,
                    help='retention policy as JSON, e.g. \'{"quarantine_days": 14}\'')
    gc.add_argument("--json", action="store_true", help="print the whole plan as JSON")
    gc.set_defaults(handler=run_gc)

    lineage = subparsers.add_parser(
        "lineage", help="trace a row key, a prediction part key or a model version (name@version)")
    lineage.add_argument("ref", help="predictions/.../part-*.parquet | <model>@<version> | a row key")
    lineage.add_argument("--dataset", default="demo", help="dataset of a row key (default demo)")
    lineage.add_argument("--model", default="demo", help="model of a row key (default demo)")
    lineage.add_argument("--json", action="store_true")
    lineage.set_defaults(handler=run_lineage)


def run_gc(args: argparse.Namespace) -> int:
    from mlops_onprem.gc import RetentionPolicy, apply_gc, plan_gc, plan_markdown
    from mlops_onprem.settings import get_settings
    from mlops_onprem.store.local import LocalStore

    store, settings = open_store(), get_settings()
    policy = RetentionPolicy.model_validate_json(args.policy) if args.policy else RetentionPolicy()
    local_root = store.root if isinstance(store, LocalStore) else None
    plan = plan_gc(store, policy=policy, datasets=args.dataset, models=args.model,
                   scratch_dir=settings.scratch_dir, local_root=local_root)
    if args.apply:
        apply_gc(store, plan)
    if args.json:
        print(json.dumps({"applied": args.apply, **plan.to_dict()}, indent=2, default=str))
        return 0
    print(plan_markdown(plan, applied=args.apply))
    for removal in plan.removals[:200]:
        print(f"  {removal.bytes:>12,}  {removal.target}  ({removal.reason})")
    if len(plan.removals) > 200:
        print(f"  ... {len(plan.removals) - 200} more (--json lists all)")
    if not args.apply and plan.removals:
        print("dry run: nothing deleted (add --apply to delete)")
    return 0


def run_lineage(args: argparse.Namespace) -> int:
    from mlops_onprem import lineage

    store = open_store()
    ref: str = args.ref
    if ref.startswith("predictions/"):
        chain = lineage.prediction_lineage(store, ref)
    elif "@" in ref and ref.rsplit("@", 1)[1].isdigit():
        name, version = ref.rsplit("@", 1)
        chain = lineage.model_lineage(store, name, int(version))
    else:
        # digits are tried as an integer key; string keys ("00123") are matched as strings
        numeric = ref.lstrip("-").isdigit() and not (ref.startswith("0") and len(ref) > 1)
        row_key: object = int(ref) if numeric else ref
        chain = lineage.row_lineage(store, args.dataset, args.model, row_key)
    print(json.dumps(chain, indent=2, default=str) if args.json else lineage.render_text(chain))
    return 0
