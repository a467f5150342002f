"""The shadow challenger: a version scored beside the champion on live batches and judged on
the delayed labels of the very same rows, then promoted or retired once.

Layout (keys in :mod:`mlops_onprem.keys`)::

    models/<name>/aliases/challenger.json         CAS pointer {"version": n | null, ...}
    shadow/<name>/<version>/<run_id>/part-*.parquet the challenger's predictions of one champion
                                                  scoring run's batches (never delivered)
    shadow/<name>/<version>/<run_id>/_shadow.json  written last, create-only: which champion
                                                  run and parts they shadow

Life: ``set_challenger`` (a committed version that passes its floors and reads the champion's
contract) -> every ``score-batch`` run that scores new batches with the champion also scores
them with the challenger (:func:`shadow_score`) -> every ``monitor-model`` run pairs both
models' predictions of the rows whose labels have arrived (:func:`paired_live_rows`) and
:func:`judge_challenger` decides.

The test is **fixed-sample and decided once**: nothing is decided while fewer than
``min_rows`` labelled rows pair up (the report shows the running estimate, never acted on);
at the first monitoring run with at least ``min_rows``, the challenger's improvement on the
champion's primary metric (positive = better) must exceed its spec's ``promotion_margin`` with
the one-sided ``1 - alpha`` paired-bootstrap lower bound above zero. Then it is promoted through
the same CAS move and history as the gate (:func:`registry._move_alias`) or retired; either way
the alias is cleared, so there is one look and the false-promotion rate stays at ``alpha``.
Only rows the current champion scored count: a champion that moves restarts the count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_onprem import keys, ledger
from mlops_onprem.clock import utc_now_iso
from mlops_onprem.contracts import Contract, Task
from mlops_onprem.errors import ModelError, ObjectNotFoundError, PointerConflictError
from mlops_onprem.onnx_io import check_metadata_matches_contract, create_session, read_metadata
from mlops_onprem.promotion import floor_failures, judge, paired_improvements
from mlops_onprem.quality import Rows
from mlops_onprem.registry import versions as registry  # storage rules only: no training code
from mlops_onprem.registry.versions import _append_history
from mlops_onprem.scoring import InputPartition, ModelRef, score_object
from mlops_onprem.store.base import ObjectStore
from mlops_onprem.store.parquet import get_dataframe
from mlops_onprem.threshold import threshold_of

CHALLENGER = "challenger"
DEFAULT_MIN_ROWS = 300
DEFAULT_ALPHA = 0.05


class ChallengerError(ModelError):
    """A challenger cannot be set (unknown, champion itself, below floors, other contract)."""


def _pointer(store: ObjectStore, name: str):
    return store.read_pointer(keys.alias_key(name, CHALLENGER))


def challenger_version(store: ObjectStore, name: str) -> int | None:
    """The version the ``challenger`` alias points at, or None."""
    pointer = _pointer(store, name)
    version = None if pointer is None else pointer.value.get("version")
    return None if version is None else int(version)


def _write(store: ObjectStore, name: str, value: dict[str, Any], token: str | None,
           event: dict[str, Any]) -> dict[str, Any]:
    try:
        store.write_pointer(keys.alias_key(name, CHALLENGER), {**value, "updated_at": utc_now_iso()},
                            expected_token=token)
    except PointerConflictError as exc:
        raise ChallengerError(
            f"model {name!r}: the challenger alias changed meanwhile; nothing applied, re-run "
            "(mlops models challenger status " + name + ")") from exc
    return {**event, "event_key": _append_history(store, name, event)}


def set_challenger(store: ObjectStore, name: str, version: int, *, reason: str = "") -> dict[str, Any]:
    """Deploy committed ``version`` as the shadow challenger of ``name``'s champion.

    Raises ChallengerError when there is no champion, ``version`` is the champion, misses its
    spec's floors or cannot read the champion's contract (it could not score the same batches);
    ModelNotFoundError for an unknown version. Replacing a challenger is recorded as such.
    """
    candidate = registry.get_version(store, name, version)
    champion = registry.champion_version(store, name)
    if champion is None:
        raise ChallengerError(f"model {name!r} has no champion to challenge: promote one first")
    if champion == version:
        raise ChallengerError(f"model {name!r}: v{version} is the champion, not a challenger")
    missed = floor_failures(candidate.card.get("metrics") or {},
                            dict((candidate.card.get("spec") or {}).get("floors") or {}))
    if missed:
        raise ChallengerError(f"model {name!r} v{version} is below its spec's floor(s): "
                              + "; ".join(missed))
    contract = registry.load_contract(store, registry.get_version(store, name, champion))
    session = create_session(registry.load_onnx_bytes(store, candidate), name=f"{name} v{version}")
    try:
        check_metadata_matches_contract(
            read_metadata(session, f"{name} v{version} ({candidate.onnx_key})"), contract)
    except Exception as exc:  # FeatureMismatchError: it could not score the champion's batches
        raise ChallengerError(
            f"model {name!r} v{version} cannot score batches under champion v{champion}'s "
            f"contract {contract.dataset} v{contract.version}: {exc}") from exc
    pointer = _pointer(store, name)
    previous = None if pointer is None else pointer.value.get("version")
    event = {"model_name": name, "action": "challenger_set", "candidate_version": version,
             "champion_version": champion, "replaced_challenger": previous,
             "reason": reason or f"v{version} shadows champion v{champion}",
             "decided_at": utc_now_iso()}
    return _write(store, name, {"version": version, "champion_version": champion,
                                "set_at": utc_now_iso()}, pointer.token if pointer else None, event)


def clear_challenger(store: ObjectStore, name: str, *, reason: str = "cleared by operator",
                     action: str = "challenger_cleared",
                     evidence: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Remove the challenger (its shadow predictions stay as evidence); None when there was none."""
    pointer = _pointer(store, name)
    version = None if pointer is None else pointer.value.get("version")
    if version is None:
        return None
    event = {"model_name": name, "action": action, "candidate_version": int(version),
             "champion_version": pointer.value.get("champion_version"), "reason": reason,
             "decided_at": utc_now_iso(), **(evidence or {})}
    return _write(store, name, {"version": None, "previous_version": int(version)},
                  pointer.token, event)


