"""Contract evolution: semantic versions, the change rules, the bump check, the CLI and scoring.

Each rule of ``mlops_onprem.contract_diff`` (its docstring) has a case below on a three-feature
contract; the module is pure, so these run in milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlops_onprem import keys
from mlops_onprem.cli import main
from mlops_onprem.contract_diff import (
    MAJOR,
    MINOR,
    PATCH,
    IncompatibleContractError,
    VersionBumpError,
    check_compatible,
    check_version_bump,
    diff_contracts,
    required_bump,
    version_problems,
)
from mlops_onprem.contracts import Contract, default_contracts_dir, load_contract, parse_contract
from mlops_onprem.errors import ContractError
from mlops_onprem.synthetic import SyntheticSpec, make_contract

BASE_YAML = """
dataset: shop
version: 1.2.3
owner: data-team
description: orders
row_key: id
timestamp: ts
label: {name: churned, task: binary_classification, classes: [0, 1]}
features:
  - {name: amount, dtype: float64, min: 0, max: 100, description: order amount}
  - {name: visits, dtype: int64, nullable: true, min: 0}
  - {name: segment, dtype: category, categories: [gold, silver]}
rows: {min: 1, max: 1000}
warn_only: [range:amount]
formats: [parquet]
extra_expectations:
  - {type: expect_column_mean_to_be_between, kwargs: {column: amount, min_value: 0}, id: mean-amount}
