"""The data-contract gate: a contract becomes rules, Great Expectations evaluates them on a batch.

Two kinds of rules come out of a contract (see :func:`contract_rules`):

* **schema rules** (column present, dtype, no extra column, label present/absent, column names
  unique) are decided from the column names and dtypes alone, by this module. They cost
  O(columns) and are shared with :func:`check_arrow_schema`, which runs them on a pyarrow schema
  before any row is read. GX is not used for dtypes on purpose: GX 1.24's
  ``ExpectColumnValuesToBeInTypeList`` does not recognise pandas 3's default ``str`` dtype,
  categoricals or tz-aware timestamps (measured), and scans object columns row by row.
* **value rules** (row count, not-null, range/finite, categories, unique key, extra
  expectations) are Great Expectations expectations in an ``ExpectationSuite`` built by
  :func:`build_expectation_suite`.

Speed without changing a verdict: a range, category or uniqueness rule is first screened with a
GX *aggregate* expectation (column min/max, distinct values in set, proportion of unique
values), which cost a few ms per column where the row-wise ``ExpectColumnValuesTo...`` forms cost
~170 ms per column on 1M rows. A passing screen implies the row-wise expectation passes (all
values lie within [min, max], every value is among the distinct values, ...). Only when a screen
fails does the row-wise expectation run, for that column alone; its verdict is final and it
supplies the unexpected count and example values. So verdicts equal those of the row-wise suite.

GX never raises on a failing batch and calls an empty suite a success. Here a batch with zero
evaluated rules raises :class:`NothingValidatedError`, and :func:`raise_for_result` raises
:class:`BatchRejectedError` when a blocking rule fails. Rules listed in the contract's
``warn_only`` (and extra expectations with ``severity: warn``) are reported but never block.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlops_onprem.contracts import Contract, Dtype, Severity, Task
from mlops_onprem.errors import ContractError, DataValidationError

if TYPE_CHECKING:  # GX takes seconds to import: only the value checks pay for it
    import great_expectations as gx

    from mlops_onprem.store.base import ObjectStore

STAGES = ("training", "scoring")
EXAMPLE_COUNT = 5  # example unexpected values kept per rule
_FLOAT_MAX = sys.float_info.max  # "finite" = within +-max float: inf fails, NaN is a null


# --- errors -------------------------------------------------------------------------------
class SchemaError(DataValidationError):
    """The batch's columns or dtypes do not match the contract. ``column`` names the culprit."""

    def __init__(self, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


class MissingColumnError(SchemaError):
    """A column the contract requires is absent."""


class UnexpectedColumnError(SchemaError):
    """A column the contract does not declare is present and ``extra_columns`` is ``reject``."""


class ColumnTypeError(SchemaError):
    """A column's dtype does not fit the contract's declared type."""


class LabelLeakageError(SchemaError):
    """The label column is present in a batch for scoring."""


class NothingValidatedError(DataValidationError):
    """No rule was evaluated: a suite that checks nothing must not pass a batch."""


class BatchRejectedError(DataValidationError):
    """A batch failed at least one blocking rule of its contract."""

    def __init__(self, message: str, *, dataset: str, batch_id: str,
                 result: ValidationResult | None = None) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.batch_id = batch_id
        self.result = result


# --- rules --------------------------------------------------------------------------------
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


@dataclass
class RuleResult:
    """The outcome of one rule on one batch (JSON-safe through :meth:`to_dict`)."""

    rule_id: str
    kind: str
    column: str | None
    expectation: str
    severity: str
    status: str  # "passed" | "failed" | "skipped" (not evaluated, ``message`` says why)
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_examples: list[Any] = field(default_factory=list)
    message: str = ""

    @property
    def evaluated(self) -> bool:
        return self.status in ("passed", "failed")

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def blocking(self) -> bool:
        return self.failed and self.severity == Severity.ERROR.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id, "kind": self.kind, "column": self.column,
            "expectation": self.expectation, "severity": self.severity, "status": self.status,
            "observed": _json_safe(self.observed), "unexpected_count": self.unexpected_count,
            "unexpected_examples": [_json_safe(v) for v in self.unexpected_examples],
            "message": self.message,
        }

    def describe(self) -> str:
        """One line naming the rule, column, expectation and what was seen."""
        where = f" on column {self.column!r}" if self.column else ""
        parts = [f"{self.rule_id} ({self.expectation}{where})"]
        if self.unexpected_count:
            examples = ", ".join(_short(v) for v in self.unexpected_examples)
            parts.append(f"{self.unexpected_count} unexpected value(s), e.g. [{examples}]")
        elif self.observed is not None:
            parts.append(f"observed {_short(self.observed)}")
        if self.message:
            parts.append(self.message)
        return ": ".join(parts[:1]) + (": " + "; ".join(parts[1:]) if len(parts) > 1 else "")


