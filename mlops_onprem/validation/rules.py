"""The rule model: what a data contract imposes on a batch at a stage, as data.

A contract becomes a stable, ordered list of :class:`Rule`. **Schema rules** (column present,
dtype, no extra column, label present/absent, unique column names) have no expectation and are
decided by :mod:`mlops_onprem.validation.schema`. **Value rules** (row count, not-null,
range/finite, categories, unique key, extra expectations) carry :class:`ExpectationSpec`s that
:mod:`mlops_onprem.validation.gx_engine` turns into Great Expectations expectations: cheap
aggregate *screens*, and a row-wise *detail* run only when a screen fails. Rules named in the
contract's ``warn_only`` are downgraded to severity warn.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mlops_onprem.contracts import Contract, Dtype, Severity, Task
from mlops_onprem.errors import ContractError


class RuleStatus(StrEnum):
    """A rule's outcome on one batch (``skipped``: not evaluated, the result's message says why)."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"

STAGES = ("training", "scoring")
EXAMPLE_COUNT = 5  # example unexpected values kept per rule
_FLOAT_MAX = sys.float_info.max  # "finite" = within +-max float: inf fails, NaN is a null


@dataclass(frozen=True)
class ExpectationSpec:
    """One GX expectation as data: snake_case type and kwargs (built into GX objects lazily)."""

    type: str
    kwargs: Mapping[str, Any]


@dataclass(frozen=True)
class Rule:
    """One contract rule. Schema rules have no ``screen``; value rules are evaluated by GX.

    ``screen`` expectations decide a pass cheaply; ``detail`` (row-wise) is run only when a
    screen fails and then gives the final verdict, the unexpected count and examples.
    """

    rule_id: str
    kind: str
    column: str | None
    severity: Severity
    description: str
    expectation: str  # name shown in reports (the row-wise GX expectation when there is one)
    screen: tuple[ExpectationSpec, ...] = ()
    detail: ExpectationSpec | None = None

    @property
    def is_schema(self) -> bool:
        return not self.screen



def _stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return stage