"""


def base() -> Contract:
    return parse_contract(BASE_YAML, source="base")


def edit(contract: Contract, *, feature: str | None = None, version: str | None = None,
         **fields: Any) -> Contract:
    """A copy with ``fields`` changed (on one feature when ``feature`` is given) and ``version``,
    re-validated."""
    raw = contract.model_dump(mode="json")
    if version is not None:
        raw["version"] = version
    if feature is None:
        raw.update(fields)
    else:
        raw["features"] = [{**f, **fields} if f["name"] == feature else f for f in raw["features"]]
    return Contract.model_validate(raw)


def features(contract: Contract, *specs: dict[str, Any]) -> Contract:
    return edit(contract, features=list(specs))


def F(name: str) -> dict[str, Any]:  # noqa: N802 - reads like a constructor
    return base().feature(name).model_dump(mode="json")


# (case, new contract, kind, column, words in the sentence)
RULES = [
    ("nullable feature added", lambda c: features(c, F("amount"), F("visits"), F("segment"),
                                                  {"name": "coupon", "dtype": "float64", "nullable": True}),
     MINOR, "coupon", "nullable feature added"),
    ("required feature added", lambda c: features(c, F("amount"), F("visits"), F("segment"),
                                                  {"name": "coupon", "dtype": "float64"}),
     MAJOR, "coupon", "required feature added"),
    ("feature removed", lambda c: features(c, F("amount"), F("segment")), MAJOR, "visits", "removed"),
    ("feature renamed", lambda c: features(c, F("amount"), {**F("visits"), "name": "n_visits"}, F("segment")),
     MAJOR, "visits", "renamed to 'n_visits'"),
    ("features reordered", lambda c: features(c, F("visits"), F("amount"), F("segment")),
     MAJOR, "amount", "order changed"),
    ("feature retyped", lambda c: edit(c, feature="visits", dtype="float64"),
     MAJOR, "visits", "retyped int64 -> float64"),
    ("nullable made required", lambda c: edit(c, feature="visits", nullable=False),
     MAJOR, "visits", "made required"),
    ("required made nullable", lambda c: edit(c, feature="amount", nullable=True),
     MINOR, "amount", "made nullable"),
    ("min lowered", lambda c: edit(c, feature="amount", min=-5), MINOR, "amount", "range widened"),
    ("max raised", lambda c: edit(c, feature="amount", max=500), MINOR, "amount", "range widened"),
    ("max dropped", lambda c: edit(c, feature="amount", max=None), MINOR, "amount", "max 100 dropped"),
    ("min raised", lambda c: edit(c, feature="amount", min=10), MAJOR, "amount", "range narrowed"),
    ("max lowered", lambda c: edit(c, feature="amount", max=50), MAJOR, "amount", "range narrowed"),
    ("max added", lambda c: edit(c, feature="visits", max=9), MAJOR, "visits", "max 9 added"),
    ("category added", lambda c: edit(c, feature="segment", categories=["gold", "silver", "bronze"]),
     MINOR, "segment", "categories added: ['bronze']"),
    ("category removed", lambda c: edit(c, feature="segment", categories=["gold"]),
     MAJOR, "segment", "categories removed: ['silver']"),
    ("categories reordered", lambda c: edit(c, feature="segment", categories=["silver", "gold"]),
     PATCH, "segment", "reordered"),
    ("feature description", lambda c: edit(c, feature="amount", description="in EUR"),
     PATCH, "amount", "description changed"),
    ("contract description", lambda c: edit(c, description="all orders"), PATCH, None, "description"),
    ("owner", lambda c: edit(c, owner="ml-team"), PATCH, None, "owner"),
    ("label classes", lambda c: edit(c, label={"name": "churned", "task": "binary_classification",
                                               "classes": [1, 2]}), MAJOR, "churned", "label classes"),
    ("label task", lambda c: edit(c, label={"name": "churned", "task": "regression"}),
     MAJOR, "churned", "label task"),
    ("label renamed", lambda c: edit(c, label={"name": "left", "task": "binary_classification",
                                               "classes": [0, 1]}), MAJOR, "churned", "label renamed"),
    ("label removed", lambda c: edit(c, label=None), MAJOR, "churned", "label removed"),
    ("row key", lambda c: edit(c, row_key="order_id"), MAJOR, "id", "row key 'id' -> 'order_id'"),
    ("timestamp", lambda c: edit(c, timestamp="created"), MAJOR, "ts", "timestamp column"),
    ("dataset", lambda c: edit(c, dataset="orders"), MAJOR, None, "dataset"),
    ("rows.min raised", lambda c: edit(c, rows={"min": 10, "max": 1000}), MAJOR, None, "rows.min"),
    ("rows.max raised", lambda c: edit(c, rows={"min": 1, "max": 5000}), MINOR, None, "rows.max"),
    ("key_unique off", lambda c: edit(c, key_unique=False), MINOR, "id", "key_unique"),
    ("extra_columns ignore", lambda c: edit(c, extra_columns="ignore"), MINOR, None, "extra_columns"),
    ("warn_only id removed", lambda c: edit(c, warn_only=[]), MAJOR, None, "block again"),
    ("warn_only id added", lambda c: edit(c, warn_only=["range:amount", "range:visits"]),
     MINOR, None, "only warn"),
    ("format added", lambda c: edit(c, formats=["parquet", "csv"]), MINOR, None, "formats added"),
    ("overlap relaxed", lambda c: edit(c, row_key_overlap="warn"), MINOR, "id", "row_key_overlap"),
    ("expectation added (error)", lambda c: edit(c, extra_expectations=[
        *c.model_dump(mode="json")["extra_expectations"],
        {"type": "expect_column_median_to_be_between", "kwargs": {"column": "visits", "max_value": 9}}]),
     MAJOR, "visits", "added with severity error"),
    ("expectation added (warn)", lambda c: edit(c, extra_expectations=[
        *c.model_dump(mode="json")["extra_expectations"],
        {"type": "expect_column_median_to_be_between", "kwargs": {"column": "visits"}, "severity": "warn"}]),
     MINOR, "visits", "added with severity warn"),
    ("expectation removed", lambda c: edit(c, extra_expectations=[]), MINOR, "amount", "removed"),
    ("expectation changed", lambda c: edit(c, extra_expectations=[
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "amount", "min_value": 5},
         "id": "mean-amount"}]), MAJOR, "amount", "changed its arguments"),
]


@pytest.mark.parametrize(("case", "make", "kind", "column", "words"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_classifies_its_change(case, make, kind, column, words):
    changes = diff_contracts(base(), make(base()))
    assert len(changes) == 1, changes
    (change,) = changes
    assert (change.kind, change.column) == (kind, column)
    assert words in change.message


@pytest.mark.parametrize(("before", "after", "kind"), [
    ({"formats": ["parquet", "csv"]}, {"formats": ["parquet"]}, MAJOR),
    ({"key_unique": False}, {"key_unique": True}, MAJOR),
    ({"extra_columns": "ignore"}, {"extra_columns": "reject"}, MAJOR),
    ({"row_key_overlap": "warn"}, {"row_key_overlap": "reject"}, MAJOR),
    ({"row_key_overlap": "warn"}, {"row_key_overlap": "keep_latest"}, MAJOR),
], ids=["format removed", "key_unique on", "extra_columns reject",
    "overlap to reject", "warn to keep_latest"])
def test_the_stricter_direction_of_each_batch_rule_is_major(before, after, kind):
    changes = diff_contracts(edit(base(), **before), edit(base(), **after))
    assert [c.kind for c in changes] == [kind]


def test_identical_contracts_and_a_version_only_change_have_no_changes():
    assert diff_contracts(base(), base()) == []
    assert diff_contracts(base(), edit(base(), version="1.2.4")) == []
    assert required_bump([]) is None


def test_a_retyped_feature_is_one_change_not_also_a_range_change():
    changes = diff_contracts(base(), edit(base(), feature="amount", dtype="int64", min=5))
    assert [(c.kind, c.column) for c in changes] == [(MAJOR, "amount")]


def test_adding_a_minimum_narrows_and_dropping_it_widens():
    no_min = edit(base(), feature="visits", min=None)
    (added,) = diff_contracts(no_min, base())
    assert (added.kind, added.column, added.message) == (MAJOR, "visits", "min 0 added (range narrowed)")
    (dropped,) = diff_contracts(base(), no_min)
    assert (dropped.kind, dropped.message) == (MINOR, "min 0 dropped (range widened)")


def test_required_bump_is_the_largest_change():
    new = edit(edit(base(), description="x"), feature="amount", min=-1)
    assert required_bump(diff_contracts(base(), new)) == MINOR
    assert required_bump(diff_contracts(base(), edit(new, feature="visits", nullable=False))) == MAJOR


# --- the declared version bump ------------------------------------------------------------
def test_a_breaking_change_under_a_minor_bump_is_an_error_naming_the_change():
    new = edit(base(), feature="amount", max=50, version="1.3.0")
    with pytest.raises(VersionBumpError) as info:
        check_version_bump(base(), new)
    message = str(info.value)
    assert "'amount'" in message and "range narrowed" in message
    assert "a minor bump" in message and "needs a major bump (version 2.0.0 or later)" in message


@pytest.mark.parametrize(("version", "ok"), [
    ("1.2.3", False), ("1.2.4", False), ("1.3.0", True), ("2.0.0", True)])
def test_a_minor_change_needs_at_least_a_minor_bump(version, ok):
    new = edit(base(), feature="amount", max=500, version=version)
    assert (version_problems(base(), new) == []) is ok


def test_a_patch_change_needs_a_patch_bump_and_a_version_never_goes_back():
    assert version_problems(base(), edit(base(), owner="x", version="1.2.4")) == []
    assert "no version bump" in version_problems(base(), edit(base(), owner="x"))[0]
    assert "went backwards" in version_problems(base(), edit(base(), version="1.2.2"))[0]
    check_version_bump(base(), edit(base(), feature="amount", max=50, version="2.0.0"))  # no raise


def test_versions_compare_as_numbers_not_strings():
    old = edit(base(), version="1.9.0")
    assert version_problems(old, edit(base(), feature="amount", max=500, version="1.10.0")) == []


# --- semantic versions when parsed ----------------------------------------------------------
@pytest.mark.parametrize("bad", ['"1"', "1.0", '"v1.0.0"', '"1.0"', '"01.0.0"', '"1.0.0-rc1"', '""'])
def test_a_version_that_is_not_major_minor_patch_is_refused_naming_file_and_value(tmp_path, bad):
    path = tmp_path / "shop.yaml"
    path.write_text(BASE_YAML.replace("version: 1.2.3", f"version: {bad}"), encoding="utf-8")
    with pytest.raises(ContractError) as info:
        load_contract(path)
    message = str(info.value)
    assert str(path) in message and "MAJOR.MINOR.PATCH" in message
    assert repr(parse_value(bad)) in message


def parse_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(f"v: {text}")["v"]


def test_the_repositorys_contracts_and_synthetic_ones_are_semantic_versions():
    for path in sorted(default_contracts_dir().glob("*.yaml")):
        assert load_contract(path).semver >= (1, 0, 0)
    assert str(make_contract(SyntheticSpec()).semver) == "1.0.0"


# --- compatibility ------------------------------------------------------------------------
def test_check_compatible_names_the_breaking_change_and_passes_compatible_ones():
    check_compatible(base(), edit(base(), feature="amount", max=500, version="1.3.0"))
    with pytest.raises(IncompatibleContractError, match=r"column 'visits': made required") as info:
        check_compatible(base(), edit(base(), feature="visits", nullable=False, version="2.0.0"))
    assert [c.column for c in info.value.changes] == ["visits"]


# --- the CLI ------------------------------------------------------------------------------
def write(path: Path, contract: Contract) -> str:
    path.write_text(contract.to_yaml(), encoding="utf-8")
    return str(path)


def test_cli_diff_exits_0_on_a_compatible_change_and_lists_it(tmp_path, capsys):
    old = write(tmp_path / "old.yaml", base())
    new = write(tmp_path / "new.yaml", edit(base(), feature="amount", max=500, version="1.3.0"))
    assert main(["contract", "diff", old, new]) == 0
    out = capsys.readouterr().out
    assert "needs a minor bump" in out and "MINOR column 'amount': max raised 100 -> 500" in out


def test_cli_diff_exits_1_on_a_breaking_change_even_with_a_major_bump(tmp_path, capsys):
    old = write(tmp_path / "old.yaml", base())
    new = write(tmp_path / "new.yaml", features(edit(base(), version="2.0.0"), F("amount"), F("segment")))
    assert main(["contract", "diff", old, new]) == 1
    captured = capsys.readouterr()
    assert "MAJOR column 'visits': feature removed" in captured.out and "breaking" in captured.err


def test_cli_diff_exits_1_when_the_version_bump_is_too_small(tmp_path, capsys):
    old = write(tmp_path / "old.yaml", base())
    new = write(tmp_path / "new.yaml", edit(base(), feature="amount", max=500))  # same version
    assert main(["contract", "diff", old, new]) == 1
    assert "needs a minor bump (version 1.3.0 or later)" in capsys.readouterr().err


def test_cli_diff_json_lists_changes_and_version_problems(tmp_path, capsys):
    old = write(tmp_path / "old.yaml", base())
    new = write(tmp_path / "new.yaml", edit(base(), feature="amount", min=10, version="1.3.0"))
    assert main(["contract", "diff", "--json", old, new]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["breaking"] is True and report["required_bump"] == "major"
    assert report["changes"] == [{"kind": "major", "column": "amount",
                                  "message": "min raised 0 -> 10 (range narrowed)"}]
    assert report["new"] == {"path": new, "version": "1.3.0"} and len(report["version_problems"]) == 1


def test_cli_diff_of_an_invalid_contract_is_an_error_naming_the_file(tmp_path, capsys):
    old = write(tmp_path / "old.yaml", base())
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE_YAML.replace("version: 1.2.3", "version: '2'"), encoding="utf-8")
    assert main(["contract", "diff", old, str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "'2'" in err


# --- scoring refuses a champion trained under an incompatible contract ----------------------
def register_champion(store, trained_under: Contract) -> None:
    """A registry version in the stored layout: ONNX, the contract beside it, card, alias."""
    from mlops_onprem.store.base import sha256_bytes
    from tests.fixtures.scoring import linear_onnx

    model = linear_onnx(trained_under)
    onnx_key = keys.model_file_key("demo", 1, "model.onnx")
    contract_key = keys.model_file_key("demo", 1, "contract.yaml")
    store.put_bytes(onnx_key, model)
    store.put_bytes(contract_key, trained_under.to_yaml().encode("utf-8"))
    store.put_json(keys.model_card_key("demo", 1), {"name": "demo", "version": 1, "files": {
        "onnx": {"key": onnx_key, "sha256": sha256_bytes(model)}, "contract": {"key": contract_key}}})
    store.write_pointer(keys.alias_key("demo", "champion"), {"version": 1}, expected_token=None)


def test_scoring_refuses_a_champion_whose_training_contract_is_incompatible(local_store):
    from mlops_onprem.onnx_io import FeatureMismatchError
    from mlops_onprem.scoring import resolve_scoring_model

    trained = make_contract(SyntheticSpec())
    register_champion(local_store, trained)
    narrowed = edit(trained, feature="num_02", min=0.0, version="2.0.0")  # same features: ONNX fits
    with pytest.raises(FeatureMismatchError) as info:
        resolve_scoring_model(local_store, "demo", "champion", narrowed)
    message = str(info.value)
    assert "model demo v1" in message and "column 'num_02': min raised" in message
    assert "range narrowed" in message


def test_scoring_accepts_a_champion_under_a_compatible_newer_contract(local_store):
    from mlops_onprem.scoring import clear_session_cache, resolve_scoring_model

    trained = make_contract(SyntheticSpec())
    register_champion(local_store, trained)
    widened = edit(edit(trained, feature="num_02", max=99.0), description="wider", version="1.1.0")
    clear_session_cache()
    model = resolve_scoring_model(local_store, "demo", "champion", widened)
    assert (model.name, model.version) == ("demo", 1)