@dataclass
class ValidationResult:
    """Everything a validation found; ``success`` is False when a blocking rule failed."""

    dataset: str
    contract_version: str
    stage: str
    batch_id: str | None
    n_rows: int
    n_columns: int
    rules: list[RuleResult]
    duration_s: float = 0.0
    ignored_columns: list[str] = field(default_factory=list)
    source_key: str | None = None

    @property
    def blocking_failures(self) -> list[RuleResult]:
        return [r for r in self.rules if r.blocking]

    @property
    def warnings(self) -> list[RuleResult]:
        return [r for r in self.rules if r.failed and not r.blocking]

    @property
    def evaluated_count(self) -> int:
        return sum(r.evaluated for r in self.rules)

    @property
    def success(self) -> bool:
        return self.evaluated_count > 0 and not self.blocking_failures

    def to_dict(self) -> dict[str, Any]:
        """The full result as a JSON-safe dict (what the store keeps)."""
        return {
            "dataset": self.dataset, "contract_version": self.contract_version,
            "stage": self.stage, "batch_id": self.batch_id, "source_key": self.source_key,
            "success": self.success, "n_rows": self.n_rows, "n_columns": self.n_columns,
            "evaluated_count": self.evaluated_count,
            "blocking_failure_count": len(self.blocking_failures),
            "warning_count": len(self.warnings), "duration_s": round(self.duration_s, 4),
            "ignored_columns": list(self.ignored_columns),
            "rules": [r.to_dict() for r in self.rules],
        }

    def summary_line(self) -> str:
        verdict = "PASSED" if self.success else "FAILED"
        batch = f" batch {self.batch_id!r}" if self.batch_id else ""
        return (
            f"{verdict}: dataset {self.dataset!r}{batch} ({self.stage}, contract "
            f"{self.contract_version}): {len(self.blocking_failures)} blocking failure(s), "
            f"{len(self.warnings)} warning(s), {self.evaluated_count} rule(s) evaluated on "
            f"{self.n_rows} rows x {self.n_columns} columns in {self.duration_s:.2f} s"
        )

    def summary_markdown(self, *, result_key: str | None = None) -> str:
        """Markdown for a Prefect artifact: summary line, then a table of failures and warnings."""
        lines = [f"**{self.summary_line()}**", ""]
        if result_key:
            lines += [f"Full result: `{result_key}`", ""]
        failed = self.blocking_failures + self.warnings
        if failed:
            lines += [
                "| rule | severity | column | expectation | observed | unexpected | examples |",
                "|---|---|---|---|---|---|---|",
            ]
            for r in failed:
                examples = ", ".join(_short(v) for v in r.unexpected_examples)
                observed = _short(r.observed) if r.observed is not None else r.message
                lines.append(
                    f"| {_md(r.rule_id)} | {r.severity} | {_md(r.column or '')} | "
                    f"{_md(r.expectation)} | {_md(observed)} | "
                    f"{'' if r.unexpected_count is None else r.unexpected_count} | {_md(examples)} |"
                )
        else:
            lines.append("No failing rule.")
        skipped = [r for r in self.rules if r.status == "skipped"]
        if skipped:
            lines += ["", f"{len(skipped)} rule(s) skipped: "
                      + ", ".join(f"`{r.rule_id}`" for r in skipped[:20])
                      + (" ..." if len(skipped) > 20 else "")]
        if self.ignored_columns:
            lines += ["", "Ignored extra columns: " + ", ".join(f"`{c}`" for c in self.ignored_columns)]
        return "\n".join(lines)


