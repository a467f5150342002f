"""The outcome of a validation: one :class:`RuleResult` per rule and the batch's
:class:`ValidationResult` (verdict, counts, strict-JSON ``to_dict`` for the store, one-line
summaries for logs and error messages), and the result of a batch that could not be read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlops_onprem.contracts import Contract, Severity
from mlops_onprem.jsonio import jsonable
from mlops_onprem.validation.render import _short, result_markdown
from mlops_onprem.validation.rules import Rule, RuleStatus, _stage


@dataclass
class RuleResult:
    """The outcome of one rule on one batch (JSON-safe through :meth:`to_dict`)."""

    rule_id: str
    kind: str
    column: str | None
    expectation: str
    severity: str
    status: RuleStatus
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_examples: list[Any] = field(default_factory=list)
    message: str = ""
    expected: str = ""  # what the contract asks: bounds, allowed values, dtype (full text)

    @classmethod
    def of(cls, rule: Rule, status: RuleStatus, **fields: Any) -> RuleResult:
        """A result for ``rule`` (ids, expectation, severity and expected text copied)."""
        return cls(rule.rule_id, rule.kind, rule.column, rule.expectation, rule.severity.value,
                   status, expected=rule.description, **fields)

    @property
    def evaluated(self) -> bool:
        return self.status in (RuleStatus.PASSED, RuleStatus.FAILED)

    @property
    def failed(self) -> bool:
        return self.status == RuleStatus.FAILED

    @property
    def blocking(self) -> bool:
        return self.failed and self.severity == Severity.ERROR.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id, "kind": self.kind, "column": self.column,
            "expectation": self.expectation, "severity": self.severity, "status": self.status,
            "observed": jsonable(self.observed), "unexpected_count": self.unexpected_count,
            "unexpected_examples": [jsonable(v) for v in self.unexpected_examples],
            "message": self.message, "expected": self.expected,
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
        """Markdown for a Prefect artifact (see :func:`render.result_markdown`)."""
        return result_markdown(self, result_key=result_key)


def unreadable_result(
    contract: Contract, stage: str, error: Exception, *, batch_id: str | None = None,
    source_key: str | None = None,
) -> ValidationResult:
    """A failed result for a batch that could not be read at all (truncated, not Parquet, ...).

    Takes the contract, stage, the reader's exception and ids. Returns a result with a single
    failed blocking rule ``readable`` whose message is the reader's message.
    """
    rule = RuleResult("readable", "readable", None, "read_batch", Severity.ERROR.value,
                      RuleStatus.FAILED,
                      observed=type(error).__name__, message=str(error),
                      expected="a batch the reader can parse")
    return ValidationResult(dataset=contract.dataset, contract_version=contract.version,
                            stage=_stage(stage), batch_id=batch_id, n_rows=0, n_columns=0,
                            rules=[rule], source_key=source_key)

