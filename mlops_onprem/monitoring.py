"""Monitoring: pick the scoring window, measure drift and quality, decide, render the report.

Each window raises **signals**, each named in the report with its evidence:

- ``feature_drift``: at least ``min_drifted_features`` features drifted (tests with a promised
  false-alarm rate, see :mod:`mlops_onprem.drift`);
- ``prediction_drift``: a score column drifted (same family of tests, same promise);
- ``quality_drop``: the realized primary metric on delayed labels is significantly worse than
  the holdout (bootstrap of the difference) and by at least ``max_quality_drop``;
- ``estimated_quality_drop``: the label-free estimate of the primary metric (CBPE, on the whole
  window) is worse than the holdout by at least ``estimated_quality_drop``.

A signal in ``alarm_on`` becomes an **alarm** once it was raised in ``persistence`` consecutive
windows (a re-run of the same window counts once); any alarm makes the decision **drift**, and an
alarm in ``retrain_on`` asks for a retrain. A window below the size a drift verdict needs is
**insufficient_data** for the drift signals (the report names the size and the parameter);
quality is still judged on its labels.

The functions here take an :class:`~mlops_onprem.store.base.ObjectStore` (the interface, no
client) or plain data; they import neither Prefect nor a store client.
"""

from __future__ import annotations

import base64
import io
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mlops_onprem import batch_gate, keys, ledger, quality
from mlops_onprem.contracts import Contract, Task
from mlops_onprem.drift import ColumnDrift, DriftResult, DriftThresholds, Status, drift_from_window
from mlops_onprem.errors import MlopsError, MonitoringError, ObjectNotFoundError
from mlops_onprem.monitoring_trend import trend_entry
from mlops_onprem.quality import QualityResult
from mlops_onprem.reference_profile import ReferenceProfile
from mlops_onprem.store.base import ObjectStore
from mlops_onprem.store.parquet import get_dataframe
from mlops_onprem.threshold import threshold_of
from mlops_onprem.window_profile import WindowProfile, WindowProfileError, count_window

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_PNG = "drift.png"
MANIFEST_SUFFIX = "_manifest.json"

DECISION_DRIFT = "drift"
DECISION_NO_DRIFT = "no_drift"
DECISION_INSUFFICIENT = "insufficient_data"


class NoScoringRunsError(MonitoringError):
    """There is no scoring run of the model to monitor in the requested window."""


Signal = Literal["feature_drift", "prediction_drift", "quality_drop", "estimated_quality_drop"]
ALL_SIGNALS: tuple[Signal, ...] = ("feature_drift", "prediction_drift", "quality_drop",
                                   "estimated_quality_drop")


class MonitoringPolicy(BaseModel):
    """Which signals alarm and retrain, and when (per-column drift rules live in ``drift``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drift: DriftThresholds = Field(default_factory=DriftThresholds)
    min_drifted_features: int = Field(
        default=1, ge=1, description="Drifted features (after the correction) that are feature drift.")
    max_quality_drop: float = Field(
        default=0.10, ge=0,
        description="Relative drop of the realized primary metric vs holdout that matters ...")
    quality_alpha: float = Field(
        default=0.05, gt=0, lt=0.5, description="... when significant at this level (one-sided).")
    min_labelled_rows: int = Field(
        default=100, ge=1, description="Fewer labelled rows: realized quality is not judged.")
    estimated_quality_drop: float = Field(
        default=0.10, ge=0,
        description="Relative drop of the label-free estimate vs holdout that is a signal.")
    persistence: int = Field(
        default=1, ge=1, description="Consecutive windows a signal must persist to alarm.")
    alarm_on: list[Signal] = Field(
        default_factory=lambda: list(ALL_SIGNALS), description="Signals that can alarm.")
    retrain_on: list[Signal] = Field(
        default_factory=lambda: list(ALL_SIGNALS), description="Alarms that trigger a retrain.")
    challenger_min_labelled_rows: int = Field(
        default=300, ge=30,
        description="Labelled rows both models scored before a shadow challenger is judged (once).")
    challenger_alpha: float = Field(
        default=0.05, gt=0, lt=0.5,
        description="A shadow challenger is promoted when its gain is significant at this level.")


# --- the window ----------------------------------------------------------------------------
def parse_utc(text: str) -> datetime:
    """ISO-8601 (``Z`` or offset) to an aware UTC datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class Window:
    """The window's batch versions (each once): their merged counts over the reference bins
    (features and score columns) and the predictions (row key and score columns) for quality."""

    counts: WindowProfile
    predictions: pd.DataFrame
    versions: list[dict[str, Any]]
    run_ids: list[str]
    manifest_keys: list[str]
    notes: list[str] = field(default_factory=list)
    counted: int = 0  # batch versions counted from rows in this run (the others were cached)


