"""Promotion: the gate that makes a version the champion (floors, then both models scored
through onnx_io on the same fair rows and judged by :mod:`mlops_onprem.promotion`), and rollback.
Every decision is a history event; the alias moves by compare-and-swap
(:func:`~mlops_onprem.registry.versions._move_alias`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlops_onprem import keys
from mlops_onprem.clock import utc_now_iso
from mlops_onprem.contracts import Contract, Task
from mlops_onprem.errors import ModelError, ObjectNotFoundError
from mlops_onprem.onnx_io import (
    FeatureMismatchError,
    build_feeds,
    check_metadata_matches_contract,
    create_session,
    read_metadata,
    run_scores,
)
from mlops_onprem.promotion import floor_failures, judge, paired_improvements
from mlops_onprem.quality import Rows
from mlops_onprem.registry.versions import (
    CHAMPION,
    ModelNotFoundError,
    ModelVersion,
    PromotionDecision,
    _append_history,
    _move_alias,
    get_version,
    load_contract,
    load_eval_frame,
    load_onnx_bytes,
)
from mlops_onprem.store.base import ObjectStore
from mlops_onprem.store.parquet import get_dataframe
from mlops_onprem.threshold import threshold_of
from mlops_onprem.training import encode_labels


class PromotionRejectedError(ModelError):
    """The promotion gate kept the current champion (carries the decision)."""

    def __init__(self, message: str, decision: PromotionDecision) -> None:
        super().__init__(message)
        self.decision = decision


def evaluate_on(
    store: ObjectStore, mv: ModelVersion, eval_frame: pd.DataFrame, contract: Contract, metric: str
) -> float | None:
    """Score ``mv``'s ONNX model on ``eval_frame`` (through onnx_io) and return ``metric``.

    Raises FeatureMismatchError when the model's inputs disagree with ``contract``.
    """
    rows = score_rows(store, mv, eval_frame, contract)
    return rows.metric(Task(contract.label.task), metric)


def score_rows(store: ObjectStore, mv: ModelVersion, eval_frame: pd.DataFrame,
               contract: Contract) -> Rows:
    """Labels and ``mv``'s ONNX scores of ``eval_frame`` (for paired comparisons), with the
    decision threshold its card records (each model judged at its own threshold).

    Raises FeatureMismatchError when the model's inputs disagree with ``contract``, and
    ModelError when the contract declares no label.
    """
    if contract.label is None:
        raise ModelError(f"contract {contract.dataset!r} declares no label: nothing to evaluate")
    session = create_session(load_onnx_bytes(store, mv), name=f"{mv.name} v{mv.version}")
    check_metadata_matches_contract(read_metadata(session, f"{mv.name} v{mv.version} ({mv.onnx_key})"),
                                    contract)
    scores = run_scores(session, build_feeds(eval_frame, contract), contract.label.task)
    y_true = encode_labels(eval_frame[contract.label.name], contract)
    return Rows(y_true, np.asarray(scores.score, dtype=np.float64),
                None if scores.probabilities is None
                else np.asarray(scores.probabilities, dtype=np.float64),
                threshold_of(mv.card))


MIN_FAIR_EVAL_ROWS = 50


def champion_training_keys(store: ObjectStore, champion: ModelVersion,
                           row_key: str) -> set[Any] | None:
    """Row keys of every row ``champion`` was fitted on: its training set (the validated copies
    its card lists, row-key column only) minus its holdout; None when the card predates that
    record."""
    versions = (champion.card.get("data") or {}).get("batch_versions") or []
    if not versions:
        return None
    seen: set[Any] = set()
    for item in versions:
        key = item.get("validated_key")
        if not key:
            return None
        try:
            seen.update(get_dataframe(store, key, columns=[row_key])[row_key].tolist())
        except (ObjectNotFoundError, KeyError):
            return None
    try:  # its own holdout rows were not fitted on
        seen.difference_update(load_eval_frame(store, champion)[row_key].tolist())
    except (ObjectNotFoundError, KeyError):
        return None
    return seen


def promote_if_better(
    store: ObjectStore,
    name: str,
    version: int,
    *,
    margin: float = 0.0,
    eval_data: pd.DataFrame | None = None,
    contract: Contract | None = None,
    metric: str | None = None,
    force: bool = False,
    raise_on_reject: bool = True,
) -> PromotionDecision:
    """Make ``version`` the champion if it passes its spec's floors and beats the champion.

    The gate, in order: the candidate's holdout metrics must pass the spec's ``floors`` (the
    first version included); then both models are scored through onnx_io on the SAME rows
    (default: the candidate's holdout ``eval.parquet`` minus the rows the champion trained on,
    at least ``MIN_FAIR_EVAL_ROWS``, under the candidate's contract) and the
    candidate must improve on ``metric`` (default: its primary metric) by more than ``margin``,
    and, when the spec sets ``promotion_alpha``, significantly (paired bootstrap, one-sided).
    A champion that cannot score those rows (the contract changed) is **not** replaced blind:
    the candidate is refused for manual review (``mlops models promote --force``). ``force``
    skips every check. Every decision goes into the history with both scores, the rows, the
    interval and the reason.

    Returns the :class:`PromotionDecision`. Raises PromotionRejectedError (carrying the
    decision) when the champion is kept and ``raise_on_reject``; PromotionConflictError when
    another promotion moved the champion meanwhile; ModelNotFoundError for unknown versions.
    """
    candidate = get_version(store, name, version)
    pointer = store.read_pointer(keys.alias_key(name, CHAMPION))
    token = pointer.token if pointer else None
    current = int(pointer.value["version"]) if pointer else None
    metric = metric or candidate.card["primary_metric"]["name"]
    spec = candidate.card.get("spec") or {}
    floors = dict(spec.get("floors") or {})
    alpha = spec.get("promotion_alpha")
    base = dict(
        model_name=name, candidate_version=version, champion_version=current, metric=metric,
        candidate_score=None, champion_score=None, margin=margin, eval_rows=0,
        decided_at=utc_now_iso(), alpha=alpha, floors=floors or None,
    )

    def reject(reason: str) -> PromotionDecision:
        decision = PromotionDecision(**base, action="rejected", promoted=False, reason=reason)
        decision = PromotionDecision(**{**decision.to_dict(),
                                        "event_key": _append_history(store, name, decision.to_dict())})
        if raise_on_reject:
            raise PromotionRejectedError(f"model {name!r}: {reason}", decision)
        return decision

    if current == version:
        decision = PromotionDecision(**base, action="already_champion", promoted=False,
                                     reason=f"v{version} is already the champion")
        return PromotionDecision(**{**decision.to_dict(),
                                    "event_key": _append_history(store, name, decision.to_dict())})
    if force:
        decision = PromotionDecision(**base, action="promoted", promoted=True,
                                     reason="forced by operator")
        return _move_alias(store, name, version, current, token, decision)
    missed = floor_failures(candidate.card.get("metrics") or {}, floors)
    if missed:
        return reject(f"v{version} is below its spec's quality floor(s) on the holdout: "
                      + "; ".join(missed) + "; never champion")
    if current is None:
        decision = PromotionDecision(**base, action="promoted", promoted=True,
                                     reason="no champion yet" + (" (floors passed)" if floors else ""))
        return _move_alias(store, name, version, current, token, decision)

    contract = contract or load_contract(store, candidate)
    champion = get_version(store, name, current)
    frame = eval_data
    if frame is None:  # the candidate's holdout, minus the rows the champion trained on
        frame = load_eval_frame(store, candidate)
        seen = champion_training_keys(store, champion, contract.row_key)
        if seen is not None:
            fresh = frame[~frame[contract.row_key].isin(seen)]
            base["excluded_rows"] = len(frame) - len(fresh)
            if len(fresh) < MIN_FAIR_EVAL_ROWS:
                return reject(
                    f"only {len(fresh)} of v{version}'s {len(frame)} holdout rows were not in "
                    f"champion v{current}'s training set (at least {MIN_FAIR_EVAL_ROWS} needed for "
                    "a fair comparison); champion kept until more new labelled data arrives")
            frame = fresh
    base["eval_rows"] = len(frame)
    task = Task(contract.label.task) if contract.label else Task.REGRESSION
    candidate_rows = score_rows(store, candidate, frame, contract)
    base["candidate_score"] = candidate_rows.metric(task, metric)
    try:
        champion_rows = score_rows(store, champion, frame, contract)
    except FeatureMismatchError as exc:
        return reject(
            f"champion v{current} cannot score v{version}'s evaluation rows ({exc}): the contract "
            "changed, so the two cannot be compared on the same rows; refused for manual review "
            f"(compare them yourself, then `mlops models promote {name} {version} --force`)")
    base["champion_score"] = champion_rows.metric(task, metric)
    if base["candidate_score"] is None or base["champion_score"] is None:
        return reject(f"{metric} is undefined on the {len(frame)} evaluation rows; champion kept")
    improvements = paired_improvements(task, metric, candidate_rows, champion_rows,
                                       seed=int(spec.get("seed") or 0))
    verdict = judge(metric, base["candidate_score"], base["champion_score"], margin=margin,
                    alpha=alpha, improvements=improvements)
    base.update(improvement=verdict.improvement, interval=verdict.interval)
    reason = f"v{version} vs champion v{current} on {len(frame)} rows: {verdict.reason}"
    if not verdict.promoted:
        return reject(reason)
    decision = PromotionDecision(**base, action="promoted", promoted=True, reason=reason)
    return _move_alias(store, name, version, current, token, decision)


def rollback(store: ObjectStore, name: str, to_version: int | None = None) -> PromotionDecision:
    """Point ``champion`` back at ``to_version`` (default: the champion before the current one).

    One CAS move plus one history event. Raises ModelNotFoundError when there is no champion,
    no previous champion, or ``to_version`` is not a committed version;
    PromotionConflictError when the champion moved concurrently.
    """
    pointer = store.read_pointer(keys.alias_key(name, CHAMPION))
    if pointer is None:
        raise ModelNotFoundError(f"model {name!r} has no champion in {store.location}: nothing to roll back")
    current = int(pointer.value["version"])
    if to_version is None:
        to_version = pointer.value.get("previous_version")
        if to_version is None:
            raise ModelNotFoundError(
                f"model {name!r}: champion v{current} has no previous champion; pass a version"
            )
    get_version(store, name, int(to_version))  # must be committed
    decision = PromotionDecision(
        model_name=name, action="rollback", promoted=True, candidate_version=int(to_version),
        champion_version=current, metric=None, candidate_score=None, champion_score=None,
        margin=0.0, reason=f"rollback from v{current} to v{to_version}", eval_rows=0,
        decided_at=utc_now_iso(),
    )
    return _move_alias(store, name, int(to_version), current, pointer.token, decision)
