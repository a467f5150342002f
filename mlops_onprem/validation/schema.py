"""Schema rules, decided from column names and dtypes alone (O(columns), no row read).

Shared by pandas batches (:func:`mlops_onprem.validation.gx_engine.validate_dataframe`) and
pyarrow schemas (:func:`check_arrow_schema`, run before any row is read). GX is not used for
dtypes on purpose: GX 1.24's ``ExpectColumnValuesToBeInTypeList`` does not recognise pandas 3's
default ``str`` dtype, categoricals or tz-aware timestamps (measured), and scans object columns
row by row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlops_onprem.contracts import Contract, Dtype, Task
from mlops_onprem.validation.errors import (
    ColumnTypeError,
    LabelLeakageError,
    MissingColumnError,
    SchemaError,
    UnexpectedColumnError,
)
from mlops_onprem.validation.results import RuleResult
from mlops_onprem.validation.rules import Rule, RuleStatus, contract_rules


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
    label = contract.label
    if label is not None and column == label.name and label.task != Task.REGRESSION:
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
        res = RuleResult.of(rule, RuleStatus.PASSED)
        col = rule.column
        if rule.kind == "unique_columns":
            if duplicates:
                res.status, res.observed = RuleStatus.FAILED, duplicates
                res.message = f"column name(s) appear more than once: {duplicates}"
        elif rule.kind == "exists":
            if col not in present:
                res.status, res.observed = RuleStatus.FAILED, "missing"
                res.message = f"required column {col!r} is missing"
                unusable.add(col)
        elif rule.kind == "dtype":
            if col not in present:
                res.status, res.message = RuleStatus.SKIPPED, f"column {col!r} is missing"
            else:
                ok, wanted = _dtype_ok(contract, col, kinds[col])
                res.observed = observed_types[col]
                if not ok:
                    res.status = RuleStatus.FAILED
                    res.message = f"column {col!r} has dtype {observed_types[col]}, contract wants {wanted}"
                    unusable.add(col)
        elif rule.kind == "extra_columns":
            allowed_extra = [] if stage == "training" or contract.label is None else [contract.label.name]
            rejected = [c for c in extra if c not in allowed_extra]
            if rejected:
                res.status, res.observed, res.column = RuleStatus.FAILED, rejected, ", ".join(rejected)
                res.message = f"column(s) not in the contract: {rejected} (extra_columns: reject)"
        elif rule.kind == "label_absent" and col in present:
            res.status, res.observed = RuleStatus.FAILED, "present"
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