def select_window(index: dict[str, Any], model_ref: str, *, window_days: int | None,
                  window_batches: int | None, as_of: str | None) -> list[ledger.VersionView]:
    """The scoring batch versions ``model_ref`` scored whose data date lies in the window:
    ``window_days`` days up to ``as_of`` (default: the newest scored data date) and/or the
    newest ``window_batches``. Each version at most once (its latest run)."""
    return ledger.scored_window(index, model_ref, as_of=as_of, last_days=window_days,
                                last_batches=window_batches)


def _latest_per_key(frame: pd.DataFrame, row_key: str) -> tuple[pd.DataFrame, int]:
    deduped = frame.drop_duplicates(row_key, keep="last")
    return deduped.reset_index(drop=True), len(frame) - len(deduped)


def _ranges_overlap(views: list[ledger.VersionView]) -> bool:
    ranges = [((v.validation or {}).get("row_key_min"), (v.validation or {}).get("row_key_max"))
              for v in views]
    return any(batch_gate.key_ranges_overlap(a, b)
               for i, a in enumerate(ranges) for b in ranges[i + 1:])


def load_window(
    store: ObjectStore, views: list[ledger.VersionView], model_ref: str, contract: Contract,
    profile: ReferenceProfile,
) -> Window:
    """The window's counts and predictions.

    Per batch version, its counts over the reference bins are read from the cache beside the
    monitoring reports (:func:`keys.window_profile_key`), or counted once from its validated
    copy and scoring part and cached: the cost of a window is then the batches new to it, not
    its rows. Predictions read only the row key and score columns. When the versions' row-key
    ranges overlap (a ``row_key_overlap`` policy of warn / keep_latest), the features are read
    as rows and a row in two versions counts once, from the newest (noted).
    """
    model_name, model_version = model_ref.rsplit("@", 1)
    score_columns = [c for c in dict.fromkeys(("score", *profile.scores))]
    usable, notes, described, prediction_frames = [], [], [], []
    for view in views:
        if view.validated_key is None:  # rejected when re-validated under a newer contract
            notes.append(f"batch version {view.id} skipped: no longer valid ({view.status})")
            continue
        usable.append(view)
    by_rows = _ranges_overlap(usable)
    merged: WindowProfile | None = None
    feature_frames, counted = [], 0
    for view in usable:
        scored = view.scored_by(model_ref)
        try:
            part = get_dataframe(store, scored["output_key"])
            predictions = part[[c for c in (contract.row_key, *score_columns) if c in part]]
            if by_rows:
                features = get_dataframe(store, view.validated_key,
                                         columns=[contract.row_key, *contract.feature_names])
                feature_frames.append(features)
                rows = len(features)
            else:
                counts, fresh = _batch_counts(store, view, scored, model_name, int(model_version),
                                              contract, profile, predictions)
                counted += fresh
                merged = counts if merged is None else merged.merge(counts)
                rows = counts.n_rows
        except ObjectNotFoundError as exc:
            notes.append(f"batch version {view.id} skipped: {exc}")
            continue
        prediction_frames.append(predictions)
        described.append({"version": view.id, "data_date": view.data_date,
                          "source_key": (view.validation or {}).get("source_key"),
                          "run_id": scored["run_id"], "manifest_key": scored["manifest_key"],
                          "rows": rows})
    predictions = (pd.concat(prediction_frames, ignore_index=True) if prediction_frames
                   else pd.DataFrame(columns=[contract.row_key, *score_columns]))
    predictions, _ = _latest_per_key(predictions, contract.row_key)
    if by_rows:
        features = (pd.concat(feature_frames, ignore_index=True) if feature_frames
                    else pd.DataFrame(columns=[contract.row_key, *contract.feature_names]))
        features, repeated = _latest_per_key(features, contract.row_key)
        if repeated:
            notes.append(f"{repeated} row(s) appeared in more than one batch version; counted "
                         "once (newest version)")
        scores = predictions if set(profile.scores) <= set(predictions.columns) else None
        merged = count_window(profile, features, scores)
        counted = len(described)
    if merged is None:
        merged = count_window(profile, pd.DataFrame(
            {c: pd.Series(dtype="float64") for c in profile.feature_names}))
    return Window(counts=merged, predictions=predictions, versions=described,
                  run_ids=list(dict.fromkeys(d["run_id"] for d in described)),
                  manifest_keys=list(dict.fromkeys(d["manifest_key"] for d in described)),
                  notes=notes, counted=counted)


