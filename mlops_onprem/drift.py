"""Drift maths against a precomputed reference profile (pure numpy/scipy, no I/O).

Numeric features and score columns get two tests from **one sort** of the current values:

- PSI on the reference quantile bins (plus a null bin when either side has nulls);
- the two-sample Kolmogorov-Smirnov test against the profile's reference sample, computed
  exactly: the statistic is the same float as ``scipy.stats.ks_2samp(sample, current)`` and
  so is the p-value (scipy's asymptotic ``kstwo`` formula, or scipy itself when both samples
  are small enough for its exact mode).

Categorical features get a chi-square test of homogeneity and the Jensen-Shannon distance over
the union of reference and current categories, so categories never seen in training count.

Columns are processed in a thread pool: numpy's sort and searchsorted release the GIL.

Why the verdict rules look like they do (defaults in :class:`DriftThresholds`):
with a million rows any shift is "significant", so a p-value alone flags harmless changes;
each p-value rule therefore also needs a minimum effect size. Under no drift a feature is
flagged with probability at most ``ks_p_value`` (numeric) or ``chi2_p_value`` (categorical),
because the effect-size and PSI/JS rules only fire on shifts far larger than sampling noise
once the window has ``min_rows`` rows.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlops_onprem.errors import MonitoringError
from mlops_onprem.reference_profile import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    column_as_categories,
    column_as_float,
)

# scipy's ks_2samp uses its exact distribution when both samples are at most this size
_SCIPY_EXACT_MAX_N = 10_000


class DriftComputationError(MonitoringError):
    """Drift cannot be computed (missing column, incompatible profile)."""


class DriftThresholds(BaseModel):
    """Per-method drift thresholds. A feature drifts when any of its method rules fires.

    Numeric features and score columns: ``PSI >= psi``, or ``KS p < ks_p_value`` and
    ``KS statistic >= ks_min_statistic``. Categorical features: ``JS distance >= js_distance``,
    or ``chi2 p < chi2_p_value`` and ``JS >= chi2_min_js``, or rows in categories unseen in
    the reference make up ``>= unseen_share`` of the window. Windows with fewer than
    ``min_rows`` rows are reported as "insufficient_data", never as drift.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    psi: float = Field(default=0.2, gt=0, description="PSI at/above this is drift (0.2 = major shift).")
    psi_epsilon: float = Field(
        default=1e-4, gt=0, description="Bin shares are clipped to this before PSI's log."
    )
    ks_p_value: float = Field(default=0.01, gt=0, lt=1, description="KS p-value below this ...")
    ks_min_statistic: float = Field(
        default=0.1, ge=0, le=1, description="... and a KS statistic (max ECDF gap) at least this."
    )
    js_distance: float = Field(
        default=0.1, gt=0, le=1, description="Jensen-Shannon distance (base 2) at/above this is drift."
    )
    chi2_p_value: float = Field(default=0.01, gt=0, lt=1, description="Chi-square p below this ...")
    chi2_min_js: float = Field(
        default=0.02, ge=0, le=1, description="... and a JS distance at least this."
    )
    unseen_share: float = Field(
        default=0.01, gt=0, le=1,
        description="Share of rows in categories absent from the reference that is drift by itself.",
    )
    min_rows: int = Field(
        default=500, ge=1, description="Below this many current rows the verdict is insufficient data."
    )


class Status(StrEnum):
    OK = "ok"
    DRIFT = "drift"
    INSUFFICIENT_DATA = "insufficient_data"


@dataclass(frozen=True)
class MethodResult:
    """One statistical method on one column."""

    method: str  # psi | ks | chi2 | jensenshannon | unseen_share
    statistic: float
    threshold: float
    drifted: bool
    p_value: float | None = None
    rule: str = ""  # the rule in words, e.g. "p < 0.01 and D >= 0.1"
    min_effect: float | None = None  # p-value rules: the effect size they also require


