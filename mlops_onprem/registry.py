"""The model registry, kept in the object store.

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
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from mlops_onprem import keys
from mlops_onprem.contracts import Contract, Task, parse_contract
from mlops_onprem.errors import ModelError, ObjectNotFoundError, PointerConflictError
from mlops_onprem.model_card import code_version as current_code_version
from mlops_onprem.model_card import package_versions, render_card_markdown, utc_now
from mlops_onprem.model_insights import holdout_figure
from mlops_onprem.model_spec import HIGHER_IS_BETTER
from mlops_onprem.onnx_export import ParityError, ParityResult, check_parity, set_metadata_props
from mlops_onprem.onnx_io import (
    META_PREFIX,
    ML_OPSET,
    ONNX_OPSET,
    FeatureMismatchError,
    ScoreArrays,
    build_feeds,
    check_metadata_matches_contract,
    create_session,
    read_metadata,
    run_scores,
)
from mlops_onprem.promotion import floor_failures, judge, paired_improvements
from mlops_onprem.quality import Rows
from mlops_onprem.reference_profile import (
    ReferenceProfile,
    build_reference_profile,
    profile_scores,
)
from mlops_onprem.store.base import ObjectStore, sha256_bytes
from mlops_onprem.store.parquet import get_dataframe, put_dataframe
from mlops_onprem.threshold import threshold_of
from mlops_onprem.training import (
    EVAL_FILE,
    ONNX_FILE,
    REFERENCE_FEATURES_FILE,
    Candidate,
    encode_labels,
    native_scores_from_eval,
)

CHAMPION = "champion"
CARD_JSON = "card.json"
CARD_MD = "card.md"
CARD_FIGURE = "card.png"
CONTRACT_FILE = "contract.yaml"
_MAX_ALLOCATION_ATTEMPTS = 1000


class ModelNotFoundError(ModelError):
    """No such model version, alias or champion."""


class ModelIntegrityError(ModelError):
    """Stored model bytes do not match the SHA-256 recorded in the model card."""


class PromotionConflictError(ModelError):
    """Another promotion moved the alias while this one was evaluating; nothing was changed."""


class PromotionRejectedError(ModelError):
    """The promotion gate kept the current champion (carries the decision)."""

    def __init__(self, message: str, decision: PromotionDecision) -> None:
        super().__init__(message)
        self.decision = decision


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
    event_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:8]
    key = keys.history_key(name, event_id)
    # create-only: a history object is never rewritten
    store.write_pointer(key, {**event, "event_key": key}, expected_token=None)
    return key


# --- registering --------------------------------------------------------------------------
def allocate_version(store: ObjectStore, name: str, *, run_id: str = "") -> int:
    """Reserve the next version number with a CAS create; concurrent callers get distinct ones."""
    candidate = max(_version_numbers(store, name), default=0) + 1
    for _ in range(_MAX_ALLOCATION_ATTEMPTS):
        try:
            store.write_pointer(
                keys.model_version_marker_key(name, candidate),
                {"version": candidate, "run_id": run_id, "allocated_at": utc_now()},
                expected_token=None,
            )
            return candidate
        except PointerConflictError:
            candidate += 1
    raise ModelError(f"model {name!r}: could not allocate a version after {_MAX_ALLOCATION_ATTEMPTS} tries")


def check_candidate_parity(
    store: ObjectStore, candidate: Candidate, contract: Contract, *, tolerance: float | None = None
) -> ParityResult:
    """Run the parity gate on a staged candidate (its ONNX model vs its stored native scores).

    Raises ParityError when the gate fails.
    """
    onnx_bytes = store.get_bytes(candidate.staged[ONNX_FILE])
    frame = get_dataframe(store, candidate.staged[EVAL_FILE])
    tolerance = candidate.spec.get("parity_tolerance", 1e-5) if tolerance is None else tolerance
    return check_parity(
        onnx_bytes, build_feeds(frame, contract), native_scores_from_eval(frame), contract,
        tolerance=tolerance,
    )


def _profile_scores(scores: ScoreArrays, task: Task) -> np.ndarray:
    if task == Task.MULTICLASS and scores.probabilities is not None:
        return np.asarray(scores.probabilities, dtype=np.float64)
    return scores.score


def reference_profile_for(store: ObjectStore, candidate: Candidate, contract: Contract,
                          eval_frame: pd.DataFrame, scores: ScoreArrays) -> ReferenceProfile:
    """The monitoring reference of a candidate: features profiled on every training row (staged
    by training), score columns on the holdout (out-of-sample scores of the exported model), and
    the holdout's calibration check behind label-free estimates."""
    from mlops_onprem.quality import check_calibration

    task = Task(candidate.task)
    score_values = _profile_scores(scores, task)
    calibration = check_calibration(
        task, encode_labels(eval_frame[contract.label_name], contract),
        None if task == Task.REGRESSION else np.asarray(scores.probabilities), seed=candidate.seed)
    staged = candidate.staged.get(REFERENCE_FEATURES_FILE)
    if staged is None:  # a candidate staged before training profiled its rows: holdout only
        return build_reference_profile(eval_frame, contract, score_values, calibration=calibration)
    features = ReferenceProfile.from_dict(store.get_json(staged))
    return replace(features, scores=profile_scores(contract, score_values),
                   score_rows=len(score_values), calibration=calibration)


