"""The batch ledger: what happened to every landed batch version of a dataset, kept in the store.

A *batch version* is one landed content: its id is the stage letter and the SHA-256 of its
bytes (``t-<sha>`` for training batches under ``incoming/``, ``s-<sha>`` for scoring batches
under ``inbox/``). The same bytes landed under two keys are one version; new bytes under an
old key are a new version, and the old one stops being *current*.

Layout (one ledger per dataset, both store backends, no database)::

    ledger/<dataset>/events/<version>/<event id>.json   immutable, create-only
    ledger/<dataset>/index.json                          compacted state, moved by CAS

Writers first create each event object (its id is a digest of what it says, so writing it
twice is a no-op), then fold the events into the index with a compare-and-swap loop: a
concurrent writer's events are re-read and kept, never lost; readers see the old index or the
new one, never half of it. A crash between the two steps leaves an event the index does not
hold; the step that produced it is redone on the next run (the version still looks pending) and
yields the same event id. :func:`rebuild_index` refolds every event from scratch (repair).

Event kinds: ``landed`` (key, etag), ``validated`` / ``rejected`` (stage, contract version,
result key, validated or quarantine key), ``scored`` (model@version, run, manifest, part),
``labelled`` (labels key), ``monitored`` (monitoring run), ``trained`` (model@version).
The state of a version is :func:`apply_event` folded over its events: a pure function.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from mlops_onprem import keys
from mlops_onprem.clock import iso_utc
from mlops_onprem.errors import MlopsError, PointerConflictError
from mlops_onprem.store.base import ObjectStore, Pointer

FORMAT = 1
STAGE_TRAINING = "training"
STAGE_SCORING = "scoring"
STAGE_LETTER = {STAGE_TRAINING: "t", STAGE_SCORING: "s"}


class BatchStatus(StrEnum):
    """A batch version's validation status (the value stored in the index is the text)."""

    PENDING = "pending"
    VALIDATED = "validated"
    REJECTED = "rejected"


STATUS_VALIDATED = BatchStatus.VALIDATED
STATUS_REJECTED = BatchStatus.REJECTED
KINDS = ("landed", "validated", "rejected", "scored", "labelled", "monitored", "trained")
_DT_SEGMENT = re.compile(r"(?:^|/)dt=(\d{4}-\d{2}-\d{2})(?:/|$)")
_CAS_ATTEMPTS = 30


class LedgerError(MlopsError):
    """The ledger cannot be read or updated (malformed index, endless CAS conflicts)."""


# --- pure part: ids, events and the fold ----------------------------------------------------
def version_id(stage: str, sha256: str) -> str:
    """The batch-version id of content ``sha256`` landed at ``stage``."""
    if stage not in STAGE_LETTER:
        raise ValueError(f"stage must be one of {tuple(STAGE_LETTER)}, got {stage!r}")
    return f"{STAGE_LETTER[stage]}-{sha256[:32]}"


def partition_date(key: str) -> str | None:
    """The Hive partition date of a landed key (``.../dt=2026-01-05/...``), else None."""
    match = _DT_SEGMENT.search(key)
    if not match:
        return None
    date.fromisoformat(match.group(1))  # raises ValueError on 2026-13-45
    return match.group(1)


def _event_id(kind: str, version: str, *parts: Any) -> str:
    text = "\n".join([kind, version, *(json.dumps(p, sort_keys=True, default=str) for p in parts)])
    return f"{kind}-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def make_event(kind: str, version: str, *, identity: Iterable[Any], at: str | None = None,
               **data: Any) -> dict[str, Any]:
    """An event record. ``identity`` are the fields that make it unique (they set its id)."""
    if kind not in KINDS:
        raise ValueError(f"unknown ledger event kind {kind!r}; known: {KINDS}")
    return {"event_id": _event_id(kind, version, *identity), "kind": kind, "version": version,
            "at": at or iso_utc(), **data}


def landed_event(stage: str, *, key: str, etag: str, sha256: str, size: int,
                 partition_day: str | None, at: str | None = None) -> dict[str, Any]:
    """The ``landed`` event of ``key``; ``partition_day`` is its :func:`partition_date`
    (None when the key has no valid ``dt=`` segment)."""
    version = version_id(stage, sha256)
    return make_event("landed", version, identity=(key, etag), at=at, stage=stage, key=key,
                      etag=etag, sha256=sha256, size=int(size), partition_date=partition_day)


def empty_index(dataset: str) -> dict[str, Any]:
    return {"format": FORMAT, "dataset": dataset, "versions": {}, "keys": {}, "labels": {},
            "updated_at": None}


def _new_version(event: dict[str, Any]) -> dict[str, Any]:
    return {"version": event["version"], "stage": event["stage"], "sha256": event["sha256"],
            "size": event["size"], "keys": [], "first_landed_at": event["at"],
            "partition_date": event.get("partition_date"), "validation": None, "scored": {},
            "scorings": [], "labelled": [], "windows": [], "trained": [], "event_ids": []}


