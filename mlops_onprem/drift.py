"""Drift of a window against the reference profile, with a promised false-alarm rate.

Every column is tested on counts over the reference's bins (:mod:`mlops_onprem.window_profile`),
so a window can be counted batch by batch and merged:

- numeric features and score columns: the two-sample KS test at the reference's fine grid
  (nulls counted as the lowest value), exact up to a stated bound and with a conservative
  p-value; PSI over the coarse reference-quantile bins is the effect size. (A chi-square test
  over reference-quantile bins was measured 1.2-3x over its nominal false-alarm rate, because
  the bins come from the reference itself, so it does not decide.)
- categorical features: chi-square over the union of categories; Jensen-Shannon distance as
  the effect size; rows in categories the reference never saw are drift by themselves once
  they make up ``unseen_share`` of the window and ``unseen_min_rows`` rows.

**The promise.** Across all columns of a window the p-values are corrected for multiple testing
(``correction``: Holm by default, Bonferroni or Benjamini-Hochberg), so when nothing drifted the
chance that a window reports any drifted column is at most ``false_alarm_rate`` (default 1 %)
at every sample size. A column drifts only when its corrected p-value is below
``false_alarm_rate`` **and** its effect passes a floor (PSI, KS statistic or JS distance), so a
huge window does not alarm on a trivial shift. Below the window size at which a shift of
``detectable_ks_statistic`` (0.2, about a 0.5 sd mean shift) would be caught with ``power``, the
verdict is "insufficient data" and the report says how many rows are needed.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mlops_onprem import drift_stats
from mlops_onprem.errors import MonitoringError
from mlops_onprem.reference_profile import CategoricalProfile, NumericProfile, ReferenceProfile
from mlops_onprem.window_profile import (
    NumericCounts,
    WindowProfile,
    WindowProfileError,
    count_window,
)


class DriftComputationError(MonitoringError):
    """Drift cannot be computed (missing column, incompatible profile)."""


class DriftThresholds(BaseModel):
    """How a window's columns are judged (see the module docstring for the promise)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    false_alarm_rate: float = Field(
        default=0.01, gt=0, lt=0.5,
        description="Chance that a window without drift reports any drifted column.")
    correction: Literal["holm", "bonferroni", "bh"] = Field(
        default="holm", description="Multiple-testing correction across the window's columns.")
    psi_min: float = Field(default=0.1, ge=0, description="Effect floor: PSI at least this ...")
    ks_min_statistic: float = Field(
        default=0.1, ge=0, le=1, description="... or a KS statistic at least this (numeric).")
    js_min: float = Field(
        default=0.05, ge=0, le=1, description="Effect floor of a categorical column (JS distance).")
    unseen_share: float = Field(
        default=0.01, gt=0, le=1,
        description="Share of rows in categories absent from the reference that is drift ...")
    unseen_min_rows: int = Field(default=5, ge=1, description="... once at least this many rows.")
    min_expected: float = Field(
        default=10.0, gt=0,
        description="Rare categories are pooled until each group expects this many rows.")
    detectable_ks_statistic: float = Field(
        default=0.2, gt=0, le=1,
        description="The shift a verdict must be able to see (KS 0.2 ~ a 0.5 sd mean shift).")
    power: float = Field(
        default=0.8, gt=0.5, lt=1, description="... with this probability, or: insufficient data.")
    min_rows: int | None = Field(
        default=None, ge=1,
        description="Fixed minimum window size instead of the one derived from power.")
    psi_epsilon: float = Field(
        default=1e-4, gt=0, description="Bin shares are clipped to this before PSI's log.")


class Status(StrEnum):
    OK = "ok"
    DRIFT = "drift"
    INSUFFICIENT_DATA = "insufficient_data"


@dataclass(frozen=True)
class MethodResult:
    """One statistic of one column (``p_value`` None for pure effect sizes)."""

    method: str  # ks | psi | chi2 | jensenshannon | unseen_share
    statistic: float
    threshold: float  # the effect floor (or share) this statistic is compared with
    drifted: bool
    p_value: float | None = None
    rule: str = ""
    bound: float | None = None  # ks: how far the exact statistic can exceed this one