def _stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return stage


def _finite_bound(value: float | None, default: float) -> float:
    return default if value is None else float(value)


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
            what = f"values in [{lo}, {hi}]" if numeric_bounds else "values finite (no +-inf)"
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


# --- schema rules (shared by pandas batches and pyarrow schemas) ---------------------------
def _pandas_kind(dtype: Any) -> str:
    """Logical kind of a pandas dtype: float/int/bool/string/timestamp/other."""
    if isinstance(dtype, pd.CategoricalDtype):
        return _pandas_kind(dtype.categories.dtype)
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    if pd.api.types.is_string_dtype(dtype) or dtype == np.dtype(object):
        return "string"
    return "other"


def _arrow_kind(arrow_type: pa.DataType) -> str:
    """Logical kind of a pyarrow type (dictionary types by their value type)."""
    if pa.types.is_dictionary(arrow_type):
        return _arrow_kind(arrow_type.value_type)
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "timestamp"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or (
        hasattr(pa.types, "is_string_view") and pa.types.is_string_view(arrow_type)
    ):
        return "string"
    return "other"


# which observed kinds each declared dtype accepts; ints are accepted where floats are declared
# because CSV inference and upstream writers turn whole-number floats into ints
_ACCEPTS: dict[Dtype, frozenset[str]] = {
    Dtype.FLOAT: frozenset({"float", "int"}),
    Dtype.INT: frozenset({"int"}),
    Dtype.BOOL: frozenset({"bool"}),
    Dtype.CATEGORY: frozenset({"string"}),
    Dtype.STRING: frozenset({"string"}),
    Dtype.TIMESTAMP: frozenset({"timestamp"}),
}


def _declared_dtype(contract: Contract, column: str) -> Dtype:
    if column == contract.row_key:
        return Dtype.INT  # placeholder; row keys accept int or string (see _row_key_ok)
    if column == contract.timestamp:
        return Dtype.TIMESTAMP
    if contract.label is not None and column == contract.label.name:
        return Dtype.FLOAT if contract.label.task == Task.REGRESSION else Dtype.INT
    return contract.feature(column).dtype


def _dtype_ok(contract: Contract, column: str, kind: str) -> tuple[bool, str]:
    if column == contract.row_key:
        return kind in ("int", "string"), "int64 or string"
    if contract.label is not None and column == contract.label.name and contract.label.task != Task.REGRESSION:
        classes = contract.label.classes or ()
        wanted = {"string"} if all(isinstance(c, str) for c in classes) else {"int", "bool"}
        return kind in wanted, "/".join(sorted(wanted))
    declared = _declared_dtype(contract, column)
    return kind in _ACCEPTS[declared], declared.value


def _schema_results(
    columns: list[str], kinds: Mapping[str, str], observed_types: Mapping[str, str],
    rules: Iterable[Rule], contract: Contract, stage: str,
) -> tuple[dict[str, RuleResult], set[str], list[str]]:
    """Evaluate schema rules. Returns results by rule id, columns unusable by value rules,
    and extra columns ignored by policy."""
    present = set(columns)
    known = set(contract.input_columns(with_label=True))
    extra = [c for c in columns if c not in known]
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    results: dict[str, RuleResult] = {}
    unusable: set[str] = set(duplicates)
    for rule in rules:
        if not rule.is_schema:
            continue
        res = RuleResult(rule.rule_id, rule.kind, rule.column, rule.expectation,
                         rule.severity.value, "passed")
        col = rule.column
        if rule.kind == "unique_columns":
            if duplicates:
                res.status, res.observed = "failed", duplicates
                res.message = f"column name(s) appear more than once: {duplicates}"
        elif rule.kind == "exists":
            if col not in present:
                res.status, res.observed = "failed", "missing"
                res.message = f"required column {col!r} is missing"
                unusable.add(col)
        elif rule.kind == "dtype":
            if col not in present:
                res.status, res.message = "skipped", f"column {col!r} is missing"
            else:
                ok, wanted = _dtype_ok(contract, col, kinds[col])
                res.observed = observed_types[col]
                if not ok:
                    res.status = "failed"
                    res.message = f"column {col!r} has dtype {observed_types[col]}, contract wants {wanted}"
                    unusable.add(col)
        elif rule.kind == "extra_columns":
            allowed_extra = [] if stage == "training" or contract.label is None else [contract.label.name]
            rejected = [c for c in extra if c not in allowed_extra]
            if rejected:
                res.status, res.observed, res.column = "failed", rejected, ", ".join(rejected)
                res.message = f"column(s) not in the contract: {rejected} (extra_columns: reject)"
        elif rule.kind == "label_absent" and col in present:
            res.status, res.observed = "failed", "present"
            res.message = f"label column {col!r} must not be present at scoring time (leakage)"
        results[rule.rule_id] = res
    ignored = extra if contract.extra_columns == "ignore" else []
    return results, unusable, ignored