@dataclass(frozen=True)
class ColumnDrift:
    """Drift verdict of one column (feature or score) with its per-method results and bins."""

    column: str
    kind: str  # numeric | categorical | score
    status: Status
    n_reference: int
    n_current: int
    null_share_reference: float
    null_share_current: float
    methods: tuple[MethodResult, ...]
    bin_labels: tuple[str, ...] = ()
    reference_shares: tuple[float, ...] = ()
    current_shares: tuple[float, ...] = ()
    unseen_categories: dict[str, int] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return self.status == Status.DRIFT

    @property
    def severity(self) -> float:
        """How far past its threshold the strongest distance method is (for ranking charts)."""
        ratios = [
            m.statistic / m.threshold
            for m in self.methods
            if m.method in ("psi", "jensenshannon", "unseen_share") and m.threshold > 0
            and math.isfinite(m.statistic)
        ]
        effects = [
            m.statistic / m.min_effect for m in self.methods
            if m.method == "ks" and m.min_effect and math.isfinite(m.statistic)
        ]
        return max([*ratios, *effects], default=0.0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["methods"] = [asdict(m) for m in self.methods]
        return data


@dataclass(frozen=True)
class DriftResult:
    """Drift of one current window against a reference profile."""

    n_current: int
    features: tuple[ColumnDrift, ...]
    predictions: tuple[ColumnDrift, ...]
    thresholds: DriftThresholds
    seconds: float = 0.0

    @property
    def insufficient_data(self) -> bool:
        return self.n_current < self.thresholds.min_rows

    @property
    def drifted_features(self) -> list[str]:
        return [c.column for c in self.features if c.drifted]

    @property
    def drifted_share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def prediction_drift(self) -> bool:
        return any(c.drifted for c in self.predictions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_current": self.n_current,
            "insufficient_data": self.insufficient_data,
            "drifted_features": self.drifted_features,
            "drifted_share": self.drifted_share,
            "prediction_drift": self.prediction_drift,
            "thresholds": self.thresholds.model_dump(),
            "seconds": self.seconds,
            "features": [c.to_dict() for c in self.features],
            "predictions": [c.to_dict() for c in self.predictions],
        }


# --- the statistics ----------------------------------------------------------------------
def population_stability_index(
    reference_shares: np.ndarray, current_shares: np.ndarray, *, epsilon: float = 1e-4
) -> float:
    """PSI = sum((c - r) * ln(c / r)) over bins, shares clipped to ``epsilon`` (empty bins).

    Takes two share vectors of equal length; returns the non-negative PSI.
    """
    r = np.clip(np.asarray(reference_shares, dtype=np.float64), epsilon, None)
    c = np.clip(np.asarray(current_shares, dtype=np.float64), epsilon, None)
    if r.shape != c.shape:
        raise DriftComputationError(f"PSI needs equal bin counts, got {r.shape} and {c.shape}")
    return float(np.sum((c - r) * np.log(c / r)))


def ks_statistic_sorted(
    ref_values: np.ndarray, ref_cum_le: np.ndarray, n_ref: int, current_sorted: np.ndarray
) -> float:
    """Two-sample KS statistic from the reference steps and the *sorted* current values.

    ``ref_values`` are the distinct reference values, ``ref_cum_le[i]`` how many reference
    values are <= ``ref_values[i]``. Between two reference values the reference ECDF is flat
    and the current ECDF only rises, so the largest gap is reached at a reference value or just
    before the next one: evaluating both is exact and returns the same float as scipy (same
    integer counts, same divisions).
    """
    n_cur = current_sorted.size
    cur_le = np.searchsorted(current_sorted, ref_values, side="right")
    cur_lt = np.searchsorted(current_sorted, ref_values, side="left")
    ref_lt = np.concatenate(([0], ref_cum_le[:-1]))
    at = np.abs(ref_cum_le / n_ref - cur_le / n_cur)
    before = np.abs(ref_lt / n_ref - cur_lt / n_cur)
    return float(max(at.max(), before.max()))


def ks_p_value(statistic: float, n_ref: int, n_cur: int) -> float:
    """Two-sided asymptotic p-value exactly as ``scipy.stats.ks_2samp`` computes it."""
    m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(stats.kstwo.sf(statistic, np.round(en)), 0, 1))