def _finite_bound(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def _bounds_text(lo: float | None, hi: float | None) -> str:
    """The range rule's expectation in words: an open side means "finite" on that side."""
    if lo is not None and hi is not None:
        return f"values in [{lo}, {hi}]"
    if lo is not None:
        return f"values >= {lo} (finite)"
    if hi is not None:
        return f"values <= {hi} (finite)"
    return "values finite (no +-inf)"


def _rules_for_stage(contract: Contract, stage: str) -> list[Rule]:
    """All rules with severity ERROR (``warn_only`` is applied by :func:`contract_rules`)."""
    err = Severity.ERROR
    rules: list[Rule] = [
        Rule("unique_columns", "unique_columns", None, err, "column names appear once",
             "schema:unique_column_names"),
        Rule("row_count", "row_count", None, err,
             f"between {max(1, contract.rows.min)} and {contract.rows.max} rows",
             "expect_table_row_count_to_be_between",
             screen=(ExpectationSpec("expect_table_row_count_to_be_between", {
                 "min_value": max(1, contract.rows.min), "max_value": contract.rows.max}),)),
    ]
    # (name, logical dtype, nullable, numeric bounds, allowed values)
    columns: list[tuple[str, Dtype, bool, tuple[float | None, float | None], tuple | None]] = [
        (contract.row_key, Dtype.INT, False, (None, None), None)  # int or string, see _dtype_ok
    ]
    if contract.timestamp:
        columns.append((contract.timestamp, Dtype.TIMESTAMP, False, (None, None), None))
    for spec in contract.features:
        columns.append((spec.name, spec.dtype, spec.nullable, (spec.min, spec.max), spec.categories))
    label = contract.label
    if stage == "training" and label is not None:
        if label.task == Task.REGRESSION:
            columns.append((label.name, Dtype.FLOAT, False, (label.min, label.max), None))
        else:
            columns.append((label.name, Dtype.INT, False, (None, None), label.classes))

    for name, dtype, nullable, (lo, hi), allowed in columns:
        is_label = label is not None and name == label.name
        rules.append(Rule(f"exists:{name}", "exists", name, err, "column is present",
                          "expect_column_to_exist"))
        rules.append(Rule(f"dtype:{name}", "dtype", name, err, f"dtype fits {dtype.value}",
                          "schema:dtype"))
        if not nullable:
            rules.append(Rule(
                f"not_null:{name}", "not_null", name, err, "no null/NaN values",
                "expect_column_values_to_not_be_null",
                screen=(ExpectationSpec("expect_column_values_to_not_be_null", {"column": name}),),
            ))
        numeric_bounds = lo is not None or hi is not None
        if dtype == Dtype.FLOAT or (dtype == Dtype.INT and numeric_bounds):
            low = _finite_bound(lo, -_FLOAT_MAX)
            high = _finite_bound(hi, _FLOAT_MAX)
            what = _bounds_text(lo, hi)
            rules.append(Rule(
                f"range:{name}", "range", name, err, what, "expect_column_values_to_be_between",
                screen=(
                    ExpectationSpec("expect_column_min_to_be_between", {"column": name, "min_value": low}),
                    ExpectationSpec("expect_column_max_to_be_between", {"column": name, "max_value": high}),
                ),
                detail=ExpectationSpec("expect_column_values_to_be_between", {
                    "column": name, "min_value": low, "max_value": high}),
            ))
        if allowed:
            values = list(allowed)
            kind = "label_classes" if is_label else "categories"
            rules.append(Rule(
                f"categories:{name}", kind, name, err, f"values in {values}",
                "expect_column_values_to_be_in_set",
                screen=(ExpectationSpec("expect_column_distinct_values_to_be_in_set",
                                        {"column": name, "value_set": values}),),
                detail=ExpectationSpec("expect_column_values_to_be_in_set",
                                       {"column": name, "value_set": values}),
            ))
        if name == contract.row_key and contract.key_unique:
            rules.append(Rule(
                f"unique:{name}", "unique", name, err, "row key values are unique",
                "expect_column_values_to_be_unique",
                screen=(ExpectationSpec("expect_column_proportion_of_unique_values_to_be_between",
                                        {"column": name, "min_value": 1.0}),),
                detail=ExpectationSpec("expect_column_values_to_be_unique", {"column": name}),
            ))
    if contract.extra_columns == "reject":
        rules.append(Rule("extra_columns", "extra_columns", None, err,
                          "no column outside the contract", "schema:no_extra_columns"))
    if stage == "scoring" and label is not None:
        rules.append(Rule(f"label_absent:{label.name}", "label_absent", label.name, err,
                          "label column absent at scoring time (leakage)", "schema:label_absent"))
    for index, extra in enumerate(contract.extra_expectations):
        column = extra.kwargs.get("column")
        rule_id = extra.id or f"extra:{extra.type}:{column or 'table'}"
        if any(r.rule_id == rule_id for r in rules):
            rule_id = f"{rule_id}:{index}"
        rules.append(Rule(rule_id, "extra", column if isinstance(column, str) else None,
                          extra.severity, f"{extra.type} {dict(extra.kwargs)}", extra.type,
                          screen=(ExpectationSpec(extra.type, dict(extra.kwargs)),)))
    return rules


def contract_rules(contract: Contract, stage: str) -> list[Rule]:
    """The rules ``contract`` imposes on a batch at ``stage`` ("training" or "scoring").

    Takes the contract and the stage (training: label required; scoring: label must be absent).
    Returns rules in a stable order, with ``warn_only`` ids downgraded to severity warn.
    Raises :class:`ContractError` if ``warn_only`` names a rule that exists at neither stage,
    ``ValueError`` for an unknown stage.
    """
    rules = _rules_for_stage(contract, _stage(stage))
    if contract.warn_only:
        known = {r.rule_id for s in STAGES for r in _rules_for_stage(contract, s)}
        unknown = sorted(set(contract.warn_only) - known)
        if unknown:
            raise ContractError(
                f"contract {contract.dataset!r}: warn_only names unknown rule id(s) {unknown}; "
                f"rule ids look like 'range:<column>', 'not_null:<column>', 'categories:<column>'"
            )
        warn = set(contract.warn_only)
        rules = [
            Rule(r.rule_id, r.kind, r.column, Severity.WARN, r.description, r.expectation,
                 r.screen, r.detail) if r.rule_id in warn else r
            for r in rules
        ]
    return rules



def _referenced_columns(rule: Rule) -> set[str]:
    referenced: set[str] = set()
    for spec in rule.screen:
        for key in ("column", "column_A", "column_B"):
            if isinstance(spec.kwargs.get(key), str):
                referenced.add(spec.kwargs[key])
        for key in ("column_list",):
            value = spec.kwargs.get(key)
            if isinstance(value, list | tuple):
                referenced.update(str(v) for v in value)
    return referenced