def _batch_counts(store: ObjectStore, view: ledger.VersionView, scored: dict[str, Any],
                  model_name: str, model_version: int, contract: Contract,
                  profile: ReferenceProfile, predictions: pd.DataFrame) -> tuple[WindowProfile, int]:
    """(the batch's counts, 1 if counted now / 0 if read from the cache)."""
    key = keys.window_profile_key(model_name, model_version, view.id, scored["run_id"])
    try:
        return WindowProfile.from_dict(store.get_json(key), source=key), 0
    except ObjectNotFoundError:
        pass
    except WindowProfileError:
        pass  # a malformed cache entry is recounted and rewritten
    features = get_dataframe(store, view.validated_key, columns=contract.feature_names)
    scores = predictions if set(profile.scores) <= set(predictions.columns) else None
    counts = count_window(profile, features, scores)
    store.put_json(key, counts.to_dict())
    return counts, 1


def load_labels(store: ObjectStore, index: dict[str, Any], contract: Contract,
                row_keys: pd.Series) -> tuple[pd.DataFrame, list[str]]:
    """The delayed labels of the window's rows: only label objects the ledger registered whose
    row-key range overlaps the window's are read; a row labelled twice keeps its latest label.
    Returns (row key + label frame, label object keys read)."""
    columns = [contract.row_key, contract.label_name]
    if row_keys.empty:
        return pd.DataFrame(columns=columns), []
    low, high = row_keys.min(), row_keys.max()
    wanted = set(row_keys.tolist())
    frames, read = [], []
    for key, entry in sorted(index.get("labels", {}).items(), key=lambda item: str(item[1].get("at"))):
        if not batch_gate.key_ranges_overlap((entry.get("row_key_min"), entry.get("row_key_max")),
                                             (low, high)):
            continue
        frame = get_dataframe(store, key, columns=columns)
        frames.append(frame[frame[contract.row_key].isin(wanted)])
        read.append(key)
    if not frames:
        return pd.DataFrame(columns=columns), read
    labels = pd.concat(frames, ignore_index=True).drop_duplicates(contract.row_key, keep="last")
    return labels, read


# --- quality ---------------------------------------------------------------------------------
def _probabilities(predictions: pd.DataFrame, contract: Contract) -> np.ndarray | None:
    task = contract.label.task if contract.label else Task.REGRESSION
    if task == Task.REGRESSION:
        return None
    if task == Task.BINARY:
        score = predictions["score"].to_numpy(dtype=np.float64)
        return np.column_stack([1.0 - score, score])
    return predictions[[f"proba_{c}" for c in contract.label.classes or ()]].to_numpy(
        dtype=np.float64)


def _rows(frame: pd.DataFrame, contract: Contract, y: np.ndarray,
          threshold: float | None) -> quality.Rows:
    return quality.Rows(y, frame["score"].to_numpy(dtype=np.float64),
                        _probabilities(frame, contract), threshold)


def holdout_rows(eval_frame: pd.DataFrame, contract: Contract,
                 threshold: float | None = None) -> quality.Rows:
    """The model's holdout rows (labels and native scores) as :class:`quality.Rows`."""
    from mlops_onprem.training import encode_labels, native_scores_from_eval

    native = native_scores_from_eval(eval_frame)
    return quality.Rows(encode_labels(eval_frame[contract.label_name], contract), native.score,
                        native.probabilities, threshold)


