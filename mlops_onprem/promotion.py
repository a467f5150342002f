"""The promotion gate's judgement, as pure functions (the registry moves the alias).

- :func:`floor_failures`: the spec's absolute quality floors (``floors: {metric: value}``; a
  minimum for metrics where higher is better, a maximum otherwise). A candidate below any floor
  is never champion, the first one included.
- :func:`paired_improvements`: champion and candidate scored on the **same rows**; each bootstrap
  replicate resamples the rows once and measures both, so the interval is that of the
  difference (paired), not of two independent metrics.
- :func:`judge`: promote when the improvement exceeds the margin and, when the spec sets
  ``promotion_alpha``, when its one-sided ``1 - alpha`` lower bound is above zero too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlops_onprem.contracts import Task
from mlops_onprem.model_spec import HIGHER_IS_BETTER
from mlops_onprem.quality import BOOTSTRAP_REPS, Rows


def floor_failures(metrics: dict[str, float | None], floors: dict[str, float]) -> list[str]:
    """Each floor the metrics miss, in words (an undefined metric misses its floor)."""
    failures = []
    for metric, floor in sorted(floors.items()):
        value = metrics.get(metric)
        higher = HIGHER_IS_BETTER[metric]
        if value is None or (value < floor if higher else value > floor):
            shown = "undefined" if value is None else f"{value:.6g}"
            failures.append(f"{metric} {shown} {'<' if higher else '>'} floor {floor:g}")
    return failures


def paired_improvements(task: Task, metric: str, candidate: Rows, champion: Rows, *,
                        reps: int = BOOTSTRAP_REPS, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of the candidate's improvement over the champion (metric units,
    positive = better) on the same resampled rows; undefined replicates are dropped."""
    if len(candidate) != len(champion):
        raise ValueError("paired comparison needs both models scored on the same rows")
    higher = HIGHER_IS_BETTER[metric]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(reps):
        idx = rng.integers(0, len(candidate), len(candidate))
        a = candidate.take(idx).metric(task, metric)
        b = champion.take(idx).metric(task, metric)
        if a is not None and b is not None:
            out.append((a - b) if higher else (b - a))
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class Judgement:
    promoted: bool
    improvement: float
    interval: tuple[float, float] | None  # (1 - alpha) two-sided percentile interval
    reason: str


def judge(metric: str, candidate_score: float, champion_score: float, *, margin: float,
          alpha: float | None, improvements: np.ndarray | None) -> Judgement:
    """The decision on one comparison (scores on the same rows)."""
    higher = HIGHER_IS_BETTER[metric]
    improvement = (candidate_score - champion_score) if higher else (champion_score - candidate_score)
    interval = None
    if improvements is not None and improvements.size:
        level = alpha if alpha is not None else 0.05
        interval = (float(np.quantile(improvements, level)),
                    float(np.quantile(improvements, 1 - level)))
    direction = "higher" if higher else "lower"
    stated = (f"{metric} {candidate_score:.6g} vs champion {champion_score:.6g} ({direction} is "
              f"better): improvement {improvement:+.4g}")
    if interval is not None:
        stated += f", paired bootstrap interval [{interval[0]:+.4g}, {interval[1]:+.4g}]"
    if improvement <= margin:
        return Judgement(False, improvement, interval, f"{stated} is not above margin {margin:g}")
    if alpha is not None and (interval is None or interval[0] <= 0):
        return Judgement(False, improvement, interval,
                         f"{stated} is not significant at alpha {alpha:g} (one-sided)")
    return Judgement(True, improvement, interval,
                     f"{stated} above margin {margin:g}"
                     + (f" and significant at alpha {alpha:g}" if alpha is not None else ""))