_SCHEMA_ERRORS: dict[str, type[SchemaError]] = {
    "exists": MissingColumnError, "dtype": ColumnTypeError, "extra_columns": UnexpectedColumnError,
    "label_absent": LabelLeakageError, "unique_columns": UnexpectedColumnError,
}


def check_arrow_schema(schema: pa.Schema, contract: Contract, stage: str) -> None:
    """Cheap schema-only gate on a pyarrow schema, before any row is read.

    Takes the schema (e.g. ``ParquetFile.schema_arrow``), the contract and the stage.
    Returns None when every blocking schema rule passes. Raises a :class:`SchemaError`
    subclass for the first blocking failure (``MissingColumnError``, ``ColumnTypeError``,
    ``UnexpectedColumnError``, ``LabelLeakageError``); the message names every failing column.
    """
    rules = contract_rules(contract, stage)
    names = list(schema.names)
    kinds = {f.name: _arrow_kind(f.type) for f in schema}
    types = {f.name: str(f.type) for f in schema}
    results, _, _ = _schema_results(names, kinds, types, rules, contract, stage)
    failures = [r for r in results.values() if r.blocking]
    if failures:
        first = failures[0]
        message = (f"dataset {contract.dataset!r} ({stage}) schema check failed: "
                   + "; ".join(r.message for r in failures))
        raise _SCHEMA_ERRORS[first.kind](message, column=first.column)


# --- Great Expectations -------------------------------------------------------------------
class _GxRuntime:
    """One ephemeral GX context, data source and batch definition, created once and reused."""

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.expectations.registry import get_expectation_impl

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        # tqdm "Calculating Metrics" bars would flood task logs
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        source = self.context.data_sources.add_pandas("mlops_batches")
        asset = source.add_dataframe_asset("batch")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole_batch")
        self.expectation_class = get_expectation_impl
        self.lock = threading.Lock()  # the context is not documented as thread-safe
        _skip_batch_fingerprint()


def _skip_batch_fingerprint() -> None:
    """Stop GX hashing every row of each batch for a "pandas_data_fingerprint" batch marker.

    GX 1.24 computes ``pd.util.hash_pandas_object(df)`` for frames under 1 GB (its
    ``HASH_THRESHOLD``) on every ``get_batch``: ~0.7-1.4 s per call on 1M x 35 here, more than
    all the expectations together. The marker is metadata only (GX already skips it above
    1 GB); no expectation or verdict uses it.
    """
    from great_expectations.execution_engine import pandas_execution_engine

    if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        pandas_execution_engine.HASH_THRESHOLD = 0


_RUNTIME: _GxRuntime | None = None
_RUNTIME_LOCK = threading.Lock()


def _runtime() -> _GxRuntime:
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            _RUNTIME = _GxRuntime()
        return _RUNTIME


def _gx_expectation(spec: ExpectationSpec, rule_id: str, runtime: _GxRuntime) -> Any:
    try:
        cls = runtime.expectation_class(spec.type)
    except Exception as exc:  # GX raises its own ExpectationNotFoundError
        raise ContractError(f"rule {rule_id!r}: unknown Great Expectations type {spec.type!r}") from exc
    try:
        return cls(**dict(spec.kwargs), meta={"rule_id": rule_id})
    except Exception as exc:  # pydantic validation error inside GX
        raise ContractError(f"rule {rule_id!r}: invalid arguments for {spec.type}: {exc}") from exc


