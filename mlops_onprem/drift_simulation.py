"""Measure the drift verdict's promise by simulation: false alarms without drift, and power.

Each simulated window draws a fresh reference and a fresh current sample from one population
of mixed columns (normal, skewed, heavy-tailed, integer-valued with ties, a column with
nulls, a near-constant one, categorical with a rare category), profiles the reference like
training does, and asks :func:`mlops_onprem.drift.drift_from_window` for a verdict. The share of
windows reporting any drifted column is the dataset-level false-alarm rate; with a shift
injected it is the power. Used by the tests (small sizes) and ``bench/drift.py`` (large ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_onprem.drift import DriftThresholds, drift_from_window
from mlops_onprem.reference_profile import ReferenceProfile, profile_categorical, profile_numeric
from mlops_onprem.window_profile import count_window

CATEGORIES = np.array(["a", "b", "c", "d", "rare"])
CATEGORY_P = np.array([0.4, 0.3, 0.2, 0.098, 0.002])


def population(n: int, rng: np.random.Generator, *, n_normal: int = 6, shift_sd: float = 0.0,
               new_category_share: float = 0.0) -> pd.DataFrame:
    """``n`` rows of the simulated population; ``shift_sd`` moves ``x0``'s mean by that many
    standard deviations, ``new_category_share`` relabels that share of ``cat`` as ``new``."""
    columns = {f"x{j}": rng.normal(size=n) for j in range(n_normal)}
    columns["x0"] = columns["x0"] + shift_sd
    columns["skewed"] = rng.lognormal(sigma=1.0, size=n)
    columns["heavy"] = rng.standard_t(df=2, size=n)
    columns["counts"] = rng.poisson(3.0, size=n).astype(np.float64)  # ties
    with_nulls = rng.normal(size=n)
    with_nulls[rng.random(n) < 0.1] = np.nan
    columns["nullable"] = with_nulls
    columns["near_constant"] = np.where(rng.random(n) < 0.97, 1.0, rng.normal(size=n))
    cat = rng.choice(CATEGORIES, size=n, p=CATEGORY_P).astype(object)
    if new_category_share:
        cat[rng.random(n) < new_category_share] = "new"
    columns["cat"] = cat
    return pd.DataFrame(columns)


def profile_of(frame: pd.DataFrame) -> ReferenceProfile:
    """A reference profile of a simulated frame (numeric columns and ``cat``)."""
    numeric = {c: profile_numeric(c, frame[c].to_numpy(dtype=np.float64))
               for c in frame.columns if c != "cat"}
    return ReferenceProfile(dataset="simulated", contract_version="0", task="binary",
                            n_rows=len(frame), numeric=numeric,
                            categorical={"cat": profile_categorical("cat", frame["cat"])},
                            scores={})


@dataclass(frozen=True)
class SimulationResult:
    n_reference: int
    n_current: int
    windows: int
    alarms: int
    insufficient: int

    @property
    def rate(self) -> float:
        """Share of the windows with a verdict that reported drift."""
        judged = self.windows - self.insufficient
        return self.alarms / judged if judged else float("nan")


def simulate(n_reference: int, n_current: int, *, windows: int, seed: int = 0,
             thresholds: DriftThresholds | None = None, shift_sd: float = 0.0,
             new_category_share: float = 0.0, judge_all: bool = True) -> SimulationResult:
    """Run ``windows`` independent windows; count those reporting any drifted column.

    ``judge_all`` judges every window whatever its size (``min_rows=1``), which is what the
    false-alarm promise is about; otherwise windows below the derived minimum are counted as
    insufficient.
    """
    t = thresholds or DriftThresholds()
    if judge_all:
        t = t.model_copy(update={"min_rows": 1})
    rng = np.random.default_rng(seed)
    alarms = insufficient = 0
    for _ in range(windows):
        profile = profile_of(population(n_reference, rng))
        current = population(n_current, rng, shift_sd=shift_sd,
                             new_category_share=new_category_share)
        result = drift_from_window(profile, count_window(profile, current, max_workers=1), t)
        if result.insufficient_data:
            insufficient += 1
        elif result.drifted_features:
            alarms += 1
    return SimulationResult(n_reference, n_current, windows, alarms, insufficient)