def live_quality(
    predictions: pd.DataFrame, labels: pd.DataFrame, contract: Contract, card: dict[str, Any],
    policy: MonitoringPolicy, *, holdout: quality.Rows | None = None,
    calibration: dict[str, Any] | None = None,
) -> QualityResult:
    """Realized quality of the window's labelled rows vs the holdout (with a bootstrap interval
    when ``holdout`` rows are given, else the holdout value is taken as exact), and the
    label-free estimate over all the window's predictions when ``calibration`` allows it.

    A label the contract does not allow raises the training module's ``TrainingDataError``.
    """
    from mlops_onprem.onnx_io import ScoreArrays
    from mlops_onprem.training import compute_metrics, encode_labels

    primary = card.get("primary_metric", {})
    metric, higher = primary.get("name"), primary.get("higher_is_better")
    held = card.get("metrics", {}).get(metric) if metric else None
    task = contract.label.task if contract.label else Task.REGRESSION
    threshold = threshold_of(card)
    estimate = _estimate(task, metric, higher, held, predictions, contract, calibration, policy,
                         threshold)
    if labels.empty or predictions.empty:
        return QualityResult("no_labels", metric, higher, held, None, None, 0, **estimate)
    joined = predictions.merge(labels, on=contract.row_key, how="inner")
    n = len(joined)
    if n < policy.min_labelled_rows:
        return QualityResult("insufficient_labels", metric, higher, held, None, None, n, **estimate)
    y_true = encode_labels(joined[contract.label_name], contract)
    rows = _rows(joined, contract, y_true, threshold)
    live_metrics = compute_metrics(task, y_true, ScoreArrays(
        score=rows.score, probabilities=rows.probabilities), threshold)
    live = live_metrics.get(metric) if metric else None
    if live is None or held is None or higher is None:
        return QualityResult("insufficient_labels", metric, higher, held, live, None, n,
                             live_metrics, **estimate)
    drop = quality.relative_drop(held, live, higher)
    interval, significant = None, drop > 0
    if holdout is not None and len(holdout):
        drops = quality.bootstrap_drop(task, metric, higher, rows, holdout)
        if drops.size:
            lower = float(np.quantile(drops, policy.quality_alpha))
            interval = (lower, float(np.quantile(drops, 1 - policy.quality_alpha)))
            significant = lower > 0
    status = "degraded" if significant and drop >= policy.max_quality_drop else "ok"
    return QualityResult(status, metric, higher, held, live, drop, n, live_metrics, interval,
                         significant, **estimate)


def _estimate(task: Task, metric: str | None, higher: bool | None, held: float | None,
              predictions: pd.DataFrame, contract: Contract, calibration: dict[str, Any] | None,
              policy: MonitoringPolicy, threshold: float | None) -> dict[str, Any]:
    if calibration is None:
        return {"estimate_note": "no calibration record (model registered before estimates)"}
    if calibration.get("status") == "refused":
        return {"estimated_status": "refused", "estimate_note": calibration.get("reason", "")}
    if predictions.empty:
        return {"estimate_note": "no predictions in the window"}
    raw = _probabilities(predictions, contract)
    probabilities = quality.apply_calibration(calibration, raw)
    estimated = quality.estimate_metrics(
        task, probabilities, threshold=threshold,
        decision_scores=None if raw is None or task != Task.BINARY else raw[:, 1])
    value = estimated.get(metric) if metric else None
    note = (f"CBPE on {len(predictions):,} rows; scores {calibration['status']} on "
            f"{calibration['holdout_rows']} holdout rows (ECE {calibration.get('ece_after', 0):.3f})")
    if value is None or held is None or higher is None:
        return {"estimated_metrics": estimated, "estimated": value, "estimate_note": note}
    drop = quality.relative_drop(held, value, higher)
    return {"estimated_metrics": estimated, "estimated": value, "estimate_note": note,
            "estimated_relative_drop": drop,
            "estimated_status": "degraded" if drop >= policy.estimated_quality_drop else "ok"}


