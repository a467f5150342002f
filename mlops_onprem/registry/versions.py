"""The registry's storage rules: versions, aliases and history in the object store. Nothing here
imports training or export code, so scoring, monitoring and the challenger can import it alone.

Layout (keys built in :mod:`mlops_onprem.keys`)::

    models/<name>/<version>/allocated.json        CAS-created: reserves the version number
    models/<name>/<version>/model.onnx            the model scoring loads (onnx_io convention)
    models/<name>/<version>/model.xgb.json|.skops native model, non-pickle (never loaded to score)
    models/<name>/<version>/eval.parquet          holdout rows + native scores (promotion data)
    models/<name>/<version>/contract.yaml         the contract the model was trained under
    models/<name>/<version>/reference_profile.json monitoring reference
    models/<name>/<version>/card.md               human-readable model card
    models/<name>/<version>/card.png              its holdout figure (curves, confusion, residuals)
    models/<name>/<version>/card.json             written LAST: the version's commit marker
    models/<name>/aliases/champion.json           CAS pointer {"version": n, "previous_version": m}
    models/<name>/history/<time>-<id>.json        one immutable object per decision

Versions are integers that only grow and are never overwritten: a number is reserved by
creating its ``allocated.json`` with a compare-and-swap create (the loser of a race takes
the next number). A version without ``card.json`` is incomplete and invisible.
Aliases move only by compare-and-swap against the token read before evaluating, so two
concurrent promotions cannot both win.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from mlops_onprem import keys
from mlops_onprem.clock import compact_utc, utc_now_iso
from mlops_onprem.contracts import Contract, parse_contract
from mlops_onprem.errors import ModelError, ModelIntegrityError, ObjectNotFoundError, PointerConflictError
from mlops_onprem.store.base import ObjectStore, sha256_bytes
from mlops_onprem.store.parquet import get_dataframe

CHAMPION = "champion"
CARD_JSON = "card.json"
CARD_MD = "card.md"
CARD_FIGURE = "card.png"
CONTRACT_FILE = "contract.yaml"
_MAX_ALLOCATION_ATTEMPTS = 1000


class ModelNotFoundError(ModelError):
    """No such model version, alias or champion."""


class PromotionConflictError(ModelError):
    """Another promotion moved the alias while this one was evaluating; nothing was changed."""


@dataclass(frozen=True)
class ModelVersion:
    """One committed registry version: what scoring and monitoring resolve."""

    name: str
    version: int
    onnx_key: str
    card: dict[str, Any]


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome of a promotion, rollback or conflict; also stored in history."""

    model_name: str
    action: str  # promoted | rejected | already_champion | rollback | conflict
    promoted: bool
    candidate_version: int
    champion_version: int | None  # the champion before the decision
    metric: str | None
    candidate_score: float | None
    champion_score: float | None
    margin: float
    reason: str
    eval_rows: int
    decided_at: str
    event_key: str | None = None
    improvement: float | None = None  # candidate over champion, metric units, positive = better
    interval: tuple[float, float] | None = None  # paired bootstrap interval of ``improvement``
    alpha: float | None = None
    floors: dict[str, float] | None = None
    excluded_rows: int = 0  # evaluation rows left out because the champion trained on them

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- reading ------------------------------------------------------------------------------
def _version_numbers(store: ObjectStore, name: str) -> set[int]:
    """Every version number seen under ``models/<name>/`` (committed or merely allocated)."""
    prefix = keys.model_prefix(name)
    numbers = set()
    for info in store.list(prefix):
        head = info.key[len(prefix):].split("/", 1)[0]
        if head.isdigit():
            numbers.add(int(head))
    return numbers


def get_version(store: ObjectStore, name: str, version: int) -> ModelVersion:
    """The committed version ``version`` of ``name``; raises ModelNotFoundError if absent."""
    try:
        card = store.get_json(keys.model_card_key(name, version))
    except ObjectNotFoundError as exc:
        raise ModelNotFoundError(
            f"model {name!r} has no version {version} in {store.location} "
            f"(no {keys.model_card_key(name, version)})"
        ) from exc
    return ModelVersion(name=name, version=version, onnx_key=card["files"]["onnx"]["key"], card=card)


def list_versions(store: ObjectStore, name: str) -> list[ModelVersion]:
    """Committed versions of ``name`` (those with ``card.json``), oldest first."""
    prefix = keys.model_prefix(name)
    versions = []
    for info in store.list(prefix):
        parts = info.key[len(prefix):].split("/")
        if len(parts) == 2 and parts[0].isdigit() and parts[1] == CARD_JSON:
            versions.append(get_version(store, name, int(parts[0])))
    return sorted(versions, key=lambda mv: mv.version)


def champion_version(store: ObjectStore, name: str) -> int | None:
    """The version the ``champion`` alias points at, or None."""
    pointer = store.read_pointer(keys.alias_key(name, CHAMPION))
    return None if pointer is None else int(pointer.value["version"])