_SUITE_CACHE: dict[tuple[str, str, frozenset[str] | None, bool], Any] = {}
_SUITE_CACHE_SIZE = 64


def build_expectation_suite(
    contract: Contract, stage: str, *, rule_ids: Iterable[str] | None = None, detail: bool = False,
) -> gx.ExpectationSuite:
    """Translate a contract into a GX ``ExpectationSuite`` for ``stage``.

    Takes the contract, the stage, optionally the rule ids to include (default: all value rules),
    and ``detail``: False gives the cheap screening suite (aggregate expectations, plus
    not-null and extra expectations as declared); True gives the row-wise expectations of the
    rules that have one. Every expectation carries ``meta["rule_id"]``.
    Returns the suite (not saved in any context; built once per contract/stage/rules and
    reused). Raises :class:`ContractError` for an unknown expectation type or bad kwargs in
    ``extra_expectations``.
    """
    wanted = None if rule_ids is None else frozenset(rule_ids)
    cache_key = (contract.model_dump_json(), _stage(stage), wanted, detail)
    cached = _SUITE_CACHE.get(cache_key)
    if cached is not None:
        return cached
    runtime = _runtime()
    expectations = []
    for rule in contract_rules(contract, stage):
        if rule.is_schema or (wanted is not None and rule.rule_id not in wanted):
            continue
        specs = (rule.detail,) if detail and rule.detail else () if detail else rule.screen
        expectations += [_gx_expectation(spec, rule.rule_id, runtime) for spec in specs]
    # the constructor keeps every expectation; add_expectation() is O(n^2) and would merge
    # an extra expectation identical to a built-in rule into it, losing its rule id
    suite = runtime.gx.ExpectationSuite(
        name=f"{contract.dataset}-{contract.version}-{stage}" + ("-detail" if detail else ""),
        expectations=expectations,
    )
    if len(_SUITE_CACHE) >= _SUITE_CACHE_SIZE:
        _SUITE_CACHE.clear()
    _SUITE_CACHE[cache_key] = suite
    return suite


def _run_suite(runtime: _GxRuntime, batch: Any, suite: Any) -> list[Any]:
    n_expectations = len(suite.expectations)
    with runtime.lock:
        outcome = batch.validate(suite, result_format={
            "result_format": "SUMMARY", "partial_unexpected_count": EXAMPLE_COUNT})
    evaluated = outcome.statistics.get("evaluated_expectations", 0)
    if evaluated != n_expectations:
        raise NothingValidatedError(
            f"Great Expectations evaluated {evaluated} of {n_expectations} expectations "
            f"of suite {suite.name!r}")
    return list(outcome.results)


def _gx_error(result: Any) -> str | None:
    info = result.exception_info or {}
    if isinstance(info, dict) and info.get("raised_exception"):
        return str(info.get("exception_message") or "expectation raised")
    return None


def _observed_of(rule: Rule, screens: list[Any]) -> Any:
    observed = {r.expectation_config.type: r.result.get("observed_value") for r in screens}
    if rule.kind == "range":
        return {"min": observed.get("expect_column_min_to_be_between"),
                "max": observed.get("expect_column_max_to_be_between")}
    if len(screens) == 1:
        observed = screens[0].result.get("observed_value")
        if observed is None and rule.kind in ("categories", "label_classes"):
            # the distinct-values screen reports the unseen values themselves
            return {"unseen": list(screens[0].result.get("partial_unexpected_list") or [])}
        return observed
    return observed


def _apply_gx_results(rule: Rule, res: RuleResult, gx_results: list[Any], *, final: bool) -> None:
    """Fill ``res`` from the GX results of ``rule`` (screen or detail)."""
    errors = [e for e in (_gx_error(r) for r in gx_results) if e]
    ok = all(r.success for r in gx_results) and not errors
    if not final:
        res.observed = _observed_of(rule, gx_results)
    res.status = "passed" if ok else "failed"
    for r in gx_results:
        count = r.result.get("unexpected_count")
        if count is not None:
            res.unexpected_count = int(count)
            res.unexpected_examples = list(r.result.get("partial_unexpected_list") or [])[:EXAMPLE_COUNT]
    if errors:
        res.message = "; ".join(errors)