# --- shadow scoring ----------------------------------------------------------------------
def shadow_score(
    store: ObjectStore, partitions: list[dict[str, Any]], challenger: ModelRef, contract: Contract,
    *, champion_manifest_key: str, scratch_dir: Path, batch_rows: int, ort_threads: int = 1,
) -> dict[str, Any]:
    """Score the partitions a champion run scored with ``challenger`` into ``shadow/...``.

    Idempotent per (challenger version, run): an existing ``_shadow.json`` is returned as is.
    A partition that fails is recorded, not raised (the champion's delivery is not at stake).
    Returns the shadow manifest.
    """
    champion_run = store.get_json(champion_manifest_key)
    run_id = champion_run["run_id"]
    manifest_key = keys.shadow_manifest_key(challenger.name, challenger.version, run_id)
    try:
        return store.get_json(manifest_key)
    except ObjectNotFoundError:
        pass
    champion_parts = {o["input_key"]: o["key"] for o in champion_run.get("outputs", [])}
    outputs, failed = [], []
    for partition in partitions:
        if partition["key"] not in champion_parts:
            continue  # the champion did not score it: nothing to pair with
        item = InputPartition(partition["key"], partition["etag"], int(partition["size"]))
        try:
            record = score_object(
                store, item, challenger, contract, run_id=run_id, scratch_dir=scratch_dir,
                batch_rows=batch_rows, intra_op_threads=ort_threads,
                part_key=lambda part: keys.shadow_part_key(challenger.name, challenger.version,
                                                           run_id, part))
        except Exception as exc:  # noqa: BLE001 - recorded in the shadow manifest
            failed.append({"key": item.key, "error": f"{type(exc).__name__}: {exc}"})
            continue
        outputs.append({"input_key": item.key, "version": partition.get("version"),
                        "key": record["output_key"], "rows": record["rows"],
                        "champion_key": champion_parts[item.key]})
    manifest = {
        "model_name": challenger.name, "challenger_version": challenger.version,
        "champion_version": int(champion_run["model_version"]), "run_id": run_id,
        "champion_manifest_key": champion_manifest_key, "outputs": outputs, "failed": failed,
        "rows": sum(o["rows"] for o in outputs), "created_at": utc_now_iso(), "key": manifest_key,
    }
    try:
        store.write_pointer(manifest_key, manifest, expected_token=None)  # create-only, last
    except PointerConflictError:
        return store.get_json(manifest_key)  # a concurrent attempt published the same run
    return manifest