def resolve(store: ObjectStore, name: str, ref: str | int = CHAMPION) -> ModelVersion:
    """Resolve an alias (default ``champion``) or a version number to a committed version.

    Raises ModelNotFoundError with the model, ref and store in the message.
    """
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        return get_version(store, name, int(ref))
    pointer = store.read_pointer(keys.alias_key(name, ref))
    if pointer is None:
        raise ModelNotFoundError(
            f"model {name!r} has no {ref!r} alias in {store.location}: train and promote a "
            f"model first (mlops models list {name})"
        )
    return get_version(store, name, int(pointer.value["version"]))


def load_onnx_bytes(store: ObjectStore, mv: ModelVersion) -> bytes:
    """The version's ONNX bytes, checked against the SHA-256 in its card.

    Raises ModelIntegrityError on mismatch, ObjectNotFoundError if the file is gone.
    """
    data = store.get_bytes(mv.onnx_key)
    expected = mv.card["files"]["onnx"]["sha256"]
    actual = sha256_bytes(data)
    if actual != expected:
        raise ModelIntegrityError(
            f"model {mv.name} v{mv.version}: {mv.onnx_key} has sha256 {actual}, "
            f"card.json records {expected}; refusing to load"
        )
    return data


def load_contract(store: ObjectStore, mv: ModelVersion) -> Contract:
    """The contract the version was trained under (stored beside it)."""
    key = mv.card["files"]["contract"]["key"]
    return parse_contract(store.get_bytes(key).decode("utf-8"), source=key)


def load_card_figure(store: ObjectStore, mv: ModelVersion) -> bytes | None:
    """The version's holdout figure (``card.png``), None for versions registered without one."""
    record = mv.card.get("files", {}).get("figure")
    return store.get_bytes(record["key"]) if record else None


def load_eval_frame(store: ObjectStore, mv: ModelVersion) -> pd.DataFrame:
    """The version's holdout rows (with the native scores)."""
    return get_dataframe(store, mv.card["files"]["eval"]["key"])


def history(store: ObjectStore, name: str) -> list[dict[str, Any]]:
    """Every promotion/rollback event of ``name``, oldest first."""
    return [store.get_json(info.key) for info in store.list(keys.history_prefix(name))]


def decisions_about(store: ObjectStore, name: str, version: int) -> list[dict[str, Any]]:
    """The history events deciding about ``version`` (gate, shadow test, rollback), oldest first."""
    return [e for e in history(store, name) if e.get("candidate_version") == version]


def _append_history(store: ObjectStore, name: str, event: dict[str, Any]) -> str:
    event_id = compact_utc(microseconds=True) + "-" + uuid.uuid4().hex[:8]
    key = keys.history_key(name, event_id)
    # create-only: a history object is never rewritten
    store.write_pointer(key, {**event, "event_key": key}, expected_token=None)
    return key


def allocate_version(store: ObjectStore, name: str, *, run_id: str = "") -> int:
    """Reserve the next version number with a CAS create; concurrent callers get distinct ones."""
    candidate = max(_version_numbers(store, name), default=0) + 1
    for _ in range(_MAX_ALLOCATION_ATTEMPTS):
        try:
            store.write_pointer(
                keys.model_version_marker_key(name, candidate),
                {"version": candidate, "run_id": run_id, "allocated_at": utc_now_iso()},
                expected_token=None,
            )
            return candidate
        except PointerConflictError:
            candidate += 1
    raise ModelError(f"model {name!r}: could not allocate a version after {_MAX_ALLOCATION_ATTEMPTS} tries")


def _move_alias(
    store: ObjectStore, name: str, version: int, previous: int | None, token: str | None,
    decision: PromotionDecision, alias: str = CHAMPION,
) -> PromotionDecision:
    """CAS-move the alias, then record the event; on a lost race record a conflict and raise."""
    try:
        store.write_pointer(
            keys.alias_key(name, alias),
            {"version": version, "previous_version": previous, "updated_at": utc_now_iso(),
             "action": decision.action, "reason": decision.reason},
            expected_token=token,
        )
    except PointerConflictError as exc:
        now = champion_version(store, name)
        conflict = PromotionDecision(**{
            **decision.to_dict(), "action": "conflict", "promoted": False,
            "reason": f"lost the race: {alias} moved from v{previous} to v{now} while "
                      f"evaluating v{version}; nothing changed, re-run the promotion",
            "event_key": None,
        })
        _append_history(store, name, conflict.to_dict())
        raise PromotionConflictError(
            f"model {name!r}: {alias} changed (v{previous} -> v{now}) while v{version} was "
            "being evaluated; promotion not applied, re-run it to compare against the new champion"
        ) from exc
    key = _append_history(store, name, decision.to_dict())
    return PromotionDecision(**{**decision.to_dict(), "event_key": key})
