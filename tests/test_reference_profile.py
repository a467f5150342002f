"""Reference profile: fine grid with exact counts, coarse bins, categorical counts, score columns,
JSON round trip, version-1 profiles."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops_onprem.contracts import Task
from mlops_onprem.reference_profile import (
    NULL_CATEGORY,
    ReferenceProfile,
    ReferenceProfileError,
    build_reference_profile,
    profile_categorical,
    profile_numeric,
)
from mlops_onprem.synthetic import SyntheticSpec, generate_batch, make_contract

SPEC = SyntheticSpec(n_numeric=3, n_categorical=1)


def test_numeric_profile_has_decile_bins_with_tenth_shares():
    values = np.arange(1000, dtype=np.float64)
    profile = profile_numeric("x", values, n_bins=10, grid_size=100)
    assert profile.edges.size == 9
    np.testing.assert_allclose(profile.bin_shares, np.full(10, 0.1), atol=0.002)
    assert profile.bin_shares.sum() == pytest.approx(1.0)
    assert profile.mean == pytest.approx(499.5)
    assert (profile.min, profile.max) == (0.0, 999.0)


def test_numeric_profile_deduplicates_edges_of_a_low_cardinality_column():
    values = np.array([0.0] * 700 + [1.0] * 200 + [2.0] * 100)
    profile = profile_numeric("x", values, n_bins=10)
    assert list(profile.edges) == [0.0, 1.0]  # top edge 2.0 == max is dropped
    np.testing.assert_allclose(profile.bin_shares, [0.7, 0.2, 0.1])


def test_numeric_profile_counts_nulls_apart_and_excludes_them_from_bins_and_sample():
    values = np.array([np.nan, 1.0, 2.0, np.nan, 3.0, 4.0])
    profile = profile_numeric("x", values, n_bins=2)
    assert profile.null_share == pytest.approx(2 / 6) and profile.n_nulls == 2
    assert profile.grid_counts.sum() == 4
    assert profile.n_valid == 4
    assert profile.bin_shares.sum() == pytest.approx(1.0)


def test_the_grid_holds_exact_counts_and_the_coarse_edges():
    values = np.random.default_rng(0).normal(size=5000)
    profile = profile_numeric("x", values, grid_size=200)
    assert 190 <= profile.grid.size <= 210 and np.all(np.diff(profile.grid) > 0)
    assert profile.grid_counts.sum() == 5000
    np.testing.assert_array_equal(
        profile.grid_counts,
        np.bincount(np.searchsorted(profile.grid, values), minlength=profile.grid.size + 1))
    assert np.isin(profile.edges, profile.grid).all() and profile.edges.size == 9
    small = profile_numeric("y", np.arange(50.0))  # fewer values than the grid: every value
    assert small.grid.size == 49 and set(small.grid_counts) == {1}


def test_numeric_profile_rejects_an_all_null_column_naming_it():
    with pytest.raises(ReferenceProfileError, match="'empty'"):
        profile_numeric("empty", np.array([np.nan, np.nan]))


def test_categorical_profile_counts_categories_and_nulls():
    values = pd.Series(["a", "b", "a", None], dtype="string")
    profile = profile_categorical("c", values)
    assert profile.counts == {"a": 2, "b": 1, NULL_CATEGORY: 1}
    assert profile.null_share == 0.25
    assert profile.frequencies["a"] == 0.5


def test_build_profile_covers_every_contract_feature_and_the_score():
    contract = make_contract(SPEC)
    frame = generate_batch(SPEC, 2000, seed=1)
    scores = np.random.default_rng(0).random(2000)
    profile = build_reference_profile(frame, contract, scores[:500])
    assert list(profile.numeric) == contract.numeric_features
    assert list(profile.categorical) == contract.categorical_features
    assert list(profile.scores) == ["score"]
    assert profile.n_rows == 2000 and profile.score_rows == 500
    assert profile.dataset == contract.dataset and profile.task == Task.BINARY.value


def test_build_profile_names_multiclass_score_columns_after_the_classes():
    spec = SyntheticSpec(task=Task.MULTICLASS, n_numeric=2, n_categorical=1, n_classes=3)
    contract = make_contract(spec)
    frame = generate_batch(spec, 600, seed=2)
    proba = np.random.default_rng(1).dirichlet(np.ones(3), size=600)
    profile = build_reference_profile(frame, contract, proba)
    assert list(profile.scores) == ["proba_0", "proba_1", "proba_2"]
    with pytest.raises(ReferenceProfileError, match="4 columns"):
        build_reference_profile(frame, contract, np.ones((600, 4)) / 4)


def test_build_profile_rejects_missing_features_naming_them():
    contract = make_contract(SPEC)
    frame = generate_batch(SPEC, 100, seed=1)
    with pytest.raises(ReferenceProfileError, match="num_00"):
        build_reference_profile(frame.drop(columns=["num_00"]), contract, np.zeros(100))


def test_profile_round_trips_through_json_bit_for_bit():
    contract = make_contract(SPEC)
    frame = generate_batch(SPEC, 3000, seed=5)
    profile = build_reference_profile(frame, contract, np.random.default_rng(2).random(3000))
    text = json.dumps(profile.to_dict())
    back = ReferenceProfile.from_dict(json.loads(text))
    assert back.to_dict() == profile.to_dict()
    for name in contract.numeric_features:
        np.testing.assert_array_equal(back.numeric[name].grid, profile.numeric[name].grid)
        np.testing.assert_array_equal(back.numeric[name].grid_counts,
                                      profile.numeric[name].grid_counts)
        np.testing.assert_array_equal(back.numeric[name].edges, profile.numeric[name].edges)
    assert back.categorical["cat_00"].counts == profile.categorical["cat_00"].counts


def test_from_dict_refuses_a_document_that_is_not_a_profile():
    with pytest.raises(ReferenceProfileError, match="format"):
        ReferenceProfile.from_dict({"format": "something-else"})


def test_a_version_1_profile_still_loads_with_its_sample_as_the_reference():
    import base64
    sample = np.sort(np.random.default_rng(3).normal(size=400))
    v1 = {"format": "mlops-onprem/reference-profile/v1", "dataset": "d", "contract_version": "1",
          "task": "binary_classification", "n_rows": 4000, "n_bins": 10, "sample_size": 400,
          "seed": 0, "categorical": [], "scores": [],
          "numeric": [{"kind": "numeric", "name": "x", "n_rows": 4000, "null_share": 0.0,
                       "mean": 0.0, "std": 1.0, "min": -3.0, "max": 3.0,
                       "edges": list(np.quantile(sample, np.linspace(0, 1, 11)[1:-1])),
                       "bin_shares": [0.1] * 10, "sample_size": 400,
                       "sample_f64_b64": base64.b64encode(sample.astype("<f8").tobytes()).decode()}]}
    profile = ReferenceProfile.from_dict(v1)
    assert profile.numeric["x"].grid_counts.sum() == 400  # the sample's size, honestly
    assert profile.numeric["x"].edges.size == 9
