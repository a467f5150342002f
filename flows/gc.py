"""Flow ``gc``: the retention policy, applied on a schedule.

    plan-retention (nothing deleted) -> apply-retention (unless ``dry_run``) -> markdown artifact

What may go and what never goes is :mod:`mlops_onprem.gc`'s docstring; ``mlops gc`` runs the
same plan from the terminal (a dry run unless ``--apply``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from mlops_onprem.gc import GcPlan, RetentionPolicy, apply_gc, plan_gc, plan_markdown
from mlops_onprem.settings import get_settings
from mlops_onprem.store import open_store
from mlops_onprem.store.local import LocalStore
from tasks.run_labels import run_name


@task(name="plan-retention", cache_policy=NONE, retries=2, retry_delay_seconds=[5, 30])
def plan_retention(policy: RetentionPolicy, datasets: list[str] | None,
                   models: list[str] | None) -> GcPlan:
    store = open_store()
    local_root = store.root if isinstance(store, LocalStore) else None
    return plan_gc(store, policy=policy, datasets=datasets, models=models,
                   scratch_dir=get_settings().scratch_dir, local_root=local_root)


@task(name="apply-retention", cache_policy=NONE)
def apply_retention(plan: GcPlan) -> int:
    freed = apply_gc(open_store(), plan)
    get_run_logger().info("removed %d object(s), %d bytes", len(plan.removals), freed)
    return freed


@flow(name="gc", flow_run_name=run_name(lambda p: "gc dry-run" if p.get("dry_run") else "gc"))
def collect_garbage(
    dry_run: bool = False,
    policy: RetentionPolicy | None = None,
    datasets: list[str] | None = None,
    models: list[str] | None = None,
) -> dict[str, Any]:
    """Remove what ``policy`` (documented defaults when None) lets go, for ``datasets`` and
    ``models`` (default: every one in the store). Returns the plan (and whether it was applied)."""
    plan = plan_retention(policy or RetentionPolicy(), datasets, models)
    if not dry_run:
        apply_retention(plan)
    create_markdown_artifact(markdown=plan_markdown(plan, applied=not dry_run), key="retention",
                             description="What the retention policy removed")
    return {"applied": not dry_run, **plan.to_dict()}