def ks_against_sample(sample_sorted: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the two-sample KS test; equals ``scipy.stats.ks_2samp``.

    ``sample_sorted`` is the sorted reference sample; ``current`` any non-null values.
    """
    current_sorted = np.sort(np.asarray(current, dtype=np.float64))
    values, counts = np.unique(sample_sorted, return_counts=True)
    return _ks_test(values, np.cumsum(counts), sample_sorted.size, current_sorted)


def _ks_test(
    ref_values: np.ndarray, ref_cum_le: np.ndarray, n_ref: int, current_sorted: np.ndarray
) -> tuple[float, float]:
    n_cur = current_sorted.size
    if max(n_ref, n_cur) <= _SCIPY_EXACT_MAX_N:
        # small samples: scipy's exact distribution, on the very same data (cheap at this size)
        sample = np.repeat(ref_values, np.diff(np.concatenate(([0], ref_cum_le))))
        result = stats.ks_2samp(sample, current_sorted)
        return float(result.statistic), float(result.pvalue)
    statistic = ks_statistic_sorted(ref_values, ref_cum_le, n_ref, current_sorted)
    return statistic, ks_p_value(statistic, n_ref, n_cur)


def chi_square_homogeneity(
    reference_counts: np.ndarray, current_counts: np.ndarray
) -> tuple[float, float]:
    """Chi-square test that two count vectors (same categories) come from one distribution.

    A test of homogeneity on the 2 x k table, so a category with zero reference rows (unseen in
    training) is a legitimate cell. Returns (statistic, p-value); (0.0, 1.0) with one category.
    """
    table = np.vstack([reference_counts, current_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def jensen_shannon_distance(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count vectors."""
    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    if r.sum() == 0 or c.sum() == 0:
        return 0.0
    return float(jensenshannon(r / r.sum(), c / c.sum(), base=2))


# --- per-column drift --------------------------------------------------------------------
def _bin_labels(edges: np.ndarray) -> list[str]:
    if edges.size == 0:
        return ["all"]
    labels = [f"<= {edges[0]:.4g}"]
    labels += [f"({lo:.4g}, {hi:.4g}]" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    labels.append(f"> {edges[-1]:.4g}")
    return labels


def numeric_column_drift(
    profile: NumericProfile, values: np.ndarray, thresholds: DriftThresholds, *, kind: str = "numeric"
) -> ColumnDrift:
    """PSI and KS of one numeric column against its profile (one sort of the current values).

    Takes float values (NaN = missing). Returns a :class:`ColumnDrift`; a window smaller than
    ``thresholds.min_rows`` gets status ``insufficient_data``.
    """
    values = np.asarray(values, dtype=np.float64)
    n_rows = values.size
    # one sort serves both tests; NaN sorts last, so the valid values are a prefix
    ordered = np.sort(values)
    has_nulls = bool(n_rows) and bool(np.isnan(ordered[-1]))
    n_valid = n_rows - int(np.count_nonzero(np.isnan(ordered))) if has_nulls else n_rows
    valid = ordered[:n_valid]
    null_cur = 1.0 - n_valid / n_rows if n_rows else 0.0

    ref_shares = profile.bin_shares
    if n_valid:
        cum = np.searchsorted(valid, profile.edges, side="right")
        cur_shares = np.diff(np.concatenate(([0], cum, [n_valid]))) / n_valid
    else:
        cur_shares = np.zeros_like(ref_shares)
    labels = _bin_labels(profile.edges)
    if profile.null_share > 0 or null_cur > 0:
        # a null bin: a feature that suddenly goes missing is drift too
        ref_shares = np.append(ref_shares * (1 - profile.null_share), profile.null_share)
        cur_shares = np.append(cur_shares * (1 - null_cur), null_cur)
        labels.append("null")
    psi = population_stability_index(ref_shares, cur_shares, epsilon=thresholds.psi_epsilon)
    methods = [
        MethodResult("psi", psi, thresholds.psi, psi >= thresholds.psi, None, f"PSI >= {thresholds.psi:g}")
    ]
    ks_rule = f"p < {thresholds.ks_p_value:g} and D >= {thresholds.ks_min_statistic:g}"
    if n_valid and profile.sample.size:
        ref_values, ref_cum_le = profile.ks_steps()
        d, p = _ks_test(ref_values, ref_cum_le, profile.sample.size, valid)
        ks_drift = p < thresholds.ks_p_value and d >= thresholds.ks_min_statistic
        methods.append(MethodResult("ks", d, thresholds.ks_p_value, ks_drift, p, ks_rule,
                                    thresholds.ks_min_statistic))
    else:
        methods.append(MethodResult("ks", float("nan"), thresholds.ks_p_value, False, None, ks_rule,
                                    thresholds.ks_min_statistic))
    return ColumnDrift(
        column=profile.name,
        kind=kind,
        status=_status(n_rows, thresholds, methods),
        n_reference=profile.n_rows,
        n_current=n_rows,
        null_share_reference=profile.null_share,
        null_share_current=null_cur,
        methods=tuple(methods),
        bin_labels=tuple(labels),
        reference_shares=tuple(float(s) for s in ref_shares),
        current_shares=tuple(float(s) for s in cur_shares),
    )


def categorical_column_drift(
    profile: CategoricalProfile, values: pd.Series, thresholds: DriftThresholds
) -> ColumnDrift:
    """Chi-square, Jensen-Shannon and unseen-category share of one categorical column."""
    n_rows = len(values)
    current = column_as_categories(values).value_counts(sort=False)
    current_counts = {str(k): int(v) for k, v in current.items()}
    categories = sorted(profile.counts) + sorted(c for c in current_counts if c not in profile.counts)
    ref_vec = np.array([profile.counts.get(c, 0) for c in categories], dtype=np.float64)
    cur_vec = np.array([current_counts.get(c, 0) for c in categories], dtype=np.float64)
    unseen = {c: n for c, n in current_counts.items() if c not in profile.counts}
    unseen_share = sum(unseen.values()) / n_rows if n_rows else 0.0
    chi2, p = chi_square_homogeneity(ref_vec, cur_vec)
    js = jensen_shannon_distance(ref_vec, cur_vec)
    methods = (
        MethodResult(
            "chi2", chi2, thresholds.chi2_p_value,
            p < thresholds.chi2_p_value and js >= thresholds.chi2_min_js, p,
            f"p < {thresholds.chi2_p_value:g} and JS >= {thresholds.chi2_min_js:g}",
            thresholds.chi2_min_js,
        ),
        MethodResult(
            "jensenshannon", js, thresholds.js_distance, js >= thresholds.js_distance, None,
            f"JS >= {thresholds.js_distance:g}",
        ),
        MethodResult(
            "unseen_share", unseen_share, thresholds.unseen_share,
            unseen_share >= thresholds.unseen_share, None,
            f"unseen-category share >= {thresholds.unseen_share:g}",
        ),
    )
    ref_total, cur_total = max(ref_vec.sum(), 1.0), max(cur_vec.sum(), 1.0)
    return ColumnDrift(
        column=profile.name,
        kind="categorical",
        status=_status(n_rows, thresholds, methods),
        n_reference=profile.n_rows,
        n_current=n_rows,
        null_share_reference=profile.null_share,
        null_share_current=current_counts.get("<null>", 0) / n_rows if n_rows else 0.0,
        methods=methods,
        bin_labels=tuple(categories),
        reference_shares=tuple(float(x) for x in ref_vec / ref_total),
        current_shares=tuple(float(x) for x in cur_vec / cur_total),
        unseen_categories=unseen,
    )


def _status(n_rows: int, thresholds: DriftThresholds, methods: Any) -> Status:
    if n_rows < thresholds.min_rows:
        return Status.INSUFFICIENT_DATA
    return Status.DRIFT if any(m.drifted for m in methods) else Status.OK


# --- a whole window ----------------------------------------------------------------------
def compute_drift(
    profile: ReferenceProfile,
    features: pd.DataFrame,
    scores: pd.DataFrame | None = None,
    thresholds: DriftThresholds | None = None,
    *,
    max_workers: int | None = None,
) -> DriftResult:
    """Drift of every profiled feature and score column of one current window.

    Takes the profile, the current features (every profiled feature must be a column), and
    optionally the current scores (columns named like the profile's score columns: ``score``
    or ``proba_<class>``). Columns run in ``max_workers`` threads (default: CPU count).
    Returns a :class:`DriftResult`. Raises :class:`DriftComputationError` on a missing column.
    """
    thresholds = thresholds or DriftThresholds()
    started = time.perf_counter()
    missing = [c for c in profile.feature_names if c not in features.columns]
    if missing:
        raise DriftComputationError(f"current window lacks profiled features {missing}")
    if scores is not None:
        missing_scores = [c for c in profile.scores if c not in scores.columns]
        if missing_scores:
            raise DriftComputationError(f"current scores lack profiled columns {missing_scores}")

    jobs: list[tuple[str, Any]] = []
    for name, p in profile.numeric.items():
        jobs.append(("feature", (numeric_column_drift, p, column_as_float(features[name]), "numeric")))
    for name, p in profile.categorical.items():
        jobs.append(("feature", (categorical_column_drift, p, features[name], None)))
    if scores is not None:
        for name, p in profile.scores.items():
            jobs.append(("score", (numeric_column_drift, p, column_as_float(scores[name]), "score")))

    def run(job: tuple[str, Any]) -> ColumnDrift:
        fn, p, values, kind = job[1]
        if fn is numeric_column_drift:
            return fn(p, values, thresholds, kind=kind)
        return fn(p, values, thresholds)

    workers = max_workers or os.cpu_count() or 1
    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drift") as pool:
            results = list(pool.map(run, jobs))
    else:
        results = [run(job) for job in jobs]
    return DriftResult(
        n_current=len(features),
        features=tuple(r for (role, _), r in zip(jobs, results, strict=True) if role == "feature"),
        predictions=tuple(r for (role, _), r in zip(jobs, results, strict=True) if role == "score"),
        thresholds=thresholds,
        seconds=time.perf_counter() - started,
    )
