"""Debounce drift-triggered retrains with a compare-and-swap pointer in the store.

One pointer per model at ``control/retrain/<model>.json``::

    {"state": "running" | "idle", "idempotency_key", "claim_id", "champion_version",
     "started_at", "finished_at", "trigger", "outcome"}

A monitoring run that decided "drift" asks :func:`claim_retrain`. The claim is granted to at
most one caller, because it is a compare-and-swap write against the token just read; it is
refused while a retrain is running (unless that claim is older than ``stale_after_minutes``:
a crashed run must not block retraining forever), within ``cooldown_minutes`` of the last
claim, when the same idempotency key was already claimed, and when the drift is an episode a
retrain already answered (:func:`episode_already_handled`: feature drift only, on features the
last completed retrain was triggered by; a quality drop or drift on other features retrains
again). The idempotency key hashes the model, the champion version and the cooldown window, so
retries of one trigger collapse.
:func:`finish_retrain` records the outcome and frees the pointer.

Event-driven retraining splits claim and training across two runs: the monitoring run claims,
the training run the automation starts adopts the claim (:func:`adopt_retrain`: at most one
run per claim) and finishes it.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from mlops_onprem import keys
from mlops_onprem.clock import iso_utc, parse_utc, utc_now
from mlops_onprem.errors import MonitoringError, PointerConflictError
from mlops_onprem.store.base import ObjectStore

STATE_RUNNING = "running"
STATE_IDLE = "idle"
_FINISH_ATTEMPTS = 10


class RetrainControlError(MonitoringError):
    """The retrain pointer is missing or held by another claim when finishing."""


def retrain_pointer_key(model_name: str) -> str:
    """``control/retrain/<model>.json`` (built in :mod:`mlops_onprem.keys`)."""
    return keys.retrain_pointer_key(model_name)


def idempotency_key(model_name: str, champion_version: int | None, now: datetime,
                    cooldown_minutes: float) -> str:
    """Hash of model, champion version and cooldown window (``now`` floored to it)."""
    if cooldown_minutes > 0:
        window = int(now.timestamp() // (cooldown_minutes * 60))
        window_text = f"window-{window}-of-{cooldown_minutes:g}min"
    else:
        window_text = "no-cooldown-" + iso_utc(now)  # no window: every moment is its own trigger
    text = f"{model_name}\n{champion_version}\n{window_text}"
    return "retrain-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


QUALITY_RULE = "quality_drop"


def episode_already_handled(last: dict[str, Any] | None, trigger: dict[str, Any]) -> str | None:
    """Why a drift ``trigger`` must not retrain again, or None when it may.

    Retraining answers a covariate shift once: after a completed retrain triggered by drift on
    features F (rules R), drift on a subset of F by a subset of R with no quality drop is the
    same episode (retraining again daily on mostly the same data would register a new version
    every cooldown). Labels (``quality_drop``), drift on other features or by another rule, or a
    clean window in between (:func:`close_episode`) start a new episode.
    """
    if not last or last.get("state") != STATE_IDLE or (last.get("outcome") or {}).get("error"):
        return None
    if last.get("episode_closed_at"):
        return None  # a clean window came in between: this drift is a new episode
    previous = last.get("trigger") or {}
    rules = set(trigger.get("rules_fired") or [])
    if not rules or QUALITY_RULE in rules or not rules <= set(previous.get("rules_fired") or []):
        return None  # labels say the model got worse, or a rule the last retrain did not see
    handled = set(previous.get("drifted_features") or [])
    current = set(trigger.get("drifted_features") or [])
    if not current <= handled:
        return None  # drift on other features: a new episode
    outcome = last.get("outcome") or {}
    return (f"drift on {sorted(current)} was already answered by the retrain that started "
            f"{last.get('started_at')} (version {outcome.get('version')}, "
            f"{'promoted' if outcome.get('promoted') else 'not promoted'}; trigger "
            f"{previous.get('report_key')}); a quality drop or drift on other features retrains again")


@dataclass(frozen=True)
class RetrainClaim:
    """The answer to "may I retrain now?" (granted for exactly one caller per window)."""

    granted: bool
    reason: str
    model_name: str
    idempotency_key: str
    claim_id: str | None = None
    pointer_key: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def claim_retrain(
    store: ObjectStore,
    model_name: str,
    *,
    champion_version: int | None,
    cooldown_minutes: float,
    trigger: dict[str, Any] | None = None,
    now: datetime | None = None,
    stale_after_minutes: float = 360.0,
) -> RetrainClaim:
    """Try to claim the model's retrain slot; never raises on a lost race (granted=False).

    Takes the store, the model, its champion version, the cooldown, a small ``trigger`` record
    (e.g. the monitoring report key) and the time. Returns a :class:`RetrainClaim` whose
    ``reason`` says why it was granted or refused.
    """
    now = now or utc_now()
    key = retrain_pointer_key(model_name)
    idem = idempotency_key(model_name, champion_version, now, cooldown_minutes)

    def refuse(reason: str) -> RetrainClaim:
        return RetrainClaim(False, reason, model_name, idem, None, key)

    pointer = store.read_pointer(key)
    if pointer is not None:
        value = pointer.value
        started = parse_utc(value["started_at"]) if value.get("started_at") else None
        if value.get("state") == STATE_RUNNING:
            stale = started is not None and now - started > timedelta(minutes=stale_after_minutes)
            if not stale:
                return refuse(f"a retrain is already running (claim {value.get('claim_id')}, "
                              f"started {value.get('started_at')})")
        if value.get("idempotency_key") == idem:
            return refuse(f"trigger {idem} was already claimed at {value.get('started_at')}")
        handled = episode_already_handled(value, trigger or {})
        if handled:
            return refuse(handled)
        if started is not None and now - started < timedelta(minutes=cooldown_minutes):
            until = iso_utc(started + timedelta(minutes=cooldown_minutes))
            return refuse(f"cooldown: last retrain started {value.get('started_at')}, "
                          f"next allowed after {until}")
    claim_id = uuid.uuid4().hex
    value = {
        "state": STATE_RUNNING,
        "idempotency_key": idem,
        "claim_id": claim_id,
        "model_name": model_name,
        "champion_version": champion_version,
        "started_at": iso_utc(now),
        "finished_at": None,
        "cooldown_minutes": cooldown_minutes,
        "trigger": trigger or {},
        "outcome": None,
    }
    try:
        store.write_pointer(key, value, expected_token=pointer.token if pointer else None)
    except PointerConflictError:
        return refuse("another monitoring run claimed the retrain first")
    return RetrainClaim(True, "claimed", model_name, idem, claim_id, key)


def adopt_retrain(store: ObjectStore, claim: RetrainClaim, run_id: str, *,
                  now: datetime | None = None) -> RetrainClaim:
    """Bind a granted claim to the one training run that answers it; never raises on a refusal.

    Event-driven retraining (``monitor-model`` with ``retrain_mode="event"``): the monitoring run
    claims the slot and emits ``mlops.drift.detected`` carrying the claim; the automation starts
    ``train-model`` with it, and that run adopts the claim with a compare-and-swap write of its
    ``run_id`` before training. Granted when the pointer still holds this claim, running and
    adopted by nobody (or by ``run_id`` itself: a retry of the same run). Refused when the claim
    was finished, taken over as stale, or already adopted by another run: a duplicate event, or
    a second automation firing, starts no second training. Returns the claim with ``granted``
    and ``reason`` saying which.
    """
    def answer(granted: bool, reason: str) -> RetrainClaim:
        return RetrainClaim(granted, reason, claim.model_name, claim.idempotency_key,
                            claim.claim_id, claim.pointer_key)

    if not claim.granted or claim.claim_id is None:
        return answer(False, f"claim {claim.idempotency_key} was not granted")
    for _ in range(_FINISH_ATTEMPTS):
        pointer = store.read_pointer(claim.pointer_key)
        value = pointer.value if pointer is not None else {}
        if value.get("claim_id") != claim.claim_id:
            return answer(False, f"retrain pointer {claim.pointer_key} no longer holds claim "
                                 f"{claim.claim_id} (it was finished or taken over)")
        if value.get("state") != STATE_RUNNING:
            return answer(False, f"claim {claim.claim_id} was already finished at "
                                 f"{value.get('finished_at')}")
        adopted_by = value.get("adopted_by")
        if adopted_by == run_id:
            return answer(True, "adopted (by this run, earlier)")
        if adopted_by:
            return answer(False, f"claim {claim.claim_id} is already being answered by run "
                                 f"{adopted_by} (since {value.get('adopted_at')})")
        adopted = dict(value, adopted_by=run_id, adopted_at=iso_utc(now or utc_now()))
        try:
            store.write_pointer(claim.pointer_key, adopted, expected_token=pointer.token)
        except PointerConflictError:
            continue  # moved meanwhile: read again and decide on what it holds now
        return answer(True, "adopted")
    return answer(False, f"retrain pointer {claim.pointer_key}: gave up after "
                         f"{_FINISH_ATTEMPTS} conflicting writes")


def finish_retrain(
    store: ObjectStore, claim: RetrainClaim, outcome: dict[str, Any], *, now: datetime | None = None
) -> dict[str, Any]:
    """Record the outcome of a granted claim and mark the slot idle; return the pointer value.

    Retries the compare-and-swap if the pointer moved meanwhile. Raises
    :class:`RetrainControlError` if the claim is not granted or the pointer now belongs to a
    different claim (e.g. a stale takeover).
    """
    if not claim.granted or claim.claim_id is None:
        raise RetrainControlError(f"claim {claim.idempotency_key} was not granted; nothing to finish")
    now = now or utc_now()
    for _ in range(_FINISH_ATTEMPTS):
        pointer = store.read_pointer(claim.pointer_key)
        if pointer is None or pointer.value.get("claim_id") != claim.claim_id:
            raise RetrainControlError(
                f"retrain pointer {claim.pointer_key} no longer holds claim {claim.claim_id}"
            )
        value = dict(pointer.value, state=STATE_IDLE, finished_at=iso_utc(now), outcome=outcome)
        try:
            store.write_pointer(claim.pointer_key, value, expected_token=pointer.token)
        except PointerConflictError:
            continue
        return value
    raise RetrainControlError(
        f"retrain pointer {claim.pointer_key}: gave up after {_FINISH_ATTEMPTS} conflicting writes"
    )


def close_episode(store: ObjectStore, model_name: str, *, report_key: str | None,
                  now: datetime | None = None) -> bool:
    """A clean monitoring window ends the drift episode the last retrain answered: the next
    drift may retrain again. Returns whether the pointer changed (best effort: one CAS try)."""
    key = retrain_pointer_key(model_name)
    pointer = store.read_pointer(key)
    if pointer is None or pointer.value.get("state") != STATE_IDLE or pointer.value.get("episode_closed_at"):
        return False
    value = dict(pointer.value, episode_closed_at=iso_utc(now or utc_now()),
                 episode_closed_by=report_key)
    try:
        store.write_pointer(key, value, expected_token=pointer.token)
    except PointerConflictError:
        return False  # another run moved it; it will be closed (or reopened) by the next clean one
    return True


def read_retrain_state(store: ObjectStore, model_name: str) -> dict[str, Any] | None:
    """The current retrain pointer value of ``model_name``, or None if it never retrained."""
    pointer = store.read_pointer(retrain_pointer_key(model_name))
    return None if pointer is None else pointer.value
