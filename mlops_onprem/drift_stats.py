"""The statistics behind a drift verdict, on bin counts (pure numpy/scipy, no I/O).

Every test here works on **counts** over bins fixed by the reference (see
:mod:`mlops_onprem.reference_profile`), so a window's counts can be summed batch by batch and the
result is the same as counting the whole window at once.

- :func:`ks_from_counts`: the two-sample Kolmogorov-Smirnov statistic evaluated at the
  reference's fine bin edges. It never exceeds the exact statistic and falls short of it by at
  most the largest share either sample has in one fine bin (returned as ``bound``), so its
  p-value is conservative: the false-alarm promise holds.
- :func:`chi_square_homogeneity`: Pearson's test that two count vectors share one distribution.
  PSI over the same bins is its effect size: under no drift ``PSI ~ (1/n_ref + 1/n_cur) *
  chi2(bins - 1)`` (Yurdakul & Naranjo), the same law as Pearson's statistic scaled.
- :func:`merge_sparse_bins`: adjacent bins merged until the smaller sample expects at least
  ``min_expected`` rows in each, so the chi-square approximation holds at 50 rows too.
- :func:`adjust_p_values`: Bonferroni, Holm or Benjamini-Hochberg across a window's tests.
- :func:`rows_needed`: the window size at which a shift of a given KS effect is caught with a
  given power after the correction (the "insufficient data" threshold).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

Correction = Literal["bonferroni", "holm", "bh"]


# above this effective size the limiting Kolmogorov distribution replaces scipy's finite-n
# ``kstwo`` (which takes 100-250 ms per call there); it is slightly larger, i.e. conservative
_KSTWOBIGN_FROM = 10_000


def ks_p_value(statistic: float, n_ref: int, n_cur: int) -> float:
    """Two-sided KS p-value: ``scipy.stats.ks_2samp(method="asymp")``'s formula, with the
    limiting distribution once the effective size passes 10,000 (a conservative, fast bound)."""
    if n_ref <= 0 or n_cur <= 0:
        return 1.0
    m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
    en = m * n / (m + n)
    if en > _KSTWOBIGN_FROM:
        return float(np.clip(stats.kstwobign.sf(statistic * math.sqrt(en)), 0.0, 1.0))
    return float(np.clip(stats.kstwo.sf(statistic, max(1, round(en))), 0.0, 1.0))


def ks_from_counts(reference: np.ndarray, current: np.ndarray) -> tuple[float, float, float]:
    """(statistic, p-value, bound) of the two-sample KS test from counts over the same bins.

    The ECDFs are compared at every bin edge; ``bound`` is the largest share one bin holds in
    either sample, the most the exact statistic can exceed the returned one.
    """
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    n_ref, n_cur = reference.sum(), current.sum()
    if n_ref == 0 or n_cur == 0:
        return float("nan"), 1.0, 0.0
    gaps = np.abs(np.cumsum(reference)[:-1] / n_ref - np.cumsum(current)[:-1] / n_cur)
    statistic = float(gaps.max()) if gaps.size else 0.0
    bound = float(max((reference / n_ref).max(), (current / n_cur).max()))
    return statistic, ks_p_value(statistic, int(n_ref), int(n_cur)), bound


def chi_square_homogeneity(reference: np.ndarray, current: np.ndarray) -> tuple[float, float, int]:
    """(statistic, p-value, degrees of freedom) of Pearson's chi-square test of homogeneity.

    A 2 x k table; bins empty on both sides are dropped, so a category unseen in the reference
    is a legitimate cell. (0, 1, 0) when fewer than two bins hold rows or a side is empty.
    """
    table = np.vstack([reference, current]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    row_totals = table.sum(axis=1, keepdims=True)
    if table.shape[1] < 2 or (row_totals == 0).any():
        return 0.0, 1.0, 0
    expected = row_totals * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    dof = table.shape[1] - 1
    return statistic, float(stats.chi2.sf(statistic, dof)), dof


def population_stability_index(reference: np.ndarray, current: np.ndarray, *,
                               epsilon: float = 1e-4) -> float:
    """PSI = sum((c - r) * ln(c / r)) over bins of shares (or counts, normalised here), each
    share clipped to ``epsilon`` first so an empty bin stays finite."""
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.shape != c.shape:
        raise ValueError(f"PSI needs equal bin counts, got {r.shape} and {c.shape}")
    if r.sum() <= 0 or c.sum() <= 0:
        return 0.0
    r = np.clip(r / r.sum(), epsilon, None)
    c = np.clip(c / c.sum(), epsilon, None)
    return float(np.sum((c - r) * np.log(c / r)))


def jensen_shannon_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count vectors."""
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.sum() == 0 or c.sum() == 0:
        return 0.0
    return float(jensenshannon(r / r.sum(), c / c.sum(), base=2))