# --- the decision ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """The monitoring verdict: the signals this window raised, the alarms (signals that
    persisted), whether to retrain, each in words."""

    status: str  # drift | no_drift | insufficient_data
    rules_fired: tuple[str, ...]  # the alarms
    reasons: tuple[str, ...]
    signals: tuple[str, ...] = ()
    retrain: bool = False
    pending: tuple[str, ...] = ()  # signals raised but not yet persistent / not alarming

    @property
    def drift(self) -> bool:
        return self.status == DECISION_DRIFT

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "drift": self.drift, "rules_fired": list(self.rules_fired),
                "reasons": list(self.reasons), "signals": list(self.signals),
                "retrain": self.retrain, "pending": list(self.pending)}


def window_signals(drift: DriftResult, quality_result: QualityResult | None,
                   policy: MonitoringPolicy) -> dict[str, str]:
    """The signals this window raised, each with its evidence in words."""
    signals: dict[str, str] = {}
    if not drift.insufficient_data:
        drifted = drift.drifted_features
        if len(drifted) >= policy.min_drifted_features:
            detail = ", ".join(
                f"{c.column} (p={c.adjusted_p_value:.2g}, effect x{c.effect:.1f})"
                for c in drift.features if c.drifted)
            signals["feature_drift"] = (
                f"{len(drifted)}/{len(drift.features)} features drifted at a false-alarm rate of "
                f"{policy.drift.false_alarm_rate:g} ({policy.drift.correction}): {detail}")
        if drift.prediction_drift:
            signals["prediction_drift"] = "prediction drift in " + ", ".join(
                c.column for c in drift.predictions if c.drifted)
    q = quality_result
    if q is not None and q.status == "degraded":
        interval = (f", {1 - policy.quality_alpha:.0%} lower bound of the drop "
                    f"{q.drop_interval[0]:.3g}" if q.drop_interval else "")
        signals["quality_drop"] = (
            f"{q.metric} {q.live:.4g} realized vs {q.holdout:.4g} holdout: {q.relative_drop:.1%} "
            f"worse >= {policy.max_quality_drop:.0%} and significant{interval} "
            f"({q.labelled_rows} labelled rows)")
    if q is not None and q.estimated_status == "degraded":
        signals["estimated_quality_drop"] = (
            f"{q.metric} estimated {q.estimated:.4g} without labels vs {q.holdout:.4g} holdout: "
            f"{q.estimated_relative_drop:.1%} worse >= {policy.estimated_quality_drop:.0%}")
    return signals


def decide(drift: DriftResult, quality_result: QualityResult | None, policy: MonitoringPolicy,
           streaks: dict[str, int] | None = None) -> Decision:
    """Apply the policy to a window: ``streaks`` counts, per signal, the consecutive earlier
    windows that raised it (see :func:`signal_streaks`)."""
    streaks = streaks or {}
    signals = window_signals(drift, quality_result, policy)
    alarms = [s for s in signals if s in policy.alarm_on
              and streaks.get(s, 0) + 1 >= policy.persistence]
    pending = [f"{s} ({streaks.get(s, 0) + 1}/{policy.persistence} windows)"
               if s in policy.alarm_on else f"{s} (not in alarm_on)"
               for s in signals if s not in alarms]
    reasons = [signals[s] for s in alarms]
    retrain = any(s in policy.retrain_on for s in alarms)
    if alarms:
        return Decision(DECISION_DRIFT, tuple(alarms), tuple(reasons), tuple(signals), retrain,
                        tuple(pending))
    if pending:
        reasons.append("signals not alarming yet: " + "; ".join(pending))
    if drift.insufficient_data:
        return Decision(DECISION_INSUFFICIENT, (), (drift.insufficient_reason(), *reasons),
                        tuple(signals), False, tuple(pending))
    reasons.insert(0, f"{len(drift.drifted_features)}/{len(drift.features)} features drifted "
                      f"(< {policy.min_drifted_features}), no prediction drift, no quality drop")
    return Decision(DECISION_NO_DRIFT, (), tuple(reasons), tuple(signals), False, tuple(pending))


def read_signal_history(store: ObjectStore, model_name: str) -> list[dict[str, Any]]:
    """The recent windows' signals of ``model_name`` (newest last)."""
    try:
        return list(store.get_json(keys.monitoring_state_key(model_name)).get("windows", []))
    except ObjectNotFoundError:
        return []


def signal_streaks(history: list[dict[str, Any]], model_version: int,
                   window_end: str | None) -> dict[str, int]:
    """Per signal, how many consecutive earlier windows of ``model_version`` raised it (one
    entry per window end: re-running a window does not count twice)."""
    per_window: dict[str, list[str]] = {}
    for entry in history:
        if entry.get("model_version") == model_version and entry.get("window_end") != window_end:
            per_window[str(entry.get("window_end"))] = list(entry.get("signals", []))
    ordered = [per_window[k] for k in sorted(per_window)]
    streaks: dict[str, int] = {}
    for signal in ALL_SIGNALS:
        count = 0
        for signals in reversed(ordered):
            if signal not in signals:
                break
            count += 1
        streaks[signal] = count
    return streaks


def record_signals(store: ObjectStore, report: MonitoringReport, *, keep: int = 60) -> None:
    """Append this window's signals to the model's history (monitoring runs one at a time)."""
    history = read_signal_history(store, report.model_name)
    history.append({"run_id": report.run_id, "model_version": report.model_version,
                    "window_end": (report.window.get("data_dates") or [None])[-1],
                    "signals": list(report.decision.signals),
                    "decision": report.decision.status, **trend_entry(report)})
    store.put_json(keys.monitoring_state_key(report.model_name), {"windows": history[-keep:]})


