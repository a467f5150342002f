"""Retention: what may go, by a typed policy, and what never goes.

:func:`plan_gc` lists removals (key or local path, bytes, reason) without deleting anything;
:func:`apply_gc` deletes exactly a plan. The CLI (``mlops gc``) is a dry run unless
``--apply``; the ``gc`` deployment applies on a schedule.

May go (ages from the policy, :class:`RetentionPolicy`):

    predictions/<m>/<v>/<run>/    runs a ledger recorded that no batch's pointer refers to any
                                  more (superseded by a rescore) after
                                  ``superseded_runs_days``; any run after
                                  ``predictions_days``; a run prefix without a manifest (a killed
                                  run) after ``staging_hours``
    shadow/<m>/<v>/<run>/         a shadow challenger's runs: with the rules of scoring runs
                                  (``predictions_days``; killed: ``staging_hours``), except
                                  those of the current challenger (the evidence being collected)
    monitoring/<m>/<run>/         reports after ``reports_days``
    monitoring/<m>/profiles/v<v>/<batch>/<run>.json
                                  a batch's cached window counts: with its scoring run (when
                                  the run is removed or superseded, by the same rules)
    validation[-scoring]/<ds>/    results of rejected or superseded batch versions that trained
                                  nothing, after ``validation_results_days``
    quarantine/<ds>/<version>/    after ``quarantine_days``
    models/<m>/staging/<run>/     leftovers of failed trainings after ``staging_hours``
    models/<m>/<v>/ (no card)     half-registered versions after ``staging_hours``
    local store tmp/ and lock orphans, scoring scratch dirs of killed runs: after ``scratch_hours``

Never goes, whatever the ages: landed batches (``incoming/``, ``inbox/``), validated copies
(the training data of every model version), labels, the ledger, committed model versions (so
every version an alias or the rollback history points to), anything of a pending batch version,
and any prediction run or report a batch inside an open monitoring window
(``open_window_days`` up to the newest data date) still points to.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlops_onprem import keys, ledger
from mlops_onprem.errors import ObjectNotFoundError
from mlops_onprem.store.base import ObjectInfo, ObjectStore


class RetentionPolicy(BaseModel):
    """How long each kind of object is kept (documented defaults; a flow parameter)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    predictions_days: int = Field(90, ge=1, description="any scoring run, after this many days")
    superseded_runs_days: int = Field(7, ge=0, description="a run replaced by a rescore")
    reports_days: int = Field(180, ge=1, description="monitoring reports")
    validation_results_days: int = Field(180, ge=1, description="results of rejected/superseded batches")
    quarantine_days: int = Field(30, ge=1, description="quarantined batches")
    staging_hours: int = Field(24, ge=1,
        description="failed trainings, half-registered versions, killed runs")
    scratch_hours: int = Field(6, ge=1, description="local temp/lock orphans and scoring scratch")
    open_window_days: int = Field(7, ge=1, description="a monitoring window still open")


@dataclass(frozen=True)
class Removal:
    """One object (``kind="object"``) or local path (``"file"``) the plan removes."""

    target: str
    bytes: int
    reason: str
    kind: str = "object"


@dataclass
class GcPlan:
    removals: list[Removal] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)  # what a rule matched but a guard kept
    datasets: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.removals)

    def by_reason(self) -> dict[str, dict[str, int]]:
        summary: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "bytes": 0})
        for removal in self.removals:
            summary[removal.reason]["count"] += 1
            summary[removal.reason]["bytes"] += removal.bytes
        return dict(summary)

    def to_dict(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "by_reason": self.by_reason(), "datasets": self.datasets,
                "models": self.models, "removals": [asdict(r) for r in self.removals],
                "protected": self.protected}


def _age(info: ObjectInfo, now: datetime) -> timedelta:
    modified = info.last_modified or now
    if modified.tzinfo is None:
        modified = modified.replace(tzinfo=UTC)
    return now - modified


def _groups(infos: list[ObjectInfo], depth: int) -> dict[str, list[ObjectInfo]]:
    """Objects grouped by the first ``depth`` key segments (a run, a version, a report)."""
    grouped: dict[str, list[ObjectInfo]] = defaultdict(list)
    for info in infos:
        parts = info.key.split("/")
        if len(parts) > depth:
            grouped["/".join(parts[:depth]) + "/"].append(info)
    return grouped


def _newest(infos: list[ObjectInfo], now: datetime) -> timedelta:
    return min(_age(info, now) for info in infos)


def discover_datasets(store: ObjectStore) -> list[str]:
    return sorted({info.key.split("/")[1] for info in store.list("ledger/") if info.key.count("/") >= 2})


def discover_models(store: ObjectStore) -> list[str]:
    return sorted({info.key.split("/")[1] for info in store.list("models/") if info.key.count("/") >= 2})


