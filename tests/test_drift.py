"""Drift maths: exactness against scipy, false-positive rate, power on known shifts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlops_onprem.contracts import Task
from mlops_onprem.drift import (
    DriftComputationError,
    DriftThresholds,
    Status,
    categorical_column_drift,
    chi_square_homogeneity,
    compute_drift,
    jensen_shannon_distance,
    ks_against_sample,
    numeric_column_drift,
    population_stability_index,
)
from mlops_onprem.reference_profile import (
    build_reference_profile,
    profile_categorical,
    profile_numeric,
)
from mlops_onprem.synthetic import UNSEEN_CATEGORY, SyntheticSpec, generate_batch, make_contract

SPEC = SyntheticSpec(n_numeric=4, n_categorical=2, nullable_share=0.0)
THRESHOLDS = DriftThresholds()


@pytest.fixture(scope="module")
def reference():
    contract = make_contract(SPEC)
    frame = generate_batch(SPEC, 20_000, seed=11)
    scores = 1 / (1 + np.exp(-frame["num_00"].to_numpy()))
    return contract, build_reference_profile(frame, contract, scores, seed=3)


# --- exactness -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n_ref", "n_cur", "shift", "decimals"),
    [
        (20_000, 1_000, 0.0, None),  # asymptotic p-value, continuous values
        (20_000, 30_000, 0.03, None),  # both large
        (20_000, 5_000, 0.1, 1),  # heavy ties
        (400, 300, 0.2, None),  # scipy's exact mode
        (3_000, 3_000, 0.0, 2),  # exact mode, equal sizes, ties
        (12_000, 9_000, 0.05, None),  # one side just above the exact-mode limit
    ],
)
def test_ks_statistic_and_p_value_agree_with_scipy_to_1e_9(n_ref, n_cur, shift, decimals):
    rng = np.random.default_rng(n_ref + n_cur)
    ref = rng.normal(size=n_ref)
    cur = rng.normal(shift, 1.0, size=n_cur)
    if decimals is not None:
        ref, cur = np.round(ref, decimals), np.round(cur, decimals)
    ours = ks_against_sample(np.sort(ref), cur)
    theirs = stats.ks_2samp(ref, cur)
    assert abs(ours[0] - theirs.statistic) <= 1e-9
    assert abs(ours[1] - theirs.pvalue) <= 1e-9


def test_ks_in_column_drift_is_scipy_against_the_profile_sample():
    rng = np.random.default_rng(5)
    profile = profile_numeric("x", rng.lognormal(size=50_000), sample_size=20_000, seed=1)
    current = rng.lognormal(0.02, 1.0, size=40_000)
    current[::97] = np.nan
    result = numeric_column_drift(profile, current, THRESHOLDS)
    ks = next(m for m in result.methods if m.method == "ks")
    expected = stats.ks_2samp(profile.sample, current[~np.isnan(current)])
    assert abs(ks.statistic - expected.statistic) <= 1e-9
    assert abs(ks.p_value - expected.pvalue) <= 1e-9


def test_psi_matches_the_formula_on_a_hand_example():
    ref, cur = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert population_stability_index(ref, cur) == pytest.approx(expected)
    assert population_stability_index(ref, ref) == 0.0


def test_psi_clips_empty_bins_instead_of_dividing_by_zero():
    assert math.isfinite(population_stability_index(np.array([1.0, 0.0]), np.array([0.5, 0.5])))


def test_chi_square_and_js_agree_with_scipy_and_count_unseen_categories():
    ref, cur = np.array([40.0, 60.0, 0.0]), np.array([30.0, 50.0, 20.0])
    chi2, p = chi_square_homogeneity(ref, cur)
    expected = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert chi2 == pytest.approx(expected.statistic) and p == pytest.approx(expected.pvalue)
    assert jensen_shannon_distance(ref, ref) == 0.0
    assert 0 < jensen_shannon_distance(ref, cur) <= 1


# --- false positives on no drift ----------------------------------------------------------
def test_no_drift_windows_flag_at_most_the_promised_false_positive_rate(reference):
    contract, profile = reference
    flagged = total = 0
    for seed in range(150):
        window = generate_batch(SPEC, 600, seed=1000 + seed)
        result = compute_drift(profile, window, max_workers=1)
        assert not result.insufficient_data
        flagged += len(result.drifted_features)
        total += len(result.features)
    promised = max(THRESHOLDS.ks_p_value, THRESHOLDS.chi2_p_value)
    # binomial slack: three standard deviations above the promised rate
    bound = promised + 3 * math.sqrt(promised * (1 - promised) / total)
    assert flagged / total <= bound, f"{flagged}/{total} features flagged on clean data"


# --- power on known shifts -----------------------------------------------------------------
def test_half_sd_mean_shift_in_one_feature_is_always_caught(reference):
    contract, profile = reference
    sd = profile.numeric["num_02"].std
    for seed in range(40):
        window = generate_batch(SPEC, 600, seed=2000 + seed)
        window["num_02"] = window["num_02"] + 0.5 * sd
        result = compute_drift(profile, window, max_workers=1)
        assert "num_02" in result.drifted_features


def test_a_new_category_is_always_caught_and_named(reference):
    contract, profile = reference
    for seed in range(40):
        window = generate_batch(SPEC, 600, seed=3000 + seed)
        values = np.array(window["cat_01"].astype(object))
        values[: len(values) // 20] = UNSEEN_CATEGORY  # 5% of rows
        window["cat_01"] = pd.array(values, dtype="string")
        column = next(c for c in compute_drift(profile, window).features if c.column == "cat_01")
        assert column.status == Status.DRIFT
        assert column.unseen_categories == {UNSEEN_CATEGORY: 30}


def test_a_feature_that_goes_missing_drifts_through_the_null_bin():
    rng = np.random.default_rng(1)
    profile = profile_numeric("x", rng.normal(size=5000))
    current = rng.normal(size=2000)
    current[:1000] = np.nan
    result = numeric_column_drift(profile, current, THRESHOLDS)
    assert result.status == Status.DRIFT
    assert result.bin_labels[-1] == "null" and result.current_shares[-1] == pytest.approx(0.5)


def test_covariate_shift_moves_prediction_and_feature_share(reference):
    contract, profile = reference
    window = generate_batch(SPEC, 5000, seed=7, covariate_shift=1.0)
    scores = pd.DataFrame({"score": 1 / (1 + np.exp(-window["num_00"].to_numpy()))})
    result = compute_drift(profile, window, scores)
    assert set(SPEC.drifting_features) <= set(result.drifted_features)
    assert result.prediction_drift
    assert result.predictions[0].column == "score"


def test_multiclass_prediction_drift_profiles_each_class_column():
    spec = SyntheticSpec(task=Task.MULTICLASS, n_numeric=2, n_categorical=1, n_classes=3)
    contract = make_contract(spec)
    frame = generate_batch(spec, 3000, seed=1)
    rng = np.random.default_rng(0)
    profile = build_reference_profile(frame, contract, rng.dirichlet([5, 3, 2], size=3000))
    current = pd.DataFrame(rng.dirichlet([2, 3, 5], size=1000), columns=list(profile.scores))
    result = compute_drift(profile, generate_batch(spec, 1000, seed=2), current)
    assert [c.column for c in result.predictions] == ["proba_0", "proba_1", "proba_2"]
    assert result.prediction_drift


# --- small samples and errors ------------------------------------------------------------------
def test_small_window_is_insufficient_data_never_drift(reference):
    contract, profile = reference
    window = generate_batch(SPEC, 100, seed=4, covariate_shift=3.0)
    result = compute_drift(profile, window)
    assert result.insufficient_data
    assert result.drifted_features == []
    assert {c.status for c in result.features} == {Status.INSUFFICIENT_DATA}


def test_min_rows_is_configurable():
    profile = profile_categorical("c", pd.Series(["a", "b"] * 50, dtype="string"))
    current = pd.Series(["b"] * 60, dtype="string")
    assert categorical_column_drift(profile, current, THRESHOLDS).status == Status.INSUFFICIENT_DATA
    relaxed = DriftThresholds(min_rows=50)
    assert categorical_column_drift(profile, current, relaxed).status == Status.DRIFT


def test_missing_feature_is_refused_naming_it(reference):
    contract, profile = reference
    window = generate_batch(SPEC, 600, seed=1).drop(columns=["num_03"])
    with pytest.raises(DriftComputationError, match="num_03"):
        compute_drift(profile, window)


def test_thresholds_reject_nonsense_values():
    with pytest.raises(ValueError):
        DriftThresholds(ks_p_value=1.5)