@dataclass(frozen=True)
class ColumnDrift:
    """Drift verdict of one column (feature or score) with its statistics and coarse bins."""

    column: str
    kind: str  # numeric | categorical | score
    status: Status
    n_reference: int
    n_current: int
    null_share_reference: float
    null_share_current: float
    methods: tuple[MethodResult, ...]
    p_value: float = 1.0  # the column's p-value before correction
    adjusted_p_value: float = 1.0
    effect: float = 0.0  # the largest effect / its floor (>= 1: past the floor)
    bin_labels: tuple[str, ...] = ()
    reference_shares: tuple[float, ...] = ()
    current_shares: tuple[float, ...] = ()
    unseen_categories: dict[str, int] = field(default_factory=dict)
    mean_reference: float | None = None
    mean_current: float | None = None

    @property
    def drifted(self) -> bool:
        return self.status == Status.DRIFT

    @property
    def severity(self) -> float:
        """Effect relative to its floor, for ranking charts."""
        return self.effect

    def method(self, name: str) -> MethodResult | None:
        return next((m for m in self.methods if m.method == name), None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["methods"] = [asdict(m) for m in self.methods]
        return data


@dataclass(frozen=True)
class DriftResult:
    """Drift of one window against a reference profile."""

    n_current: int
    features: tuple[ColumnDrift, ...]
    predictions: tuple[ColumnDrift, ...]
    thresholds: DriftThresholds
    rows_needed: int | None = None  # None: the reference is too small for any window
    n_reference: int = 0
    reference_rows_needed: int = 0
    seconds: float = 0.0

    @property
    def insufficient_data(self) -> bool:
        return self.rows_needed is None or self.n_current < self.rows_needed

    @property
    def drifted_features(self) -> list[str]:
        return [c.column for c in self.features if c.drifted]

    @property
    def drifted_share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def prediction_drift(self) -> bool:
        return any(c.drifted for c in self.predictions)

    def insufficient_reason(self) -> str:
        t = self.thresholds
        if self.rows_needed is None:
            return (f"insufficient data: the reference has {self.n_reference} rows; at least "
                    f"{self.reference_rows_needed} training rows are needed before any window can "
                    f"show a shift of KS {t.detectable_ks_statistic:g} with power {t.power:g} "
                    "(policy drift.detectable_ks_statistic / drift.power, or set drift.min_rows)")
        source = ("policy drift.min_rows" if t.min_rows is not None else
                  f"to see a shift of KS {t.detectable_ks_statistic:g} with power {t.power:g} at a "
                  f"false-alarm rate of {t.false_alarm_rate:g}: policy drift.detectable_ks_statistic"
                  " / drift.power / drift.false_alarm_rate, or a fixed drift.min_rows")
        return (f"insufficient data: {self.n_current} rows in the window, {self.rows_needed} needed "
                f"({source}); widen the window with window_days / window_batches")

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_current": self.n_current,
            "n_reference": self.n_reference,
            "rows_needed": self.rows_needed,
            "insufficient_data": self.insufficient_data,
            "drifted_features": self.drifted_features,
            "drifted_share": self.drifted_share,
            "prediction_drift": self.prediction_drift,
            "thresholds": self.thresholds.model_dump(),
            "seconds": self.seconds,
            "features": [c.to_dict() for c in self.features],
            "predictions": [c.to_dict() for c in self.predictions],
        }