def _open_window_protection(index: dict[str, Any], open_days: int) -> tuple[set[str], set[str], set[str]]:
    """(prediction run prefixes, monitoring run ids, version ids) inside the open window, plus
    every pending version."""
    views = ledger.versions(index)
    dates = [v.data_date for v in views if v.stage == ledger.STAGE_SCORING]
    newest = date.fromisoformat(max(dates)) if dates else None
    runs, reports, open_versions = set(), set(), set()
    for view in views:
        if view.status == ledger.BatchStatus.PENDING:
            open_versions.add(view.id)
        if view.stage != ledger.STAGE_SCORING or newest is None or \
                (newest - date.fromisoformat(view.data_date)).days >= open_days:
            continue  # monitoring windows hold scoring batches only
        open_versions.add(view.id)
        for ref, scored in view.state["scored"].items():
            name, version = ref.rsplit("@", 1)
            runs.add(keys.predictions_run_prefix(name, int(version), scored["run_id"]))
        reports.update(view.state["windows"])
    return runs, reports, open_versions


def plan_gc(store: ObjectStore, *, policy: RetentionPolicy | None = None,
            datasets: list[str] | None = None, models: list[str] | None = None,
            now: datetime | None = None, scratch_dir: Path | None = None,
            local_root: Path | None = None) -> GcPlan:
    """What the policy would remove now (nothing is deleted). ``datasets`` defaults to every
    ledger; ``models`` to every model (or, when ``datasets`` is given, the models those ledgers
    name, so a model whose ledger was not read is never judged); ``scratch_dir`` and
    ``local_root`` (a LocalStore's root) add local leftovers."""
    policy = policy or RetentionPolicy()
    now = now or datetime.now(UTC)
    all_datasets = datasets is None
    datasets = datasets if datasets is not None else discover_datasets(store)
    plan = GcPlan(datasets=datasets)
    pointer_runs: set[str] = set()  # every run some version's current pointer refers to
    known_runs: set[str] = set()  # every run the ledgers read here recorded
    referenced_models: set[str] = set()
    open_runs, open_reports, keep_versions = set(), set(), set()
    trained_versions: set[str] = set()
    indexes = {ds: ledger.read_index(store, ds) for ds in datasets}
    for index in indexes.values():
        runs, reports, versions = _open_window_protection(index, policy.open_window_days)
        open_runs |= runs
        open_reports |= reports
        keep_versions |= versions
        for view in ledger.versions(index):
            if view.state["trained"]:
                trained_versions.add(view.id)
            for ref, scored in view.state["scored"].items():
                name, version = ref.rsplit("@", 1)
                pointer_runs.add(keys.predictions_run_prefix(name, int(version), scored["run_id"]))
            for scoring in view.state["scorings"]:
                name, version = scoring["model"].rsplit("@", 1)
                known_runs.add(keys.predictions_run_prefix(name, int(version), scoring["run_id"]))
                referenced_models.add(name)
            referenced_models.update(ref.rsplit("@", 1)[0] for ref in view.state["trained"])
    if models is None:  # every model, or only those the chosen datasets' ledgers name
        models = discover_models(store) if all_datasets else sorted(referenced_models)
    plan.models = models

    def remove(infos: list[ObjectInfo], reason: str) -> None:
        plan.removals.extend(Removal(i.key, i.size, reason) for i in infos)

    def expire(prefix: str, depth: int, kept: set[str], max_age: timedelta, reason: str) -> None:
        """Remove each group under ``prefix`` (named by its key segment ``depth - 1``) whose
        newest object is older than ``max_age``, unless its name is in ``kept``."""
        for group, infos in _groups(list(store.list(prefix)), depth).items():
            if group.split("/")[depth - 1] not in kept and _newest(infos, now) > max_age:
                remove(infos, reason)

    for model in models:
        for run_prefix, infos in _groups(list(store.list(keys.predictions_model_prefix(model))), 4).items():
            age = _newest(infos, now)
            complete = any(i.key.endswith("/_manifest.json") for i in infos)
            if run_prefix in open_runs:
                if age > timedelta(days=policy.superseded_runs_days):
                    plan.protected.append(f"{run_prefix} (a batch in the open window points to it)")
                continue
            if not complete and age > timedelta(hours=policy.staging_hours):
                remove(infos, "scoring run without manifest (killed)")
            elif complete and run_prefix in known_runs and run_prefix not in pointer_runs and \
                    age > timedelta(days=policy.superseded_runs_days):
                remove(infos, "scoring run superseded by a rescore")
            elif complete and age > timedelta(days=policy.predictions_days):
                remove(infos, f"scoring run older than {policy.predictions_days} days")
        pointer = store.read_pointer(keys.alias_key(model, "challenger"))
        shadowing = None if pointer is None else pointer.value.get("version")
        for run_prefix, infos in _groups(list(store.list(keys.shadow_prefix(model))), 4).items():
            if str(shadowing) == run_prefix.split("/")[2]:
                continue
            age = _newest(infos, now)
            if not any(i.key.endswith("/_shadow.json") for i in infos):
                if age > timedelta(hours=policy.staging_hours):
                    remove(infos, "shadow run without _shadow.json (killed)")
            elif age > timedelta(days=policy.predictions_days):
                remove(infos, f"shadow run older than {policy.predictions_days} days")
        expire(f"monitoring/{model}/", 3, open_reports | {"profiles"},
               timedelta(days=policy.reports_days),
               f"monitoring report older than {policy.reports_days} days")
        for info in store.list(f"monitoring/{model}/profiles/"):
            parts = info.key.split("/")  # monitoring/<m>/profiles/v<v>/<batch>/<run>.json
            if len(parts) != 6 or not parts[3].startswith("v") or not parts[3][1:].isdigit():
                continue
            run = keys.predictions_run_prefix(model, int(parts[3][1:]), parts[5][:-len(".json")])
            if run in open_runs:
                continue  # its scoring run is in the open window: kept like the run
            if run not in pointer_runs and _age(info, now) > timedelta(days=policy.superseded_runs_days):
                remove([info], "cached window counts of a scoring run no batch points to")
            elif _age(info, now) > timedelta(days=policy.predictions_days):
                remove([info], f"cached window counts older than {policy.predictions_days} days")
        model_infos = list(store.list(keys.model_prefix(model)))
        for prefix, infos in _groups(model_infos, 4).items():
            stale = _newest(infos, now) > timedelta(hours=policy.staging_hours)
            if prefix.split("/")[2] == "staging" and stale:
                remove(infos, "staging leftover of a failed training")
        for prefix, infos in _groups(model_infos, 3).items():
            segment = prefix.split("/")[2]
            if segment.isdigit() and not any(i.key.endswith("/card.json") for i in infos) \
                    and _newest(infos, now) > timedelta(hours=policy.staging_hours):
                remove(infos, "half-registered model version (no card.json)")

    for dataset in datasets:
        index = indexes[dataset]
        current = {entry["version"] for entry in index["keys"].values()}
        for top in ("validation", "validation-scoring"):
            for info in store.list(f"{top}/{dataset}/"):
                version = info.key.rsplit("/", 1)[-1].removesuffix(".json")
                state = index["versions"].get(version)
                if state is None or version in keep_versions or version in trained_versions:
                    continue
                view = ledger.VersionView(state, version in current)
                if (view.status == ledger.STATUS_REJECTED or not view.current) and \
                        _age(info, now) > timedelta(days=policy.validation_results_days):
                    remove([info], "validation result of a rejected or superseded batch")
        expire(f"quarantine/{dataset}/", 3, keep_versions, timedelta(days=policy.quarantine_days),
               f"quarantined batch older than {policy.quarantine_days} days")

    horizon = time.time() - policy.scratch_hours * 3600
    if scratch_dir is not None and Path(scratch_dir).is_dir():
        for area in Path(scratch_dir).iterdir():
            for work in (area.iterdir() if area.is_dir() else []):
                if work.stat().st_mtime < horizon:
                    size = sum(p.stat().st_size for p in work.rglob("*") if p.is_file()) if work.is_dir() \
                        else work.stat().st_size
                    plan.removals.append(Removal(str(work), size, "scratch of a killed run", "file"))
    if local_root is not None:
        root = Path(local_root)
        for part in (root / "tmp").glob("*.part") if (root / "tmp").is_dir() else []:
            if part.stat().st_mtime < horizon:
                plan.removals.append(Removal(str(part), part.stat().st_size,
                    "local store temp orphan", "file"))
        if (root / "locks").is_dir():
            live = {hashlib.sha256(info.key.encode()).hexdigest() for info in store.list("")}
            for lock in (root / "locks").glob("*.lock"):
                if lock.stem not in live and lock.stat().st_mtime < horizon:
                    plan.removals.append(Removal(str(lock), 0, "local store lock orphan", "file"))
    return plan