def note_outcome(store: ObjectStore, model_name: str, run_id: str, **outcome: Any) -> list[dict[str, Any]]:
    """Add what monitoring run ``run_id`` did next (``retrain=``, ``challenger=``) to its history
    entry, for the trend; returns the history."""
    history = read_signal_history(store, model_name)
    for entry in history:
        if entry.get("run_id") == run_id:
            entry.update({k: v for k, v in outcome.items() if v is not None})
            store.put_json(keys.monitoring_state_key(model_name), {"windows": history})
            break
    return history


# --- the report -----------------------------------------------------------------------------
@dataclass
class MonitoringReport:
    """Everything one monitoring run found."""

    model_name: str
    model_version: int
    dataset: str
    run_id: str
    created_at: str
    window: dict[str, Any]
    drift: DriftResult
    quality: QualityResult | None
    decision: Decision
    policy: MonitoringPolicy
    champion_spec: str | None = None  # spec name the monitored champion was trained with

    def summary(self) -> str:
        """One line for alerts and logs."""
        head = (f"{self.model_name} v{self.model_version}: {self.decision.status} "
                f"({self.drift.n_current} rows, {len(self.window.get('versions', []))} batches)")
        if self.decision.rules_fired:
            head += " - rules fired: " + ", ".join(self.decision.rules_fired)
        return head

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "dataset": self.dataset,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "summary": self.summary(),
            "decision": self.decision.to_dict(),
            "window": self.window,
            "quality": self.quality.to_dict() if self.quality else None,
            "policy": self.policy.model_dump(),
            "drift": self.drift.to_dict(),
        }


def new_monitoring_run_id(now: datetime | None = None) -> str:
    """A sortable, unique monitoring run id: ``mon-<UTC time>-<random>``."""
    now = now or datetime.now(UTC)
    return f"mon-{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


def _pct(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:+.1%}"


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}"


def _column_row(column: ColumnDrift) -> str:
    ks, psi = column.method("ks"), column.method("psi")
    js, unseen = column.method("jensenshannon"), column.method("unseen_share")
    status = {Status.DRIFT: "🔴 **drift**", Status.OK: "ok",
              Status.INSUFFICIENT_DATA: "insufficient data"}[column.status]
    means = (f"{_fmt(column.mean_reference)} → {_fmt(column.mean_current)}"
             if column.mean_reference is not None else "")
    if column.kind == "categorical":
        stats = f"JS {_fmt(js.statistic if js else None)}"
        if unseen and unseen.statistic:
            stats += f"; unseen {unseen.statistic:.1%} ({', '.join(column.unseen_categories)})"
    else:
        stats = (f"KS {_fmt(ks.statistic if ks else None)}; PSI {_fmt(psi.statistic if psi else None)}")
    return (f"| {column.column} | {column.kind} | {stats} | {means} | {column.p_value:.2g} | "
            f"{column.adjusted_p_value:.2g} | x{column.effect:.1f} | {status} |")


_COLUMN_HEADER = ["| column | kind | statistics | mean ref → current | p | corrected p | "
                  "effect / floor | status |", "|---|---|---|---|---|---|---|---|"]


