"""Results as text: strict-JSON values, shortened table cells, and the markdown a
validation result publishes (Prefect artifact).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mlops_onprem.validation.results import ValidationResult


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


def result_markdown(result: ValidationResult, *, result_key: str | None = None) -> str:
    """Markdown for a Prefect artifact: summary line, then a table of failures and warnings."""
    lines = [f"**{result.summary_line()}**", ""]
    if result_key:
        lines += [f"Full result: `{result_key}`", ""]
    failed = result.blocking_failures + result.warnings
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
    skipped = [r for r in result.rules if r.status == "skipped"]
    if skipped:
        lines += ["", f"{len(skipped)} rule(s) skipped: "
                  + ", ".join(f"`{r.rule_id}`" for r in skipped[:20])
                  + (" ..." if len(skipped) > 20 else "")]
    if result.ignored_columns:
        lines += ["", "Ignored extra columns: " + ", ".join(f"`{c}`" for c in result.ignored_columns)]
    return "\n".join(lines)
