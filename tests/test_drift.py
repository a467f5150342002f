"""Drift maths: the statistics on counts, the false-alarm promise at every size, power.

The promise (README, monitoring): without drift a window reports any drifted column at most
``false_alarm_rate`` (1 %) of the time, at any pair of sample sizes; a 0.5 sd mean shift in one
feature is caught in >= 99 % of windows from 1,000 rows; a new category at 5 % always.
Measured here by simulation over 1,000 windows per size pair up to (200, 1,000) rows; the large
sizes, up to (20k, 100k), run in ``bench/drift.py`` (``false_alarm_rate_measured``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlops_onprem import drift_stats
from mlops_onprem.contracts import Task
from mlops_onprem.drift import DriftComputationError, DriftThresholds, Status, compute_drift
from mlops_onprem.drift_simulation import simulate
from mlops_onprem.reference_profile import build_reference_profile, profile_numeric
from mlops_onprem.synthetic import UNSEEN_CATEGORY, SyntheticSpec, generate_batch, make_contract
from mlops_onprem.window_profile import count_numeric, count_window

SPEC = SyntheticSpec(n_numeric=4, n_categorical=2, nullable_share=0.0)
PROMISE = DriftThresholds().false_alarm_rate


@pytest.fixture(scope="module")
def reference():
    contract = make_contract(SPEC)
    frame = generate_batch(SPEC, 20_000, seed=11)
    scores = 1 / (1 + np.exp(-frame["num_00"].to_numpy()))
    return contract, build_reference_profile(frame, contract, scores)


# --- the statistics on counts ----------------------------------------------------------------
@pytest.mark.parametrize(("n_ref", "n_cur", "shift"), [(300, 200, 0.0), (5_000, 800, 0.2),
                                                       (50_000, 20_000, 0.05)])
def test_ks_from_the_grid_is_within_its_bound_of_scipy_and_never_above(n_ref, n_cur, shift):
    rng = np.random.default_rng(n_ref)
    ref, cur = rng.normal(size=n_ref), rng.normal(shift, 1.0, size=n_cur)
    profile = profile_numeric("x", ref)
    d, p, bound = drift_stats.ks_from_counts(profile.grid_counts, count_numeric(profile, cur).counts)
    exact = stats.ks_2samp(ref, cur)
    assert d <= exact.statistic + 1e-12 and exact.statistic - d <= bound + 1e-12
    if n_ref <= 1000:  # the grid is every reference value: as exact as the data allows
        assert d == pytest.approx(exact.statistic, abs=1.0 / n_cur + 1e-12)


def test_psi_and_chi_square_on_hand_examples():
    assert drift_stats.population_stability_index(np.array([0.5, 0.5]), np.array([0.25, 0.75])) \
        == pytest.approx(0.25 * np.log(0.5) * -1 + 0.25 * np.log(1.5))
    assert np.isfinite(drift_stats.population_stability_index(np.array([1.0, 0.0]),
                                                              np.array([0.5, 0.5])))
    stat, p, dof = drift_stats.chi_square_homogeneity(np.array([10, 20, 0]), np.array([15, 5, 5]))
    expected = stats.chi2_contingency(np.array([[10, 20, 0], [15, 5, 5]]), correction=False)
    assert (stat, p, dof) == pytest.approx((expected.statistic, expected.pvalue, 2))


def test_corrections_match_their_textbook_definitions():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    np.testing.assert_allclose(drift_stats.adjust_p_values(p, "bonferroni"), [0.04, 0.16, 0.12, 0.8])
    np.testing.assert_allclose(drift_stats.adjust_p_values(p, "holm"), [0.04, 0.09, 0.09, 0.2])
    np.testing.assert_allclose(drift_stats.adjust_p_values(p, "bh"),
                               [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.2])


def test_merged_window_counts_equal_counting_all_rows_at_once(reference):
    contract, profile = reference
    a, b = generate_batch(SPEC, 700, seed=1), generate_batch(SPEC, 500, seed=2)
    scores = lambda f: pd.DataFrame({"score": 1 / (1 + np.exp(-f["num_00"].to_numpy()))})  # noqa: E731
    merged = count_window(profile, a, scores(a)).merge(count_window(profile, b, scores(b)))
    both = pd.concat([a, b], ignore_index=True)
    whole = count_window(profile, both, scores(both))
    for name in profile.numeric:
        np.testing.assert_array_equal(merged.numeric[name].counts, whole.numeric[name].counts)
    assert merged.categorical == whole.categorical and merged.n_rows == 1200
    from mlops_onprem.drift import drift_from_window
    assert drift_from_window(profile, merged).to_dict()["features"] == \
        drift_from_window(profile, whole).to_dict()["features"]


# --- the promise, measured ---------------------------------------------------------------------
@pytest.mark.parametrize(("n_ref", "n_cur"), [(50, 50), (60, 300), (200, 1_000)])
def test_no_drift_windows_alarm_at_most_the_promised_rate_at_any_size(n_ref, n_cur):
    result = simulate(n_ref, n_cur, windows=1000, seed=n_ref + n_cur)
    # one-sided binomial test: the measured rate is not significantly above the promise
    p = stats.binomtest(result.alarms, result.windows, PROMISE, alternative="greater").pvalue
    assert p > 0.001, f"{result.alarms}/1000 clean windows alarmed at ({n_ref}, {n_cur})"


def test_half_sd_shift_in_one_feature_is_caught_in_99_percent_of_windows_from_1000_rows():
    result = simulate(1_000, 1_000, windows=300, seed=5, shift_sd=0.5)
    assert result.rate >= 0.99, f"power {result.rate:.3f}"


def test_a_new_category_at_5_percent_is_always_caught():
    result = simulate(1_000, 1_000, windows=200, seed=6, new_category_share=0.05)
    assert result.rate == 1.0


def test_a_new_category_is_named_with_its_rows(reference):
    contract, profile = reference
    window = generate_batch(SPEC, 600, seed=3000)
    values = np.array(window["cat_01"].astype(object))
    values[: len(values) // 20] = UNSEEN_CATEGORY
    window["cat_01"] = pd.array(values, dtype="string")
    column = next(c for c in compute_drift(profile, window).features if c.column == "cat_01")
    assert column.status == Status.DRIFT and column.unseen_categories == {UNSEEN_CATEGORY: 30}


def test_a_trivial_shift_on_a_huge_window_is_significant_but_below_the_effect_floor():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"num_00": rng.normal(size=200_000)})
    profile = build_reference_profile(frame, _one_feature_contract(), np.zeros(10))
    current = pd.DataFrame({"num_00": rng.normal(0.03, 1.0, size=1_000_000)})
    column = compute_drift(profile, current).features[0]
    assert column.adjusted_p_value < PROMISE and column.status == Status.OK


def _one_feature_contract():
    return make_contract(SyntheticSpec(n_numeric=1, n_categorical=0, nullable_share=0.0))


def test_a_feature_that_goes_missing_drifts():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"num_00": rng.normal(size=5000)})
    profile = build_reference_profile(frame, _one_feature_contract(), np.zeros(10))
    current = rng.normal(size=2000)
    current[:1000] = np.nan
    column = compute_drift(profile, pd.DataFrame({"num_00": current})).features[0]
    assert column.status == Status.DRIFT
    assert column.bin_labels[-1] == "null" and column.current_shares[-1] == pytest.approx(0.5)


def test_covariate_shift_moves_features_and_prediction(reference):
    contract, profile = reference
    window = generate_batch(SPEC, 5000, seed=7, covariate_shift=1.0)
    scores = pd.DataFrame({"score": 1 / (1 + np.exp(-window["num_00"].to_numpy()))})
    result = compute_drift(profile, window, scores)
    assert set(SPEC.drifting_features) <= set(result.drifted_features)
    assert result.prediction_drift and result.predictions[0].column == "score"


def test_multiclass_prediction_drift_profiles_each_class_column():
    spec = SyntheticSpec(task=Task.MULTICLASS, n_numeric=2, n_categorical=1, n_classes=3)
    contract = make_contract(spec)
    rng = np.random.default_rng(0)
    profile = build_reference_profile(generate_batch(spec, 3000, seed=1), contract,
                                      rng.dirichlet([5, 3, 2], size=3000))
    current = pd.DataFrame(rng.dirichlet([2, 3, 5], size=1000), columns=list(profile.scores))
    result = compute_drift(profile, generate_batch(spec, 1000, seed=2), current)
    assert [c.column for c in result.predictions] == ["proba_0", "proba_1", "proba_2"]
    assert result.prediction_drift


# --- small samples and errors ------------------------------------------------------------------
def test_the_size_a_verdict_needs_is_derived_from_power_and_named():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"num_00": rng.normal(size=2000)})
    profile = build_reference_profile(frame, _one_feature_contract(), np.zeros(10))
    small = compute_drift(profile, pd.DataFrame({"num_00": rng.normal(3.0, 1, size=40)}))
    assert small.insufficient_data and small.drifted_features == []
    assert {c.status for c in small.features} == {Status.INSUFFICIENT_DATA}
    reason = small.insufficient_reason()
    assert f"{small.rows_needed} needed" in reason and "drift.detectable_ks_statistic" in reason
    assert 40 < small.rows_needed < 2000
    # a window of the size it asked for gets a verdict, and sees the big shift
    enough = compute_drift(profile, pd.DataFrame({"num_00": rng.normal(3.0, 1, size=small.rows_needed)}))
    assert not enough.insufficient_data and enough.drifted_features == ["num_00"]
    fixed = compute_drift(profile, pd.DataFrame({"num_00": rng.normal(3.0, 1, size=40)}),
                          thresholds=DriftThresholds(min_rows=30))
    assert fixed.drifted_features == ["num_00"]


def test_a_reference_too_small_for_any_window_says_how_many_training_rows_it_needs():
    rng = np.random.default_rng(4)
    profile = build_reference_profile(pd.DataFrame({"num_00": rng.normal(size=30)}),
                                      _one_feature_contract(), np.zeros(10))
    result = compute_drift(profile, pd.DataFrame({"num_00": rng.normal(size=100_000)}))
    assert result.rows_needed is None and result.insufficient_data
    assert f"at least {result.reference_rows_needed} training rows" in result.insufficient_reason()


def test_missing_feature_is_refused_naming_it(reference):
    contract, profile = reference
    window = generate_batch(SPEC, 600, seed=1).drop(columns=["num_03"])
    with pytest.raises(DriftComputationError, match="num_03"):
        compute_drift(profile, window)


def test_thresholds_reject_nonsense_values():
    with pytest.raises(ValueError):
        DriftThresholds(false_alarm_rate=1.5)
    with pytest.raises(ValueError):
        DriftThresholds(correction="none")