# --- the live comparison -------------------------------------------------------------------
def shadow_manifests(store: ObjectStore, name: str, version: int) -> list[dict[str, Any]]:
    """Every complete shadow run of challenger ``version``, oldest key first."""
    return [store.get_json(info.key) for info in store.list(keys.shadow_model_prefix(name, version))
            if info.key.endswith("/_shadow.json")]


def _scores(frame: pd.DataFrame, contract: Contract, task: Task) -> tuple[np.ndarray, np.ndarray | None]:
    score = frame["score"].to_numpy(dtype=np.float64)
    if task == Task.REGRESSION:
        return score, None
    if task == Task.BINARY:
        return score, np.column_stack([1.0 - score, score])
    return score, frame[[f"proba_{c}" for c in contract.label.classes or ()]].to_numpy(np.float64)


@dataclass(frozen=True)
class PairedRows:
    """Both models' scores of the same labelled rows."""

    challenger: Rows
    champion: Rows
    shadow_runs: int
    shadow_rows: int


def paired_live_rows(store: ObjectStore, name: str, dataset: str, contract: Contract,
                     challenger_card: dict[str, Any], champion_card: dict[str, Any],
                     challenger: int, champion: int) -> PairedRows:
    """The rows both models scored (champion ``champion``'s runs only) whose labels arrived."""
    from mlops_onprem.monitoring import load_labels
    from mlops_onprem.training import encode_labels

    task = Task(contract.label.task)
    columns = [contract.row_key, "score"] + (
        [f"proba_{k}" for k in contract.label.classes or ()] if task == Task.MULTICLASS else [])
    frames, runs = [], 0
    for manifest in shadow_manifests(store, name, challenger):
        if int(manifest["champion_version"]) != champion:
            continue
        runs += 1
        for output in manifest["outputs"]:
            mine = get_dataframe(store, output["key"], columns=columns)
            theirs = get_dataframe(store, output["champion_key"], columns=columns)
            frames.append(mine.merge(theirs, on=contract.row_key, suffixes=("", "__champion")))
    if not frames:
        empty = Rows(np.empty(0), np.empty(0))
        return PairedRows(empty, empty, runs, 0)
    both = pd.concat(frames, ignore_index=True).drop_duplicates(contract.row_key, keep="last")
    labels, _ = load_labels(store, ledger.read_index(store, dataset), contract, both[contract.row_key])
    joined = both.merge(labels, on=contract.row_key, how="inner")
    y = encode_labels(joined[contract.label_name], contract)
    champion_view = joined[[contract.row_key] + [c for c in joined.columns if c.endswith("__champion")]]
    champion_view = champion_view.rename(columns=lambda c: c.removesuffix("__champion"))
    own = _scores(joined, contract, task)
    other = _scores(champion_view, contract, task)
    return PairedRows(Rows(y, own[0], own[1], threshold_of(challenger_card)),
                      Rows(y, other[0], other[1], threshold_of(champion_card)), runs, len(both))


class ChallengerStatus(StrEnum):
    """Where a shadow test stands: no challenger, collecting labelled rows, decided (promoted,
    retired) or, judged without deciding, what the decision would be."""

    NONE = "none"
    COLLECTING = "collecting"
    PROMOTED = "promoted"
    RETIRED = "retired"
    WOULD_PROMOTE = "would_promote"
    WOULD_RETIRE = "would_retire"