def validate_dataframe(
    df: pd.DataFrame, contract: Contract, *, stage: str, batch_id: str | None = None,
    source_key: str | None = None,
) -> ValidationResult:
    """Validate a pandas batch against ``contract`` at ``stage``.

    Takes the DataFrame, the contract, ``stage`` ("training": label required, "scoring": label
    must be absent) and optional batch id / source key recorded in the result.
    Returns a :class:`ValidationResult` (per rule: column, expectation, observed value,
    unexpected count and examples, status). Does not raise on a failing batch: call
    :func:`raise_for_result`. Raises :class:`NothingValidatedError` if no rule was evaluated,
    :class:`ContractError` for a contract GX cannot translate, ``ValueError`` for a bad stage.
    """
    started = time.perf_counter()
    rules = contract_rules(contract, stage)
    columns = [str(c) for c in df.columns]
    kinds = {c: _pandas_kind(t) for c, t in zip(columns, df.dtypes, strict=True)}
    types = {str(c): str(t) for c, t in zip(columns, df.dtypes, strict=True)}
    results, unusable, ignored = _schema_results(columns, kinds, types, rules, contract, stage)

    runnable: list[Rule] = []
    for rule in rules:
        if rule.is_schema:
            continue
        referenced = _referenced_columns(rule)
        blocked = sorted(c for c in referenced if c in unusable or c not in columns)
        if blocked:
            results[rule.rule_id] = RuleResult(
                rule.rule_id, rule.kind, rule.column, rule.expectation, rule.severity.value,
                "skipped", message=f"not evaluated: column(s) {blocked} missing or of the wrong dtype")
        else:
            runnable.append(rule)

    if runnable:
        runtime = _runtime()
        frame = df if not unusable else df.loc[:, [c for c in columns if c not in unusable]]
        ids = [r.rule_id for r in runnable]
        with runtime.lock:
            batch = runtime.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        screen = _run_suite(runtime, batch, build_expectation_suite(contract, stage, rule_ids=ids))
        by_rule: dict[str, list[Any]] = {}
        for r in screen:
            by_rule.setdefault(r.expectation_config.meta["rule_id"], []).append(r)
        needs_detail: list[Rule] = []
        for rule in runnable:
            res = RuleResult(rule.rule_id, rule.kind, rule.column, rule.expectation,
                             rule.severity.value, "passed")
            got = by_rule.get(rule.rule_id, [])
            if len(got) != len(rule.screen):
                raise NothingValidatedError(
                    f"rule {rule.rule_id!r}: Great Expectations returned {len(got)} of "
                    f"{len(rule.screen)} results; refusing to call it passed")
            _apply_gx_results(rule, res, got, final=False)
            results[rule.rule_id] = res
            if res.failed and rule.detail is not None:
                needs_detail.append(rule)
        if needs_detail:
            # the row-wise expectation decides and explains, for the failing columns only
            detail_suite = build_expectation_suite(
                contract, stage, rule_ids=[r.rule_id for r in needs_detail], detail=True)
            detail_by_rule: dict[str, list[Any]] = {}
            for r in _run_suite(runtime, batch, detail_suite):
                detail_by_rule.setdefault(r.expectation_config.meta["rule_id"], []).append(r)
            for rule in needs_detail:
                _apply_gx_results(rule, results[rule.rule_id], detail_by_rule[rule.rule_id], final=True)

    ordered = [results[r.rule_id] for r in rules]
    result = ValidationResult(
        dataset=contract.dataset, contract_version=contract.version, stage=stage,
        batch_id=batch_id, n_rows=len(df), n_columns=len(columns), rules=ordered,
        duration_s=time.perf_counter() - started, ignored_columns=ignored, source_key=source_key,
    )
    if result.evaluated_count == 0:
        raise NothingValidatedError(
            f"dataset {contract.dataset!r}: no rule of contract {contract.version} was evaluated "
            f"on batch {batch_id!r}; an empty validation must not pass a batch")
    return result


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