def apply_gc(store: ObjectStore, plan: GcPlan) -> int:
    """Delete exactly what ``plan`` lists; return the bytes freed. A target already gone is
    skipped (another gc got there first)."""
    freed = 0
    for removal in plan.removals:
        if removal.kind == "object":
            try:
                store.delete(removal.target)
            except ObjectNotFoundError:
                continue
        else:
            path = Path(removal.target)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink(missing_ok=True)
            else:
                continue
        freed += removal.bytes
    return freed


def plan_markdown(plan: GcPlan, *, applied: bool) -> str:
    """The plan as a markdown summary (artifact and CLI)."""
    verb = "removed" if applied else "would remove"
    lines = [f"# Retention: {verb} {len(plan.removals)} object(s), {plan.bytes:,} bytes", "",
             f"Datasets: {', '.join(plan.datasets) or '-'}; models: {', '.join(plan.models) or '-'}", ""]
    if plan.removals:
        lines += ["| reason | objects | bytes |", "|---|---|---|"]
        lines += [f"| {reason} | {v['count']} | {v['bytes']:,} |" for reason, v in plan.by_reason().items()]
    if plan.protected:
        lines += ["", "Kept although old (inside an open monitoring window):", "",
                  *[f"- `{p}`" for p in plan.protected[:50]]]
    return "\n".join(lines)
