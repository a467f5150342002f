"""Validation errors: the schema family (missing, unexpected, mistyped, leaking column), a
validation that evaluated nothing, and a rejected batch (carrying its full result).

All derive from :class:`mlops_onprem.errors.DataValidationError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_onprem.errors import DataValidationError

if TYPE_CHECKING:
    from mlops_onprem.validation.results import ValidationResult


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