def merge_sparse_bins(reference_shares: np.ndarray, smaller_n: int,
                      min_expected: float = 5.0) -> np.ndarray:
    """Group ids for adjacent bins so each group expects ``>= min_expected`` rows of the smaller
    sample (by the reference shares, so the grouping never looks at the current data).

    Returns an int array, one group id per bin; use with :func:`group_counts`.
    """
    shares = np.asarray(reference_shares, dtype=np.float64)
    groups = np.zeros(shares.size, dtype=np.int64)
    group, filled = 0, 0.0
    for i, share in enumerate(shares):
        groups[i] = group
        filled += share * smaller_n
        if filled >= min_expected and i < shares.size - 1:
            group, filled = group + 1, 0.0
    if filled < min_expected and group > 0:  # a short last group joins its neighbour
        groups[groups == group] = group - 1
    return groups


def group_counts(counts: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Sum ``counts`` within each group id of :func:`merge_sparse_bins`."""
    return np.bincount(groups, weights=np.asarray(counts, dtype=np.float64),
                       minlength=int(groups.max()) + 1 if groups.size else 0)


def adjust_p_values(p_values: np.ndarray, method: Correction) -> np.ndarray:
    """Multiple-testing adjusted p-values (reject where adjusted < alpha).

    ``bonferroni`` and ``holm`` control the chance of any false alarm (family-wise error rate);
    ``bh`` (Benjamini-Hochberg) the expected share of false alarms among the alarms, which is
    the same guarantee when nothing drifted.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    if method == "bonferroni":
        return np.minimum(1.0, p * m)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adjusted = np.maximum.accumulate(np.minimum(1.0, ranked * (m - np.arange(m))))
    elif method == "bh":
        adjusted = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
        adjusted = np.minimum(1.0, adjusted)
    else:
        raise ValueError(f"unknown multiple-testing correction {method!r}: bonferroni, holm or bh")
    result = np.empty(m)
    result[order] = adjusted
    return result


def ks_critical_value(alpha: float) -> float:
    """c(alpha) with P(sqrt(n_eff) * D > c) ~ alpha under no drift (asymptotic, two-sided)."""
    return math.sqrt(-math.log(alpha / 2.0) / 2.0)


def rows_needed(n_reference: int, *, effect: float, alpha: float, n_tests: int,
                power: float) -> int | None:
    """Smallest current window that catches a KS effect of ``effect`` with ``power`` after a
    Bonferroni correction over ``n_tests`` tests at ``alpha`` (the worst case of the
    corrections offered). None when no window size is enough because the reference is too small.

    Under a shift the KS statistic is about normal around ``effect`` with a standard deviation
    of at most ``0.5 * s``, ``s = sqrt(1/n_ref + 1/n_cur)``; it exceeds the critical value
    ``c * s`` with the wanted power when ``s <= effect / (c + 0.5 * z_power)``.
    """
    c = ks_critical_value(alpha / max(1, n_tests))
    s_max = effect / (c + 0.5 * float(stats.norm.ppf(power)))
    room = s_max ** 2 - 1.0 / max(1, n_reference)
    if room <= 0:
        return None
    return int(math.ceil(1.0 / room))


def reference_rows_needed(*, effect: float, alpha: float, n_tests: int, power: float) -> int:
    """The fewest reference rows for which :func:`rows_needed` has an answer at all."""
    c = ks_critical_value(alpha / max(1, n_tests))
    s_max = effect / (c + 0.5 * float(stats.norm.ppf(power)))
    return int(math.floor(1.0 / s_max ** 2)) + 1
