"""Monitoring's decision, pure: the policy (which signals alarm and retrain, and when), the
signals a window raises, each with its evidence in words, and the verdict once persistence is
counted (:func:`decide`; the streaks come from :mod:`mlops_onprem.monitoring.history`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlops_onprem.drift import DriftResult, DriftThresholds
from mlops_onprem.quality import QualityResult, QualityStatus


class Outcome(StrEnum):
    """A monitoring window's decision (the ``decision`` of a report, an event, the history)."""

    DRIFT = "drift"
    NO_DRIFT = "no_drift"
    INSUFFICIENT_DATA = "insufficient_data"


DECISION_DRIFT = Outcome.DRIFT
DECISION_NO_DRIFT = Outcome.NO_DRIFT
DECISION_INSUFFICIENT = Outcome.INSUFFICIENT_DATA


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



@dataclass(frozen=True)
class Decision:
    """The monitoring verdict: the signals this window raised, the alarms (signals that
    persisted), whether to retrain, each in words."""

    status: Outcome
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
    if q is not None and q.status == QualityStatus.DEGRADED:
        interval = (f", {1 - policy.quality_alpha:.0%} lower bound of the drop "
                    f"{q.drop_interval[0]:.3g}" if q.drop_interval else "")
        signals["quality_drop"] = (
            f"{q.metric} {q.live:.4g} realized vs {q.holdout:.4g} holdout: {q.relative_drop:.1%} "
            f"worse >= {policy.max_quality_drop:.0%} and significant{interval} "
            f"({q.labelled_rows} labelled rows)")
    if q is not None and q.estimated_status == QualityStatus.DEGRADED:
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