def render_markdown(report: MonitoringReport, chart_png: bytes | None = None) -> str:
    """The human report: decision, rules fired, quality, per-feature table, embedded chart.

    The chart is embedded as a ``data:image/png;base64`` image so it renders in the Prefect UI
    without a reachable URL.
    """
    d = report.drift
    lines = [
        f"# Drift report: {report.model_name} v{report.model_version}",
        "",
        f"- **Decision:** {report.decision.status.upper()}",
        f"- **Alarms:** {', '.join(report.decision.rules_fired) or 'none'}"
        + (" (retrain requested)" if report.decision.retrain else ""),
        *[f"- {reason}" for reason in report.decision.reasons],
        f"- **Window:** {d.n_current} distinct rows from {len(report.window.get('versions', []))} "
        f"batch version(s) of dataset `{report.dataset}`, data dates "
        f"{' to '.join(report.window.get('data_dates') or ['?'])}",
        f"- **Monitoring run:** `{report.run_id}` at {report.created_at}",
        "",
    ]
    q = report.quality
    if q is not None:
        interval = (f"; drop {q.drop_interval[0]:.3g} .. {q.drop_interval[1]:.3g} "
                    f"({1 - 2 * report.policy.quality_alpha:.0%} bootstrap interval)"
                    if q.drop_interval else "")
        lines += [
            "## Model quality",
            "",
            "| | " + f"{q.metric} | relative drop | status | based on |",
            "|---|---|---|---|---|",
            f"| holdout (training) | {_fmt(q.holdout)} | | | card |",
            f"| estimated (no labels) | {_fmt(q.estimated)} | "
            f"{_pct(q.estimated_relative_drop)} | {q.estimated_status} | {q.estimate_note} |",
            f"| realized (delayed labels) | {_fmt(q.live)} | {_pct(q.relative_drop)} | {q.status} | "
            f"{q.labelled_rows:,} labelled rows{interval} |",
            "",
        ]
    t = d.thresholds
    lines += [
        "## Features",
        "",
        f"{len(d.drifted_features)}/{len(d.features)} drifted. A column drifts when its p-value, "
        f"corrected ({t.correction}) across the window's {len(d.features) + len(d.predictions)} "
        f"columns, is below {t.false_alarm_rate:g} and its effect passes a floor (KS "
        f"{t.ks_min_statistic:g} or PSI {t.psi_min:g}; JS {t.js_min:g}): without drift a window "
        f"reports any drifted column at most {t.false_alarm_rate:.0%} of the time. Reference: "
        f"{d.n_reference:,} training rows; the window needs {d.rows_needed or 'more'} rows.",
        "",
        *_COLUMN_HEADER,
    ]
    lines += [_column_row(c) for c in sorted(d.features, key=lambda c: (not c.drifted, -c.severity))]
    if d.predictions:
        lines += ["", "## Predictions", "", *_COLUMN_HEADER, *[_column_row(c) for c in d.predictions]]
    if report.window.get("versions"):
        lines += ["", "## Batches in the window", "", "| landed as | data date | rows | scoring run |",
                  "|---|---|---|---|"]
        lines += [f"| `{v.get('source_key') or v['version']}` | {v['data_date']} | {v['rows']:,} | "
                  f"`{v['run_id']}` |" for v in report.window["versions"]]
    if report.window.get("notes"):
        lines += ["", "## Notes", "", *[f"- {note}" for note in report.window["notes"]]]
    if chart_png:
        encoded = base64.b64encode(chart_png).decode("ascii")
        lines += ["", "## Most drifted features", "",
                  f"![reference vs current bin shares](data:image/png;base64,{encoded})"]
    return "\n".join(lines) + "\n"


