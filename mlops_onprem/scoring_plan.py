"""What a scoring run scores: batch versions chosen from the ledger, never a whole listing.

    select_versions   validated, current scoring versions (under a prefix, in [start, end]):
                        mode "new"       those no version of the model has scored yet (the
                                         default): a new champion scores new batches only
                        mode "backfill"  all of them, with the chosen model version; the run id
                                         is derived from the versions, so a rerun is a no-op
                        mode "rescore"   all of them again under a new run id (forced)
    plan_run_id       the deterministic run id (plus a nonce for "rescore")
    partitions_for    the validated copies to score, as small records
    scored_events     the ledger events that commit "this version was scored by this run"

A complete run is immutable (:func:`mlops_onprem.manifest.write_manifest`); the ledger's
``scored`` pointer per model version is what moves (atomically, by CAS) when a rescore
completes, so no manifest ever describes bytes it did not see.
"""

from __future__ import annotations

from typing import Any, Literal

from mlops_onprem import ledger
from mlops_onprem.errors import MlopsError
from mlops_onprem.manifest import ScoringManifest, derive_run_id
from mlops_onprem.store.base import ObjectStore

ScoringMode = Literal["new", "backfill", "rescore"]


class ScoringPlanError(MlopsError):
    """A pinned run id names a run over other batches (runs are never rewritten)."""
MODES: tuple[str, ...] = ("new", "backfill", "rescore")


def select_versions(index: dict[str, Any], model_name: str, *, mode: str = "new",
                    start: str | None = None, end: str | None = None,
                    prefix: str | None = None) -> list[ledger.VersionView]:
    """The scoring versions a run of ``model_name`` scores, oldest first."""
    if mode not in MODES:
        raise ValueError(f"scoring mode must be one of {MODES}, got {mode!r}")
    chosen = [v for v in ledger.versions(index, stage=ledger.STAGE_SCORING)
              if v.current and v.status == ledger.STATUS_VALIDATED and ledger.in_range(v, start, end)
              and (prefix is None or any(k.startswith(prefix) for k in v.state["keys"]))]
    if mode == "new":
        chosen = [v for v in chosen
                  if not any(ref.startswith(f"{model_name}@") for ref in v.state["scored"])]
    return chosen


def plan_run_id(model_name: str, model_version: int, versions: list[str], *, mode: str,
                nonce: str | None = None) -> str:
    """Run id of scoring ``versions`` with the model: the same set gives the same id, except
    in "rescore" mode, where ``nonce`` (e.g. the flow run id) makes it new."""
    identities = [(v, "") for v in versions]
    if mode == "rescore":
        if not nonce:
            raise ValueError("a rescore needs a nonce (it must not reuse a complete run's id)")
        identities.append(("rescore", nonce))
    return derive_run_id(model_name, model_version, identities)


def partitions_for(store: ObjectStore, views: list[ledger.VersionView]) -> list[dict[str, Any]]:
    """One partition record per version: its validated copy ``{key, etag, size}`` plus the
    ``version`` and the ``source_key`` it landed under."""
    partitions = []
    for view in views:
        key = view.validated_key
        if key is None:
            raise ledger.LedgerError(f"batch version {view.id} has no validated copy to score")
        info = store.stat(key)
        partitions.append({"key": key, "etag": info.etag, "size": info.size, "version": view.id,
                           "source_key": view.validation.get("source_key") if view.validation
                           else None})
    return partitions


def scored_events(manifest: ScoringManifest, *, mode: str) -> list[dict[str, Any]]:
    """``scored`` ledger events for each input the manifest's outputs cover."""
    by_input = {item.key: item for item in manifest.inputs}
    events = []
    for output in manifest.outputs:
        item = by_input.get(output.input_key)
        if item is None or item.version is None:
            continue
        events.append(ledger.make_event(
            "scored", item.version, identity=(manifest.model_name, manifest.model_version,
                                              manifest.run_id),
            at=manifest.created_at, model_name=manifest.model_name,
            model_version=manifest.model_version, run_id=manifest.run_id,
            manifest_key=manifest.key, output_key=output.key, rows=output.rows, mode=mode))
    return events
