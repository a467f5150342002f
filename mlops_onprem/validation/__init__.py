"""The data-contract gate: a contract becomes rules, Great Expectations evaluates them on a batch.

One module per concern; this package re-exports the public API (and the few private helpers
the benchmarks use), so ``from mlops_onprem.validation import ...`` is the only import callers need:

* :mod:`~mlops_onprem.validation.errors` -- the error types (schema family, nothing validated,
  batch rejected);
* :mod:`~mlops_onprem.validation.rules` -- the rule model: ``contract_rules`` turns a contract
  into schema rules and value rules (``warn_only`` applied);
* :mod:`~mlops_onprem.validation.schema` -- schema rules on column names and dtypes, for pandas
  batches and pyarrow schemas (``check_arrow_schema``, before any row is read);
* :mod:`~mlops_onprem.validation.gx_engine` -- the only Great Expectations importer: suites,
  the GX runtime and its process-wide patch, ``validate_dataframe``;
* :mod:`~mlops_onprem.validation.results` -- ``RuleResult`` / ``ValidationResult`` and their
  strict-JSON form;
* :mod:`~mlops_onprem.validation.render` -- results as text and markdown (Prefect artifacts);
* :mod:`~mlops_onprem.validation.gate` -- the raising gate, the published copy, the quarantine.

GX never raises on a failing batch and calls an empty suite a success. Here a batch with zero
evaluated rules raises :class:`NothingValidatedError`, and :func:`raise_for_result` raises
:class:`BatchRejectedError` when a blocking rule fails. Rules listed in the contract's
``warn_only`` (and extra expectations with ``severity: warn``) are reported but never block.
"""

from __future__ import annotations

from mlops_onprem.validation.errors import (
    BatchRejectedError,
    ColumnTypeError,
    LabelLeakageError,
    MissingColumnError,
    NothingValidatedError,
    SchemaError,
    UnexpectedColumnError,
)
from mlops_onprem.validation.gate import (
    conform_to_contract,
    quarantine_batch,
    raise_for_result,
    rejection_message,
)
from mlops_onprem.validation.gx_engine import build_expectation_suite, validate_dataframe
from mlops_onprem.validation.render import report_markdown, result_markdown
from mlops_onprem.validation.results import RuleResult, ValidationResult, unreadable_result
from mlops_onprem.validation.rules import (
    EXAMPLE_COUNT,
    STAGES,
    ExpectationSpec,
    Rule,
    RuleStatus,
    contract_rules,
)
from mlops_onprem.validation.schema import _dtype_ok, _pandas_kind, check_arrow_schema

__all__ = [
    "EXAMPLE_COUNT",
    "STAGES",
    "BatchRejectedError",
    "ColumnTypeError",
    "ExpectationSpec",
    "LabelLeakageError",
    "MissingColumnError",
    "NothingValidatedError",
    "Rule",
    "RuleResult",
    "RuleStatus",
    "SchemaError",
    "UnexpectedColumnError",
    "ValidationResult",
    "_dtype_ok",
    "_pandas_kind",
    "build_expectation_suite",
    "check_arrow_schema",
    "conform_to_contract",
    "contract_rules",
    "quarantine_batch",
    "raise_for_result",
    "rejection_message",
    "report_markdown",
    "result_markdown",
    "unreadable_result",
    "validate_dataframe",
]