@dataclass
class ChallengerReport:
    """Where the shadow test stands (``status``: a :class:`ChallengerStatus`)."""

    model_name: str
    status: ChallengerStatus
    challenger_version: int | None = None
    champion_version: int | None = None
    metric: str | None = None
    labelled_rows: int = 0
    min_rows: int = DEFAULT_MIN_ROWS
    shadow_runs: int = 0
    shadow_rows: int = 0
    challenger_score: float | None = None
    champion_score: float | None = None
    improvement: float | None = None
    interval: tuple[float, float] | None = None
    alpha: float = DEFAULT_ALPHA
    margin: float = 0.0
    reason: str = ""
    event_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_challenger(store: ObjectStore, name: str, dataset: str, *,
                     min_rows: int = DEFAULT_MIN_ROWS, alpha: float = DEFAULT_ALPHA,
                     decide: bool = True) -> ChallengerReport:
    """Compare challenger and champion on the labelled rows both scored; with ``decide``, once
    ``min_rows`` pair up, promote the challenger (CAS move + history, as the gate) or retire it.

    Raises PromotionConflictError when the champion moved while judging (nothing applied).
    """
    pointer = _pointer(store, name)
    version = None if pointer is None else pointer.value.get("version")
    if version is None:
        return ChallengerReport(name, ChallengerStatus.NONE, min_rows=min_rows, alpha=alpha,
                                reason="no challenger set")
    champion_pointer = store.read_pointer(keys.alias_key(name, registry.CHAMPION))
    champion = int(champion_pointer.value["version"])
    challenger_mv = registry.get_version(store, name, int(version))
    champion_mv = registry.get_version(store, name, champion)
    contract = registry.load_contract(store, champion_mv)
    metric = champion_mv.card["primary_metric"]["name"]
    spec = challenger_mv.card.get("spec") or {}
    margin = float(spec.get("promotion_margin") or 0.0)
    report = ChallengerReport(name, ChallengerStatus.COLLECTING, int(version), champion, metric,
                              min_rows=min_rows, alpha=alpha, margin=margin)
    if champion == report.challenger_version:  # promoted meanwhile by other means
        if decide:
            event = clear_challenger(store, name, reason=f"v{version} is already the champion")
            report.event_key = event and event["event_key"]
        report.status, report.reason = ChallengerStatus.RETIRED, f"v{version} became champion by other means"
        return report
    paired = paired_live_rows(store, name, dataset, contract, challenger_mv.card, champion_mv.card,
                              int(version), champion)
    report.labelled_rows, report.shadow_runs = len(paired.challenger), paired.shadow_runs
    report.shadow_rows = paired.shadow_rows
    task = Task(contract.label.task)
    if len(paired.challenger):
        report.challenger_score = paired.challenger.metric(task, metric)
        report.champion_score = paired.champion.metric(task, metric)
    if report.labelled_rows < min_rows or report.challenger_score is None \
            or report.champion_score is None:
        report.reason = (f"{report.labelled_rows} of {min_rows} labelled rows scored by both "
                         f"v{version} and champion v{champion}: no decision yet")
        return report
    improvements = paired_improvements(task, metric, paired.challenger, paired.champion,
                                       seed=int(spec.get("seed") or 0))
    verdict = judge(metric, report.challenger_score, report.champion_score, margin=margin,
                    alpha=alpha, improvements=improvements)
    report.improvement, report.interval = verdict.improvement, verdict.interval
    report.reason = (f"shadow challenger v{version} vs champion v{champion} on "
                     f"{report.labelled_rows} live labelled rows: {verdict.reason}")
    if not decide:
        report.status = (ChallengerStatus.WOULD_PROMOTE if verdict.promoted
                         else ChallengerStatus.WOULD_RETIRE)
        return report
    evidence = {"metric": metric, "candidate_score": report.challenger_score,
                "champion_score": report.champion_score, "eval_rows": report.labelled_rows,
                "improvement": report.improvement, "interval": report.interval, "alpha": alpha,
                "margin": margin}
    if verdict.promoted:
        decision = registry.PromotionDecision(
            model_name=name, action="promoted", promoted=True, candidate_version=int(version),
            champion_version=champion, metric=metric, candidate_score=report.challenger_score,
            champion_score=report.champion_score, margin=margin, reason=report.reason,
            eval_rows=report.labelled_rows, decided_at=utc_now_iso(), alpha=alpha,
            improvement=report.improvement, interval=report.interval)
        moved = registry._move_alias(store, name, int(version), champion, champion_pointer.token,
                                     decision)
        clear_challenger(store, name, reason="promoted to champion", action="challenger_promoted",
                         evidence=evidence)
        report.status, report.event_key = ChallengerStatus.PROMOTED, moved.event_key
    else:
        event = clear_challenger(store, name, reason=report.reason, action="challenger_retired",
                                 evidence=evidence)
        report.status, report.event_key = ChallengerStatus.RETIRED, event and event["event_key"]
    return report