def register_candidate(
    store: ObjectStore,
    candidate: Candidate,
    contract: Contract,
    parity: ParityResult,
    *,
    flow_run_id: str | None = None,
    code_version: str | None = None,
    invocation: dict[str, Any] | None = None,
) -> ModelVersion:
    """Turn a staged candidate that passed parity into a new immutable version.

    ``invocation`` (the training flow's parameters: spec, contract path, promotion margin,
    window) is recorded in the card, so a retrain repeats exactly how this version was made.

    Allocates the version (CAS), stamps it into the ONNX metadata, writes the files, the
    reference profile and ``card.md``, then ``card.json`` last; removes the staging objects.
    Raises ParityError if ``parity`` did not pass (registration refused).
    """
    if not parity.passed:
        raise ParityError(
            f"model {candidate.model_name}: parity gate failed (diff {parity.gate_diff:.3e} > "
            f"{parity.tolerance:.1e}); registration refused", parity,
        )
    name = candidate.model_name
    version = allocate_version(store, name, run_id=candidate.run_id)
    stamps = {META_PREFIX + "model_version": str(version)}
    if candidate.decision_threshold:  # for consumers reading the ONNX file alone
        stamps[META_PREFIX + "decision_threshold"] = repr(float(candidate.decision_threshold["value"]))
    onnx_bytes = set_metadata_props(store.get_bytes(candidate.staged[ONNX_FILE]), stamps)
    files: dict[str, dict[str, Any]] = {}

    def put(role: str, filename: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        key = keys.model_file_key(name, version, filename)
        info = store.put_bytes(key, data, content_type=content_type)
        files[role] = {"key": key, "sha256": sha256_bytes(data), "bytes": info.size}

    put("onnx", ONNX_FILE, onnx_bytes)
    for filename, key in candidate.staged.items():
        if filename not in (ONNX_FILE, EVAL_FILE, REFERENCE_FEATURES_FILE):
            put("native", filename, store.get_bytes(key))
    put("contract", CONTRACT_FILE, contract.to_yaml().encode("utf-8"), "application/yaml")
    eval_frame = get_dataframe(store, candidate.staged[EVAL_FILE])
    eval_key = keys.model_file_key(name, version, EVAL_FILE)
    files["eval"] = {"key": eval_key, "bytes": put_dataframe(store, eval_key, eval_frame).size}
    native = native_scores_from_eval(eval_frame)
    figure = holdout_figure(
        Task(candidate.task), encode_labels(eval_frame[contract.label_name], contract),
        native.score, native.probabilities,
        threshold=(candidate.decision_threshold or {}).get("value"),
        classes=list(contract.label.classes or ()) or None)
    if figure:
        put("figure", CARD_FIGURE, figure, "image/png")

    task = Task(candidate.task)
    scores = run_scores(create_session(onnx_bytes, name=f"{name} v{version}"),
                        build_feeds(eval_frame, contract), task)
    profile = reference_profile_for(store, candidate, contract, eval_frame, scores)
    profile_key = keys.reference_profile_key(name, version)
    store.put_json(profile_key, profile.to_dict())
    files["reference_profile"] = {"key": profile_key}

    card = {
        "name": name,
        "version": version,
        "created_at": utc_now(),
        "task": candidate.task,
        "spec": candidate.spec,
        "params": candidate.params,
        "metrics": candidate.metrics,
        "decision_threshold": candidate.decision_threshold,
        "feature_importance": candidate.feature_importance,
        "primary_metric": {
            "name": candidate.primary_metric,
            "higher_is_better": HIGHER_IS_BETTER[candidate.primary_metric],
        },
        "parity": parity.to_dict(),
        "data": candidate.data,
        "contract": candidate.contract,
        "lineage": {
            "seed": candidate.seed,
            "code_version": code_version or current_code_version(),
            "flow_run_id": flow_run_id,
            "training_run_id": candidate.run_id,
            "packages": package_versions(),
            "data_sha256_method": (
                "sha256 of the sorted lines '<object key>\\t<object sha256>\\n' of the "
                "validated Parquet objects read"
            ),
        },
        "timings": {"fit_seconds": candidate.fit_seconds, "export_seconds": candidate.export_seconds},
        "opsets": {"": ONNX_OPSET, "ai.onnx.ml": ML_OPSET},
        "reference_profile_key": profile_key,
        "invocation": invocation or {},
        "monitoring": {
            "reference_rows": profile.n_rows, "score_rows": profile.score_rows,
            "calibration": {k: v for k, v in (profile.calibration or {}).items() if k != "maps"},
        },
        "files": files,
    }
    card_md = render_card_markdown(card, figure_png=figure)
    put("card_md", CARD_MD, card_md.encode("utf-8"), "text/markdown")
    card["files"] = files
    store.put_json(keys.model_card_key(name, version), card)  # commit marker: last
    for key in candidate.staged.values():
        store.delete(key)
    store.delete(keys.model_staging_key(name, candidate.run_id, "candidate.json"))
    return ModelVersion(name=name, version=version, onnx_key=files["onnx"]["key"], card=card)


# --- promotion ----------------------------------------------------------------------------
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


def _move_alias(
    store: ObjectStore, name: str, version: int, previous: int | None, token: str | None,
    decision: PromotionDecision, alias: str = CHAMPION,
) -> PromotionDecision:
    """CAS-move the alias, then record the event; on a lost race record a conflict and raise."""
    try:
        store.write_pointer(
            keys.alias_key(name, alias),
            {"version": version, "previous_version": previous, "updated_at": utc_now(),
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
        decided_at=utc_now(), alpha=alpha, floors=floors or None,
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
        decided_at=utc_now(),
    )
    return _move_alias(store, name, int(to_version), current, pointer.token, decision)
