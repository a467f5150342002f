"""The data-contract gate on tiny batches: every bad input has a rule, a verdict and a message."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlops_onprem.contracts import load_contract, parse_contract
from mlops_onprem.errors import ContractError, DataValidationError
from mlops_onprem.synthetic import SyntheticSpec, generate_batch
from mlops_onprem.validation import (
    BatchRejectedError,
    ColumnTypeError,
    LabelLeakageError,
    MissingColumnError,
    NothingValidatedError,
    RuleResult,
    UnexpectedColumnError,
    ValidationResult,
    build_expectation_suite,
    check_arrow_schema,
    conform_to_contract,
    contract_rules,
    raise_for_result,
    validate_dataframe,
)

CONTRACT_YAML = """
dataset: tiny
version: "1.0.0"
owner: tests
row_key: id
label: {name: label, task: binary_classification, classes: [0, 1]}
features:
  - {name: x, dtype: float64, min: 0, max: 10}
  - {name: y, dtype: float64, nullable: true}
  - {name: cat, dtype: category, categories: [a, b]}
extra_columns: EXTRA
warn_only: WARN_ONLY
extra_expectations: EXTRAS
"""


def tiny_contract(extra: str = "reject", warn_only: str = "[]", extras: str = "[]"):
    text = CONTRACT_YAML.replace("EXTRAS", extras).replace("EXTRA", extra)
    return parse_contract(text.replace("WARN_ONLY", warn_only))


def tiny_batch(**overrides) -> pd.DataFrame:
    data = {
        "id": [1, 2, 3, 4],
        "x": [0.5, 1.0, 9.5, 10.0],
        "y": [np.nan, -1e6, 2.0, 3.0],
        "cat": pd.array(["a", "b", "a", "b"], dtype="str"),
        "label": [0, 1, 1, 0],
    }
    data.update(overrides)
    return pd.DataFrame(data)


def rule(result: ValidationResult, rule_id: str) -> RuleResult:
    return next(r for r in result.rules if r.rule_id == rule_id)


def failed_ids(result: ValidationResult) -> set[str]:
    return {r.rule_id for r in result.rules if r.failed}


def test_clean_batch_passes_with_every_rule_evaluated():
    result = validate_dataframe(tiny_batch(), tiny_contract(), stage="training")
    assert result.success, result.summary_markdown()
    assert failed_ids(result) == set()
    assert {"exists:x", "dtype:x", "not_null:x", "range:x", "range:y", "categories:cat",
            "unique:id", "row_count", "extra_columns",
                "categories:label"} <= {r.rule_id for r in result.rules}
    assert result.evaluated_count == len(result.rules)
    raise_for_result(result, dataset="tiny", batch_id="b1")  # does not raise


def test_missing_column_fails_and_skips_its_value_rules():
    result = validate_dataframe(tiny_batch().drop(columns=["x"]), tiny_contract(), stage="training")
    assert not result.success
    assert failed_ids(result) == {"exists:x"}
    assert rule(result, "range:x").status == "skipped"
    with pytest.raises(BatchRejectedError, match=r"exists:x.*'x'") as info:
        raise_for_result(result, dataset="tiny", batch_id="b1")
    assert isinstance(info.value, DataValidationError)
    assert "'tiny'" in str(info.value) and "'b1'" in str(info.value)


def test_extra_column_is_rejected_or_ignored_per_contract_policy():
    batch = tiny_batch(surprise=[1, 2, 3, 4])
    rejected = validate_dataframe(batch, tiny_contract("reject"), stage="training")
    assert failed_ids(rejected) == {"extra_columns"}
    assert "surprise" in rule(rejected, "extra_columns").message

    ignored = validate_dataframe(batch, tiny_contract("ignore"), stage="training")
    assert ignored.success and ignored.ignored_columns == ["surprise"]
    published = conform_to_contract(batch, tiny_contract("ignore"), stage="training")
    assert list(published.columns) == ["id", "x", "y", "cat", "label"]


def test_wrong_dtype_names_column_and_dtypes():
    result = validate_dataframe(tiny_batch(x=["1", "2", "3", "4"]), tiny_contract(), stage="training")
    assert failed_ids(result) == {"dtype:x"}
    message = rule(result, "dtype:x").message
    assert "'x'" in message and "str" in message and "float64" in message
    assert rule(result, "range:x").status == "skipped"


def test_nan_fails_only_where_column_is_not_nullable():
    result = validate_dataframe(tiny_batch(x=[np.nan, 1.0, 2.0, 3.0]), tiny_contract(), stage="training")
    assert failed_ids(result) == {"not_null:x"}
    assert rule(result, "not_null:x").unexpected_count == 1


def test_infinity_fails_the_finite_check_of_an_unbounded_float():
    result = validate_dataframe(tiny_batch(y=[np.inf, 1.0, 2.0, -np.inf]), tiny_contract(), stage="training")
    assert failed_ids(result) == {"range:y"}
    detail = rule(result, "range:y")
    assert detail.unexpected_count == 2
    json.dumps(result.to_dict(), allow_nan=False)  # inf examples are stored as strict JSON


def test_out_of_range_reports_count_and_examples():
    result = validate_dataframe(tiny_batch(x=[-1.0, 5.0, 11.0, 12.5]), tiny_contract(), stage="training")
    assert failed_ids(result) == {"range:x"}
    detail = rule(result, "range:x")
    assert detail.expectation == "expect_column_values_to_be_between"
    assert detail.unexpected_count == 3
    assert sorted(detail.unexpected_examples) == [-1.0, 11.0, 12.5]
    assert detail.observed == {"min": -1.0, "max": 12.5}


def test_unseen_category_is_named():
    result = validate_dataframe(tiny_batch(cat=["a", "zulu", "a", "b"]), tiny_contract(), stage="training")
    assert failed_ids(result) == {"categories:cat"}
    assert rule(result, "categories:cat").unexpected_examples == ["zulu"]


def test_empty_batch_is_rejected():
    empty = tiny_batch().iloc[0:0]
    result = validate_dataframe(empty, tiny_contract(), stage="training")
    assert failed_ids(result) == {"row_count"}
    assert not result.success


def test_duplicated_keys_are_rejected():
    result = validate_dataframe(tiny_batch(id=[1, 2, 2, 3]), tiny_contract(), stage="training")
    assert failed_ids(result) == {"unique:id"}
    assert rule(result, "unique:id").unexpected_count == 2


def test_label_must_be_present_for_training_and_absent_for_scoring():
    scoring = validate_dataframe(tiny_batch(), tiny_contract(), stage="scoring")
    assert failed_ids(scoring) == {"label_absent:label"}
    assert "leakage" in rule(scoring, "label_absent:label").message

    training = validate_dataframe(tiny_batch().drop(columns=["label"]), tiny_contract(), stage="training")
    assert failed_ids(training) == {"exists:label"}

    assert validate_dataframe(tiny_batch().drop(columns=["label"]), tiny_contract(), stage="scoring").success


def test_label_outside_its_classes_fails_at_training():
    result = validate_dataframe(tiny_batch(label=[0, 1, 2, 1]), tiny_contract(), stage="training")
    assert failed_ids(result) == {"categories:label"}


def test_warn_only_rule_is_reported_but_does_not_block():
    contract = tiny_contract(warn_only="[range:x]")
    result = validate_dataframe(tiny_batch(x=[0.5, 1.0, 99.0, 10.0]), contract, stage="training")
    assert result.success
    assert [w.rule_id for w in result.warnings] == ["range:x"]
    assert "range:x" in result.summary_markdown() and "warn" in result.summary_markdown()
    raise_for_result(result, dataset="tiny", batch_id="b1")


def test_extra_expectation_severity_decides_whether_it_blocks():
    mean = "{type: expect_column_mean_to_be_between, kwargs: {column: x, max_value: 1}, severity: %s}"
    warn = validate_dataframe(tiny_batch(), tiny_contract(extras=f"[{mean % 'warn'}]"), stage="training")
    assert warn.success and [w.rule_id for w in warn.warnings] == [
        "extra:expect_column_mean_to_be_between:x"]
    error = validate_dataframe(tiny_batch(), tiny_contract(extras=f"[{mean % 'error'}]"), stage="training")
    assert not error.success


def test_contract_errors_for_unknown_warn_only_id_and_unknown_expectation():
    with pytest.raises(ContractError, match="warn_only.*range:nope"):
        contract_rules(tiny_contract(warn_only="[range:nope]"), "training")
    bogus = "[{type: expect_column_to_sing, kwargs: {column: x}}]"
    with pytest.raises(ContractError, match="expect_column_to_sing"):
        validate_dataframe(tiny_batch(), tiny_contract(extras=bogus), stage="training")


def test_result_with_nothing_evaluated_is_an_error_not_a_pass():
    skipped = RuleResult("range:x", "range", "x", "expect_column_values_to_be_between", "error", "skipped")
    result = ValidationResult("tiny", "1", "training", "b1", 0, 0, [skipped])
    assert not result.success
    with pytest.raises(NothingValidatedError):
        raise_for_result(result, dataset="tiny", batch_id="b1")


def test_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="stage"):
        validate_dataframe(tiny_batch(), tiny_contract(), stage="serving")


def test_screened_verdicts_equal_the_row_wise_suite():
    """The cheap aggregate screen must not change a verdict (incl. an all-NaN nullable column)."""
    import great_expectations as gx

    contract = tiny_contract()
    batch = tiny_batch(x=[0.5, 11.0, 9.5, 10.0], y=[np.nan] * 4, cat=["a", "q", "a", "b"], id=[1, 1, 2, 3])
    result = validate_dataframe(batch, contract, stage="training")
    detail = build_expectation_suite(contract, "training", detail=True)
    assert {e.expectation_type for e in detail.expectations} == {
        "expect_column_values_to_be_between", "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_unique"}
    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("check").add_dataframe_asset("b")
    row_wise = asset.add_batch_definition_whole_dataframe("w").get_batch(
        batch_parameters={"dataframe": batch}).validate(detail)
    for r in row_wise.results:
        rule_id = r.expectation_config.meta["rule_id"]
        assert rule(result, rule_id).failed == (not r.success), rule_id
    assert failed_ids(result) == {"range:x", "categories:cat", "unique:id"}


def test_screening_suite_uses_aggregate_expectations_for_ranges():
    suite = build_expectation_suite(tiny_contract(), "training")
    types = {e.expectation_type for e in suite.expectations}
    assert "expect_column_min_to_be_between" in types and "expect_column_max_to_be_between" in types
    assert "expect_column_values_to_be_between" not in types
    assert all(e.meta and e.meta.get("rule_id") for e in suite.expectations)


def test_pandas_categorical_and_string_dtypes_are_accepted_for_categories():
    for cat in (pd.Categorical(["a", "b", "a", "b"]), pd.array(["a", "b", "a", "b"], dtype="string"),
                np.array(["a", "b", "a", "b"], dtype=object)):
        assert validate_dataframe(tiny_batch(cat=cat), tiny_contract(), stage="training").success


def test_synthetic_demo_batch_passes_the_demo_contract():
    from mlops_onprem.contracts import default_contracts_dir

    contract = load_contract(default_contracts_dir() / "demo.yaml")
    batch = generate_batch(SyntheticSpec(), 500, seed=3)
    assert validate_dataframe(batch, contract, stage="training").success


def test_arrow_schema_check_names_the_failing_column():
    contract = tiny_contract()
    good = pa.schema([("id", pa.int64()), ("x", pa.float64()), ("y", pa.float32()),
                      ("cat", pa.dictionary(pa.int32(), pa.string()))])
    check_arrow_schema(good, contract, "scoring")
    with pytest.raises(MissingColumnError) as missing:
        check_arrow_schema(pa.schema([f for f in good if f.name != "y"]), contract, "scoring")
    assert missing.value.column == "y" and "'y'" in str(missing.value)
    with pytest.raises(LabelLeakageError, match="'label'"):
        check_arrow_schema(good.append(pa.field("label", pa.int64())), contract, "scoring")
    with pytest.raises(ColumnTypeError, match="'x'"):
        check_arrow_schema(good.set(1, pa.field("x", pa.string())), contract, "scoring")
    with pytest.raises(UnexpectedColumnError, match="extra"):
        check_arrow_schema(good.append(pa.field("extra", pa.int64())), contract, "scoring")


def test_markdown_summary_lists_failures_in_a_table():
    result = validate_dataframe(tiny_batch(x=[-1.0, 5.0, 11.0, 12.5]), tiny_contract(), stage="training")
    markdown = result.summary_markdown(result_key="validation/tiny/b1.json")
    assert markdown.startswith("**FAILED")
    assert "validation/tiny/b1.json" in markdown
    assert "| `range:x` | values in [0.0, 10.0] | e.g. -1.0, 11.0, 12.5 | 3 |" in markdown