def render_drift_chart(drift: DriftResult, *, top_n: int = 6) -> bytes | None:
    """PNG bar charts (reference vs current bin shares) of the ``top_n`` most drifted columns.

    Returns None when there is nothing to draw.
    """
    columns = [c for c in (*drift.features, *drift.predictions) if c.bin_labels]
    columns = sorted(columns, key=lambda c: (not c.drifted, -c.severity))[:top_n]
    if not columns:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    n = len(columns)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.0 * nrows), dpi=80)
    for i, column in enumerate(columns):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        x = np.arange(len(column.bin_labels))
        ax.bar(x - 0.2, column.reference_shares, width=0.4, label="reference", color="#4c72b0")
        ax.bar(x + 0.2, column.current_shares, width=0.4, label="current", color="#dd8452")
        ax.set_xticks(x)
        ax.set_xticklabels(column.bin_labels, rotation=60, ha="right", fontsize=6)
        ax.set_title(f"{column.column} ({column.status.value})", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


# --- one monitoring run ---------------------------------------------------------------------
@dataclass(frozen=True)
class ReportKeys:
    json: str
    markdown: str
    png: str | None


def write_report(
    store: ObjectStore, report: MonitoringReport, *, chart_top_n: int = 6
) -> tuple[ReportKeys, str]:
    """Store the report as JSON, markdown and PNG beside each other; return keys and markdown."""
    png = render_drift_chart(report.drift, top_n=chart_top_n)
    markdown = render_markdown(report, png)
    png_key = None
    if png:
        png_key = keys.monitoring_file_key(report.model_name, report.run_id, REPORT_PNG)
        store.put_bytes(png_key, png, content_type="image/png")
    md_key = keys.monitoring_file_key(report.model_name, report.run_id, REPORT_MD)
    store.put_bytes(md_key, markdown.encode("utf-8"), content_type="text/markdown")
    json_key = keys.monitoring_file_key(report.model_name, report.run_id, REPORT_JSON)
    document = report.to_dict()
    document["files"] = {"json": json_key, "markdown": md_key, "png": png_key}
    store.put_bytes(
        json_key, json.dumps(document, indent=2, default=_json_default).encode("utf-8"),
        content_type="application/json",
    )
    return ReportKeys(json=json_key, markdown=md_key, png=png_key), markdown


def _json_default(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return str(value)


def monitor(
    store: ObjectStore,
    model_name: str,
    dataset: str,
    *,
    window_days: int | None = None,
    window_batches: int | None = None,
    as_of: str | None = None,
    policy: MonitoringPolicy | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
) -> MonitoringReport:
    """One monitoring pass over the batch versions the champion scored in the window (no
    report written, nothing recorded).

    Resolves the champion, loads its contract, card and reference profile, reads the ledger's
    index once, then only the window's objects and the label objects overlapping it; computes
    drift and live quality, and decides. Raises ``ModelNotFoundError`` without a champion and
    :class:`NoScoringRunsError` when the champion scored nothing in the window.
    """
    from mlops_onprem import registry

    policy = policy or MonitoringPolicy()
    now = now or datetime.now(UTC)
    champion = registry.resolve(store, model_name)
    contract = registry.load_contract(store, champion)
    profile_key = champion.card.get("reference_profile_key") or keys.reference_profile_key(
        model_name, champion.version)
    try:
        profile = ReferenceProfile.from_dict(store.get_json(profile_key))
    except ObjectNotFoundError as exc:
        raise MonitoringError(
            f"model {model_name} v{champion.version} has no reference profile at {profile_key}"
        ) from exc
    index = ledger.read_index(store, dataset)
    model_ref = f"{model_name}@{champion.version}"
    views = select_window(index, model_ref, window_days=window_days,
                          window_batches=window_batches, as_of=as_of)
    if not views:
        raise NoScoringRunsError(
            f"model {model_name} v{champion.version} scored no batch of {dataset!r} in the window "
            f"(window_days={window_days}, window_batches={window_batches}, as_of={as_of}; "
            f"ledger {keys.ledger_index_key(dataset)})"
        )
    window = load_window(store, views, model_ref, contract, profile)
    drift = drift_from_window(profile, window.counts, policy.drift)
    quality_result, label_keys = None, []
    if contract.label is not None:
        try:
            labels, label_keys = load_labels(store, index, contract,
                                             window.predictions[contract.row_key])
            holdout = None
            if not labels.empty:
                try:
                    holdout = holdout_rows(registry.load_eval_frame(store, champion), contract,
                                           threshold_of(champion.card))
                except (MlopsError, KeyError) as exc:
                    window.notes.append(f"holdout rows unavailable, drop judged without an "
                                        f"interval: {exc}")
            quality_result = live_quality(window.predictions, labels, contract, champion.card,
                                          policy, holdout=holdout, calibration=profile.calibration)
        except MlopsError as exc:
            window.notes.append(f"live quality not computed: {exc}")
    streaks = signal_streaks(read_signal_history(store, model_name), champion.version,
                             views[-1].data_date)
    decision = decide(drift, quality_result, policy, streaks)
    return MonitoringReport(
        model_name=model_name,
        model_version=champion.version,
        dataset=dataset,
        run_id=run_id or new_monitoring_run_id(now),
        created_at=now.isoformat().replace("+00:00", "Z"),
        window={
            "versions": window.versions,
            "run_ids": window.run_ids,
            "manifest_keys": window.manifest_keys,
            "label_keys": label_keys,
            "feature_rows": window.counts.n_rows,
            "batches_counted": window.counted,
            "prediction_rows": len(window.predictions),
            "window_days": window_days,
            "window_batches": window_batches,
            "as_of": as_of,
            "data_dates": [views[0].data_date, views[-1].data_date],
            "notes": window.notes,
        },
        drift=drift,
        quality=quality_result,
        decision=decision,
        policy=policy,
        champion_spec=champion.card.get("spec", {}).get("name"),
    )


def monitored_events(report: MonitoringReport) -> list[dict[str, Any]]:
    """``monitored`` ledger events: which batch versions this monitoring run counted."""
    return [ledger.make_event("monitored", item["version"], identity=(report.run_id,),
                              monitoring_run_id=report.run_id, model_version=report.model_version,
                              decision=report.decision.status)
            for item in report.window.get("versions", [])]
