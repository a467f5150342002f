"""Results as text: shortened table cells (values via :func:`mlops_onprem.jsonio.plain`) and
the markdown report a validated or rejected batch publishes (Prefect artifact).

The report fits a laptop screen: the verdict and where the batch went (validated copy or
quarantine key) first, then one narrow table per severity (rule, expected, found, rows), cells
shortened to :data:`CELL_LIMIT` characters. Every full value (all allowed categories, every
example) stays in the result JSON whose key the report names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_onprem.jsonio import plain
from mlops_onprem.validation.rules import RuleStatus

if TYPE_CHECKING:
    from mlops_onprem.validation.results import RuleResult, ValidationResult

CELL_LIMIT = 48  # characters per table cell; four columns stay under ~1,000 px
MESSAGE_LIMIT = 240  # characters of a rule's message in the notes under a table
LISTED_SKIPPED = 20


def _short(value: Any, limit: int = 60) -> str:
    text = str(plain(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _found(rule: RuleResult) -> str:
    """What the batch held: example offending values, else the observed value."""
    if rule.unexpected_examples:
        return "e.g. " + ", ".join(str(plain(v)) for v in rule.unexpected_examples)
    return "" if rule.observed is None else str(plain(rule.observed))


def _rule_table(title: str, rules: list[RuleResult]) -> list[str]:
    lines = [f"#### {title} ({len(rules)})", "", "| rule | expected | found | rows |",
             "|---|---|---|---:|"]
    for r in rules:
        rows = "" if r.unexpected_count is None else str(r.unexpected_count)
        lines.append(f"| `{_md(_short(r.rule_id, CELL_LIMIT))}` | {_md(_short(r.expected, CELL_LIMIT))} | "
                     f"{_md(_short(_found(r), CELL_LIMIT))} | {rows} |")
    notes = [f"- `{_md(r.rule_id)}`: {_md(_short(r.message, MESSAGE_LIMIT))}" for r in rules if r.message]
    return lines + ([""] + notes if notes else []) + [""]


def result_markdown(result: ValidationResult, *, result_key: str | None = None) -> str:
    """Markdown of one result: the summary line, then a narrow table of blocking failures and
    one of warnings (rule, expected bounds or values, what was found, offending rows), the
    rules' messages as notes, skipped rules and ignored columns. Cells are shortened; the full
    values are in the result JSON (``result_key``, named when given)."""
    lines = [f"**{result.summary_line()}**", ""]
    if result_key:
        lines += [f"Full result (every rule, full values): `{result_key}`", ""]
    if result.blocking_failures:
        lines += _rule_table("Blocking failures", result.blocking_failures)
    if result.warnings:
        lines += _rule_table("Warnings (do not block)", result.warnings)
    if not result.blocking_failures and not result.warnings:
        lines += ["No failing rule.", ""]
    skipped = [r for r in result.rules if r.status == RuleStatus.SKIPPED]
    if skipped:
        lines += [f"{len(skipped)} rule(s) skipped: "
                  + ", ".join(f"`{r.rule_id}`" for r in skipped[:LISTED_SKIPPED])
                  + (" ..." if len(skipped) > LISTED_SKIPPED else ""), ""]
    if result.ignored_columns:
        lines += ["Ignored extra columns: " + ", ".join(f"`{c}`" for c in result.ignored_columns), ""]
    return "\n".join(lines).rstrip("\n")


def report_markdown(result: ValidationResult, *, source_key: str, version: str, routed_key: str,
                    result_key: str) -> str:
    """The validation report of one gated batch version (a Prefect markdown artifact).

    Takes the result, the landed key, the batch version id, where the gate routed the batch
    (validated copy, or the quarantine key of a rejected batch) and the result JSON's key.
    Returns markdown: verdict and keys first, then :func:`result_markdown`.
    """
    verdict = "PASSED" if result.success else "REJECTED"
    routed = "validated copy" if result.success else "**quarantine key**"
    return "\n".join([
        f"### {verdict}: `{_md(source_key)}` ({result.stage} batch)", "",
        f"- batch version: `{version}`",
        f"- {routed}: `{_md(routed_key)}`",
        f"- full result (JSON): `{_md(result_key)}`", "",
        result_markdown(result)])