# --- per-column statistics (before the correction) ------------------------------------------
def _bin_labels(edges: np.ndarray) -> list[str]:
    if edges.size == 0:
        return ["all"]
    labels = [f"<= {edges[0]:.4g}"]
    labels += [f"({lo:.4g}, {hi:.4g}]" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    labels.append(f"> {edges[-1]:.4g}")
    return labels


@dataclass
class _Column:
    drift: ColumnDrift
    past_floor: bool
    forced: bool = False  # drift whatever the p-value (unseen categories)


def _numeric_column(p: NumericProfile, cur: NumericCounts, t: DriftThresholds, kind: str) -> _Column:
    n_cur_rows = cur.n_valid + cur.nulls
    # nulls count as the lowest value, so a feature that suddenly goes missing moves the KS
    # statistic too (ties only make the KS test more conservative)
    d, p_ks, bound = drift_stats.ks_from_counts(np.append(p.n_nulls, p.grid_counts),
                                                np.append(cur.nulls, cur.counts))
    ref_coarse = p.coarse_counts(p.grid_counts).astype(np.float64)
    cur_coarse = p.coarse_counts(cur.counts).astype(np.float64)
    labels = _bin_labels(p.edges)
    if p.n_nulls or cur.nulls:
        ref_coarse, cur_coarse = np.append(ref_coarse, p.n_nulls), np.append(cur_coarse, cur.nulls)
        labels.append("null")
    psi = drift_stats.population_stability_index(ref_coarse, cur_coarse, epsilon=t.psi_epsilon)
    effect = max(psi / t.psi_min if t.psi_min else math.inf,
                 (d / t.ks_min_statistic if t.ks_min_statistic else math.inf)
                 if math.isfinite(d) else 0.0)
    methods = (
        MethodResult("ks", d, t.ks_min_statistic, False, p_ks,
                     f"corrected p < {t.false_alarm_rate:g} and (D >= {t.ks_min_statistic:g} or "
                     f"PSI >= {t.psi_min:g})", bound),
        MethodResult("psi", psi, t.psi_min, False, None,
                     f"effect size over {ref_coarse.size} reference-quantile bins"),
    )
    ref_total, cur_total = ref_coarse.sum(), cur_coarse.sum()
    column = ColumnDrift(
        column=p.name, kind=kind, status=Status.OK, n_reference=p.n_rows, n_current=n_cur_rows,
        null_share_reference=p.null_share,
        null_share_current=cur.nulls / n_cur_rows if n_cur_rows else 0.0,
        methods=methods, p_value=p_ks, effect=effect if math.isfinite(effect) else 0.0,
        bin_labels=tuple(labels),
        reference_shares=tuple(float(x) for x in ref_coarse / max(ref_total, 1.0)),
        current_shares=tuple(float(x) for x in cur_coarse / max(cur_total, 1.0)),
        mean_reference=p.mean, mean_current=cur.mean if cur.n_valid else None)
    return _Column(column, past_floor=effect >= 1.0)


def _categorical_column(p: CategoricalProfile, cur: dict[str, int], t: DriftThresholds) -> _Column:
    n_rows = sum(cur.values())
    categories = sorted(p.counts) + sorted(c for c in cur if c not in p.counts)
    ref_vec = np.array([p.counts.get(c, 0) for c in categories], dtype=np.float64)
    cur_vec = np.array([cur.get(c, 0) for c in categories], dtype=np.float64)
    unseen = {c: n for c, n in cur.items() if c not in p.counts}
    unseen_rows = sum(unseen.values())
    unseen_share = unseen_rows / n_rows if n_rows else 0.0
    # rare categories are pooled (by the reference's shares) so chi-square's approximation holds
    seen = ref_vec > 0
    order = np.argsort(-ref_vec[seen], kind="stable")
    groups = drift_stats.merge_sparse_bins(ref_vec[seen][order] / max(ref_vec.sum(), 1.0),
                                           int(min(ref_vec.sum(), cur_vec.sum())), t.min_expected)
    ref_grouped = drift_stats.group_counts(ref_vec[seen][order], groups)
    cur_grouped = drift_stats.group_counts(cur_vec[seen][order], groups)
    if unseen_rows:
        ref_grouped, cur_grouped = np.append(ref_grouped, 0.0), np.append(cur_grouped, unseen_rows)
    _, p_chi, dof = drift_stats.chi_square_homogeneity(ref_grouped, cur_grouped)
    js = drift_stats.jensen_shannon_distance(ref_vec, cur_vec)
    forced = unseen_share >= t.unseen_share and unseen_rows >= t.unseen_min_rows
    methods = (
        MethodResult("chi2", float(dof + 1), t.js_min, False, p_chi,
                     f"chi-square p over {dof + 1} category groups"),
        MethodResult("jensenshannon", js, t.js_min, js >= t.js_min, None, f"JS >= {t.js_min:g}"),
        MethodResult("unseen_share", unseen_share, t.unseen_share, forced, None,
                     f"unseen share >= {t.unseen_share:g} and >= {t.unseen_min_rows} rows"),
    )
    effect = js / t.js_min if t.js_min else math.inf
    column = ColumnDrift(
        column=p.name, kind="categorical", status=Status.OK, n_reference=p.n_rows,
        n_current=n_rows, null_share_reference=p.null_share,
        null_share_current=cur.get("<null>", 0) / n_rows if n_rows else 0.0,
        methods=methods, p_value=p_chi, effect=effect if math.isfinite(effect) else 0.0,
        bin_labels=tuple(categories),
        reference_shares=tuple(float(x) for x in ref_vec / max(ref_vec.sum(), 1.0)),
        current_shares=tuple(float(x) for x in cur_vec / max(cur_vec.sum(), 1.0)),
        unseen_categories=unseen)
    return _Column(column, past_floor=effect >= 1.0, forced=forced)


def _finish(column: _Column, adjusted: float, t: DriftThresholds, insufficient: bool) -> ColumnDrift:
    c = column.drift
    significant = adjusted < t.false_alarm_rate
    drifted = column.forced or (significant and column.past_floor)
    status = Status.INSUFFICIENT_DATA if insufficient else Status.DRIFT if drifted else Status.OK
    methods = tuple(
        m if m.method == "unseen_share" else
        MethodResult(m.method, m.statistic, m.threshold,
                     significant and m.statistic >= m.threshold if m.method in ("ks", "psi",
                                                                                "jensenshannon")
                     else significant, m.p_value, m.rule, m.bound)
        for m in c.methods)
    return ColumnDrift(**{**c.__dict__, "status": status, "methods": methods,
                          "adjusted_p_value": float(adjusted)})


# --- a whole window ----------------------------------------------------------------------
def window_rows_needed(profile: ReferenceProfile, t: DriftThresholds,
                       n_columns: int) -> tuple[int | None, int]:
    """(rows a window needs for a verdict or None, training rows the reference needs)."""
    n_tests = max(1, n_columns)  # one corrected p-value per column
    needed_reference = drift_stats.reference_rows_needed(
        effect=t.detectable_ks_statistic, alpha=t.false_alarm_rate, n_tests=n_tests, power=t.power)
    if t.min_rows is not None:
        return t.min_rows, needed_reference
    return (drift_stats.rows_needed(profile.n_rows, effect=t.detectable_ks_statistic,
                                    alpha=t.false_alarm_rate, n_tests=n_tests, power=t.power),
            needed_reference)


def drift_from_window(profile: ReferenceProfile, window: WindowProfile,
                      thresholds: DriftThresholds | None = None) -> DriftResult:
    """Test every profiled column of a (merged) window profile and apply the correction."""
    t = thresholds or DriftThresholds()
    started = time.perf_counter()
    missing = [c for c in profile.numeric if c not in window.numeric]
    missing += [c for c in profile.categorical if c not in window.categorical]
    if missing:
        raise DriftComputationError(f"current window lacks profiled features {missing}")
    columns = [_numeric_column(p, window.numeric[n], t, "numeric") for n, p in profile.numeric.items()]
    columns += [_categorical_column(p, window.categorical[n], t)
                for n, p in profile.categorical.items()]
    n_features = len(columns)
    if window.scores:
        columns += [_numeric_column(p, window.scores[n], t, "score")
                    for n, p in profile.scores.items() if n in window.scores]
    rows_needed, reference_needed = window_rows_needed(profile, t, len(columns))
    insufficient = rows_needed is None or window.n_rows < rows_needed
    adjusted = drift_stats.adjust_p_values(np.array([c.drift.p_value for c in columns]),
                                           t.correction)
    finished = [_finish(c, a, t, insufficient) for c, a in zip(columns, adjusted, strict=True)]
    return DriftResult(
        n_current=window.n_rows, features=tuple(finished[:n_features]),
        predictions=tuple(finished[n_features:]), thresholds=t, rows_needed=rows_needed,
        n_reference=profile.n_rows, reference_rows_needed=reference_needed,
        seconds=time.perf_counter() - started)


def compute_drift(
    profile: ReferenceProfile,
    features: pd.DataFrame,
    scores: pd.DataFrame | None = None,
    thresholds: DriftThresholds | None = None,
    *,
    max_workers: int | None = None,
) -> DriftResult:
    """Drift of every profiled feature (and score column, when ``scores`` is given) of one
    window of rows: counts them (:func:`~mlops_onprem.window_profile.count_window`) and tests
    the counts. Raises :class:`DriftComputationError` naming a missing column."""
    started = time.perf_counter()
    try:
        window = count_window(profile, features, scores, max_workers=max_workers)
    except WindowProfileError as exc:
        raise DriftComputationError(str(exc)) from exc
    result = drift_from_window(profile, window, thresholds)
    return DriftResult(**{**result.__dict__, "seconds": time.perf_counter() - started})