def unreadable_result(
    contract: Contract, stage: str, error: Exception, *, batch_id: str | None = None,
    source_key: str | None = None,
) -> ValidationResult:
    """A failed result for a batch that could not be read at all (truncated, not Parquet, ...).

    Takes the contract, stage, the reader's exception and ids. Returns a result with a single
    failed blocking rule ``readable`` whose message is the reader's message.
    """
    rule = RuleResult("readable", "readable", None, "read_batch", Severity.ERROR.value, "failed",
                      observed=type(error).__name__, message=str(error))
    return ValidationResult(dataset=contract.dataset, contract_version=contract.version,
                            stage=_stage(stage), batch_id=batch_id, n_rows=0, n_columns=0,
                            rules=[rule], source_key=source_key)


def rejection_message(result: ValidationResult, *, dataset: str, batch_id: str) -> str:
    """The message of a rejection: dataset, batch and every blocking rule with its column."""
    failures = result.blocking_failures
    columns = sorted({r.column for r in failures if r.column})
    head = (f"batch {batch_id!r} of dataset {dataset!r} rejected ({result.stage}): "
            f"{len(failures)} blocking failure(s)")
    if columns:
        head += f" on column(s) {columns}"
    return head + ": " + " | ".join(r.describe() for r in failures)


def raise_for_result(result: ValidationResult, *, dataset: str, batch_id: str) -> None:
    """Gate: raise :class:`BatchRejectedError` if ``result`` has a blocking failure.

    Takes the result and the dataset/batch it is about. Returns None when the batch passes
    (warnings do not block). Raises :class:`BatchRejectedError` whose message names each
    failing rule, its expectation and column; :class:`NothingValidatedError` if nothing was
    evaluated.
    """
    if result.evaluated_count == 0:
        raise NothingValidatedError(f"batch {batch_id!r} of dataset {dataset!r}: no rule was evaluated")
    if result.blocking_failures:
        raise BatchRejectedError(rejection_message(result, dataset=dataset, batch_id=batch_id),
                                 dataset=dataset, batch_id=batch_id, result=result)


def conform_to_contract(df: pd.DataFrame, contract: Contract, *, stage: str) -> pd.DataFrame:
    """The validated batch as it is published: contract column order, floats as float64.

    Takes a batch that passed validation. Returns a new DataFrame with the key, timestamp,
    features (contract order) and, at training, the label; ignored extra columns are dropped
    (the original stays in ``incoming/``).
    """
    columns = contract.input_columns(with_label=_stage(stage) == "training" and contract.label is not None)
    out = df.loc[:, columns].copy()
    for spec in contract.features:
        if spec.dtype == Dtype.FLOAT and out[spec.name].dtype != np.float64:
            out[spec.name] = out[spec.name].astype(np.float64)
    return out.reset_index(drop=True)


# --- JSON / markdown helpers --------------------------------------------------------------
def _json_safe(value: Any) -> Any:
    """Numpy scalars to Python, non-finite floats to strings (strict JSON has no NaN/inf)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _short(value: Any, limit: int = 60) -> str:
    text = str(_json_safe(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# --- quarantine (the gate itself is mlops_onprem.batch_gate) ---------------------------------
def quarantine_batch(store: ObjectStore, *, dataset: str, batch_id: str, source_key: str,
                     result_key: str) -> tuple[str, str]:
    """Copy a rejected batch and its result under ``quarantine/<dataset>/<batch_id>/``.

    The data copy is written first and the result JSON after it, so a quarantine folder
    with a ``validation.json`` always holds its data; the source object is left untouched.
    Returns (quarantined data key, quarantined result key). Raises store errors.
    """
    from mlops_onprem import keys

    original_name = source_key.rsplit("/", 1)[-1]
    data_key = keys.quarantine_data_key(dataset, batch_id, original_name)
    store.copy(source_key, data_key)
    quarantine_result = keys.quarantine_result_key(dataset, batch_id)
    store.put_json(quarantine_result, store.get_json(result_key))
    return data_key, quarantine_result
