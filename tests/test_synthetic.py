"""The synthetic generator: reproducible, true to its contract, and its drift knobs do what they say."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_onprem.contracts import Task, load_contract
from mlops_onprem.synthetic import (
    LABEL,
    ROW_KEY,
    UNSEEN_CATEGORY,
    SyntheticSpec,
    corrupt_batch,
    generate_batch,
    make_contract,
)
from mlops_onprem.validation import validate_dataframe

SPEC = SyntheticSpec()


def test_same_seed_gives_identical_batches_and_another_seed_does_not():
    a = generate_batch(SPEC, 200, seed=5)
    pd.testing.assert_frame_equal(a, generate_batch(SPEC, 200, seed=5))
    assert not a.equals(generate_batch(SPEC, 200, seed=6))


def test_columns_follow_the_contract_order_and_row_keys_are_stable():
    df = generate_batch(SPEC, 50, seed=1, start_row=1000)
    contract = make_contract(SPEC)
    assert list(df.columns) == contract.input_columns(with_label=True)
    assert df[ROW_KEY].tolist() == list(range(1000, 1050))


def test_checked_in_demo_contract_is_the_generators_contract():
    assert load_contract("data_contracts/demo.yaml") == make_contract(SyntheticSpec(dataset="demo"))


@pytest.mark.parametrize("task", [Task.BINARY, Task.MULTICLASS, Task.REGRESSION])
def test_generated_batches_pass_their_own_contract(task):
    spec = SyntheticSpec(task=task, n_numeric=4, n_categorical=1)
    result = validate_dataframe(generate_batch(spec, 300, seed=2), make_contract(spec), stage="training")
    assert result.success, result.summary_line()


def test_covariate_shift_moves_the_drifting_features_by_that_many_standard_deviations():
    clean = generate_batch(SPEC, 20_000, seed=3)
    shifted = generate_batch(SPEC, 20_000, seed=3, covariate_shift=0.5)
    for name in SPEC.drifting_features:
        moved = (shifted[name].mean() - clean[name].mean()) / clean[name].std()
        assert moved == pytest.approx(0.5, abs=0.05)
    untouched = SPEC.numeric_names[-1]
    assert shifted[untouched].mean() == pytest.approx(clean[untouched].mean(), abs=1e-9)


def test_concept_shift_changes_the_label_without_touching_the_inputs():
    clean = generate_batch(SPEC, 20_000, seed=4)
    flipped = generate_batch(SPEC, 20_000, seed=4, concept_shift=1.0)
    features = SPEC.numeric_names
    pd.testing.assert_frame_equal(clean[features], flipped[features])
    corr_clean = np.corrcoef(clean[features[0]].fillna(0), clean[LABEL])[0, 1]
    corr_flipped = np.corrcoef(flipped[features[0]].fillna(0), flipped[LABEL])[0, 1]
    assert np.sign(corr_clean) == -np.sign(corr_flipped) and abs(corr_clean) > 0.05


def test_corrupt_batch_breaks_range_category_and_key_but_leaves_the_input_intact():
    df = generate_batch(SPEC, 20, seed=7)
    before = df.copy()
    broken = corrupt_batch(SPEC, df)
    pd.testing.assert_frame_equal(df, before)
    assert UNSEEN_CATEGORY in set(broken[SPEC.categorical_names[0]])
    assert broken[ROW_KEY].duplicated().any()
    result = validate_dataframe(broken, make_contract(SPEC), stage="training")
    failed = {rule.rule_id for rule in result.blocking_failures}
    assert {f"range:{SPEC.numeric_names[0]}", f"categories:{SPEC.categorical_names[0]}",
            f"unique:{ROW_KEY}"} <= failed