def apply_event(index: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """Fold one event into the index (in place) and return it. Applying an event twice is a no-op.

    Raises LedgerError for an event about a version the index never saw land.
    """
    kind, vid = event["kind"], event["version"]
    if kind == "labelled" and vid == "labels":
        index["labels"][event["labels_key"]] = {
            k: event.get(k) for k in ("etag", "rows", "row_key_min", "row_key_max", "at")}
        return index
    state = index["versions"].get(vid)
    if state is None:
        if kind != "landed":
            raise LedgerError(f"ledger of {index['dataset']!r}: {kind} event for unknown version {vid}")
        state = index["versions"][vid] = _new_version(event)
    if event["event_id"] in state["event_ids"]:
        return index
    state["event_ids"].append(event["event_id"])
    if kind == "landed":
        if event["key"] not in state["keys"]:
            state["keys"].append(event["key"])
        index["keys"][event["key"]] = {"etag": event["etag"], "version": vid}
        if state["partition_date"] is None:
            state["partition_date"] = event.get("partition_date")
    elif kind in ("validated", "rejected"):
        state["validation"] = {"status": STATUS_VALIDATED if kind == "validated" else STATUS_REJECTED,
                               **{k: v for k, v in event.items() if k not in ("event_id", "kind", "version")}}
    elif kind == "scored":
        ref = f"{event['model_name']}@{event['model_version']}"
        record = {k: event[k] for k in ("run_id", "manifest_key", "output_key", "rows", "mode", "at")}
        current = state["scored"].get(ref)
        if current is None or str(record["at"]) >= str(current["at"]):
            # the pointer: the newest run for this model version (a late-recorded older run,
            # e.g. a rerun finding its complete manifest, never moves it back)
            state["scored"][ref] = record
        state["scorings"].append({"model": ref, **record})
    elif kind == "labelled":
        if event["labels_key"] not in state["labelled"]:
            state["labelled"].append(event["labels_key"])
    elif kind == "monitored":
        state["windows"].append(event["monitoring_run_id"])
    elif kind == "trained":
        ref = f"{event['model_name']}@{event['model_version']}"
        if ref not in state["trained"]:
            state["trained"].append(ref)
    return index


def fold(index: dict[str, Any], events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A copy of ``index`` with ``events`` applied in order."""
    result = json.loads(json.dumps(index))
    for event in events:
        apply_event(result, event)
    return result


# --- queries (pure) -------------------------------------------------------------------------
@dataclass(frozen=True)
class VersionView:
    """One batch version as the flows need it (a read-only view of the index entry)."""

    state: dict[str, Any]
    current: bool

    @property
    def id(self) -> str:
        return self.state["version"]

    @property
    def stage(self) -> str:
        return self.state["stage"]

    @property
    def validation(self) -> dict[str, Any] | None:
        return self.state["validation"]

    @property
    def status(self) -> BatchStatus:
        """pending | validated | rejected (of this content, whatever its keys)."""
        return BatchStatus(self.validation["status"]) if self.validation else BatchStatus.PENDING

    @property
    def data_date(self) -> str:
        """The day the batch's rows belong to: Hive partition, else the contract timestamp's
        newest day, else the day it landed."""
        if self.state.get("partition_date"):
            return self.state["partition_date"]
        validation = self.validation or {}
        if validation.get("time_max"):
            return str(validation["time_max"])[:10]
        return self.state["first_landed_at"][:10]

    @property
    def validated_key(self) -> str | None:
        validation = self.validation or {}
        return validation.get("validated_key") if self.status == STATUS_VALIDATED else None

    def scored_by(self, model_ref: str) -> dict[str, Any] | None:
        return self.state["scored"].get(model_ref)


def versions(index: dict[str, Any], *, stage: str | None = None) -> list[VersionView]:
    """Every version (of ``stage``), oldest first by (data date, first landing, id)."""
    current = {entry["version"] for entry in index["keys"].values()}
    views = [VersionView(state, state["version"] in current)
             for state in index["versions"].values() if stage is None or state["stage"] == stage]
    return sorted(views, key=lambda v: (v.data_date, v.state["first_landed_at"], v.id))


def in_range(view: VersionView, start: str | None, end: str | None) -> bool:
    """Whether the version's data date lies in [start, end] (ISO dates, None = open)."""
    return (start is None or view.data_date >= start) and (end is None or view.data_date <= end)


def pending(index: dict[str, Any], stage: str) -> list[VersionView]:
    """Current versions of ``stage`` that no gate has decided yet."""
    return [v for v in versions(index, stage=stage) if v.current and v.status == BatchStatus.PENDING]


def training_set(index: dict[str, Any], *, last_days: int | None = None,
                 last_batches: int | None = None) -> list[VersionView]:
    """The versions a model trains on: current, validated training versions, optionally only
    the newest ``last_batches`` or those within ``last_days`` days of the newest data date."""
    chosen = [v for v in versions(index, stage=STAGE_TRAINING)
              if v.current and v.status == STATUS_VALIDATED]
    if last_days is not None and chosen:
        newest = date.fromisoformat(chosen[-1].data_date)
        chosen = [v for v in chosen if (newest - date.fromisoformat(v.data_date)).days < last_days]
    if last_batches is not None:
        chosen = chosen[-last_batches:] if last_batches > 0 else []
    return chosen


def scored_window(index: dict[str, Any], model_ref: str, *, as_of: str | None = None,
                  last_days: int | None = None, last_batches: int | None = None) -> list[VersionView]:
    """Scoring versions scored by ``model_ref`` ("name@version") whose data date is at most
    ``as_of`` and within ``last_days`` days of it, or the newest ``last_batches``.

    Each version appears once (its latest run for that model version): de-duplicated by
    construction.
    """
    chosen = [v for v in versions(index, stage=STAGE_SCORING) if v.scored_by(model_ref)]
    if as_of is not None:
        chosen = [v for v in chosen if v.data_date <= as_of]
    if last_days is not None:
        anchor = date.fromisoformat(as_of) if as_of else (
            date.fromisoformat(chosen[-1].data_date) if chosen else None)
        if anchor is not None:
            chosen = [v for v in chosen if (anchor - date.fromisoformat(v.data_date)).days < last_days]
    if last_batches is not None:
        chosen = chosen[-last_batches:] if last_batches > 0 else []
    return chosen


def version_for_key(index: dict[str, Any], key: str) -> VersionView | None:
    """The current version of a landed key."""
    entry = index["keys"].get(key)
    return None if entry is None else VersionView(index["versions"][entry["version"]], True)


# --- the store part -------------------------------------------------------------------------
def index_key(dataset: str) -> str:
    return keys.ledger_index_key(dataset)


def _parse_index(store: ObjectStore, dataset: str, pointer: Pointer | None) -> dict[str, Any]:
    if pointer is None:
        return empty_index(dataset)
    value = pointer.value
    if not isinstance(value, dict) or value.get("format") != FORMAT or "versions" not in value:
        raise LedgerError(f"ledger index {index_key(dataset)!r} in {store.location} is malformed "
                          f"(format {value.get('format') if isinstance(value, dict) else '?'})")
    return value


def read_index(store: ObjectStore, dataset: str) -> dict[str, Any]:
    """The compacted index of ``dataset`` (empty when nothing was ever recorded)."""
    return _parse_index(store, dataset, store.read_pointer(index_key(dataset)))


def _commit(store: ObjectStore, dataset: str,
            build: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Compare-and-swap loop on the index: ``build`` maps the freshly read index to the new
    one; on a conflict the index is re-read and rebuilt. Returns the committed index."""
    for attempt in range(_CAS_ATTEMPTS):
        pointer = store.read_pointer(index_key(dataset))
        current = _parse_index(store, dataset, pointer)
        updated = build(current)
        if updated == current:
            return current  # nothing new (e.g. a retry after a lost reply already folded it)
        updated["updated_at"] = iso_utc()
        try:
            store.write_pointer(index_key(dataset), updated,
                                expected_token=pointer.token if pointer else None)
            return updated
        except PointerConflictError:
            time.sleep(min(0.5, 0.01 * 2 ** attempt) * random.random())
    raise LedgerError(f"ledger of {dataset!r} in {store.location}: {_CAS_ATTEMPTS} conflicting "
                      "writers in a row; giving up (nothing lost: the events are stored)")


def _write_event(store: ObjectStore, dataset: str, event: dict[str, Any]) -> None:
    key = keys.ledger_event_key(dataset, event["version"], event["event_id"])
    try:
        store.write_pointer(key, event, expected_token=None)
    except PointerConflictError:
        pass  # the same event id was already written: events are immutable and say the same


def record(store: ObjectStore, dataset: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Append ``events`` to the ledger of ``dataset``; return the index that holds them.

    Event objects first (immutable), then one compare-and-swap of the index, retried on
    conflict against the freshly read index (a concurrent writer's events are kept).
    Raises LedgerError after too many conflicts, the store family on I/O errors.
    """
    if not events:
        return read_index(store, dataset)
    for event in events:
        _write_event(store, dataset, event)
    return _commit(store, dataset, lambda current: fold(current, events))


def read_events(store: ObjectStore, dataset: str, version: str | None = None) -> list[dict[str, Any]]:
    """Every stored event (of one version), ordered by time then id."""
    prefix = keys.ledger_events_prefix(dataset, version)
    events = [store.get_json(info.key) for info in store.list(prefix) if info.key.endswith(".json")]
    order = {kind: i for i, kind in enumerate(KINDS)}
    return sorted(events, key=lambda e: (e["at"], order[e["kind"]], e["event_id"]))


def rebuild_index(store: ObjectStore, dataset: str) -> dict[str, Any]:
    """Refold every stored event into a fresh index and commit it by CAS (repair)."""
    return _commit(store, dataset,
                   lambda _current: fold(empty_index(dataset), read_events(store, dataset)))
