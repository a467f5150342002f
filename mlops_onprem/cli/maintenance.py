"""``mlops gc`` (retention; a dry run unless ``--apply``) and ``mlops lineage`` (where a
prediction, a row or a model version came from)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mlops_onprem.store import open_store


def register(app: typer.Typer) -> None:
    from mlops_onprem.cli import add_command

    add_command(app, "gc", run_gc)
    add_command(app, "lineage", run_lineage)


def run_gc(
    dataset: Annotated[list[str] | None, typer.Option(
        help="only this dataset (repeatable; default all)")] = None,
    model: Annotated[list[str] | None, typer.Option(help="only this model (repeatable; default all)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print what would go (the default)")] = False,
    apply: Annotated[bool, typer.Option("--apply", help="delete what the policy lets go")] = False,
    policy: Annotated[str | None, typer.Option(
        help='retention policy as JSON, e.g. \'{"quarantine_days": 14}\'')] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the whole plan as JSON")] = False,
) -> int:
    """Remove what the retention policy lets go (a dry run unless --apply)."""
    from mlops_onprem.cli.jobs import parse_policy
    from mlops_onprem.gc import RetentionPolicy, apply_gc, plan_gc, plan_markdown
    from mlops_onprem.settings import get_settings
    from mlops_onprem.store.local import LocalStore

    store, settings = open_store(), get_settings()
    if dry_run and apply:
        raise typer.BadParameter("--dry-run and --apply exclude each other", param_hint="--apply")
    retention = parse_policy(RetentionPolicy, policy, "--policy") or RetentionPolicy()
    local_root = store.root if isinstance(store, LocalStore) else None
    plan = plan_gc(store, policy=retention, datasets=dataset or None, models=model or None,
                   scratch_dir=settings.scratch_dir, local_root=local_root)
    if apply:
        apply_gc(store, plan)
    if json_output:
        print(json.dumps({"applied": apply, **plan.to_dict()}, indent=2, default=str))
        return 0
    print(plan_markdown(plan, applied=apply))
    for removal in plan.removals[:200]:
        print(f"  {removal.bytes:>12,}  {removal.target}  ({removal.reason})")
    if len(plan.removals) > 200:
        print(f"  ... {len(plan.removals) - 200} more (--json lists all)")
    if not apply and plan.removals:
        print("dry run: nothing deleted (add --apply to delete)")
    return 0


def run_lineage(
    ref: Annotated[str, typer.Argument(
        help="predictions/.../part-*.parquet | <model>@<version> | a row key")],
    dataset: Annotated[str, typer.Option(help="dataset of a row key")] = "demo",
    model: Annotated[str, typer.Option(help="model of a row key")] = "demo",
    json_output: Annotated[bool, typer.Option("--json", help="print the chain as JSON")] = False,
) -> int:
    """Trace a row key, a prediction part key or a model version (name@version) to where it came
    from."""
    from mlops_onprem import lineage

    store = open_store()
    if ref.startswith("predictions/"):
        chain = lineage.prediction_lineage(store, ref)
    elif "@" in ref and ref.rsplit("@", 1)[1].isdigit():
        name, version = ref.rsplit("@", 1)
        chain = lineage.model_lineage(store, name, int(version))
    else:
        # digits are tried as an integer key; string keys ("00123") are matched as strings
        numeric = ref.lstrip("-").isdigit() and not (ref.startswith("0") and len(ref) > 1)
        row_key: object = int(ref) if numeric else ref
        chain = lineage.row_lineage(store, dataset, model, row_key)
    print(json.dumps(chain, indent=2, default=str) if json_output else lineage.render_text(chain))
    return 0
