"""The validation report (markdown artifact) of a gated batch: the quarantine key of a rejected
batch, the expected bounds and allowed values of every failed rule, in narrow tables whose long
cells are shortened while the result JSON keeps the full value."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from mlops_onprem import keys
from mlops_onprem.contracts import parse_contract
from mlops_onprem.validation import report_markdown, validate_dataframe

COLOURS = [f"colour-number-{i:02d}" for i in range(30)]  # far wider than one table cell
CELL_CHARS = 60  # a four-column table of such cells fits a laptop screen

CONTRACT_YAML = f"""
dataset: tiny
version: "1.0.0"
owner: tests
row_key: id
label: {{name: label, task: binary_classification, classes: [0, 1]}}
features:
  - {{name: x, dtype: float64, min: 0, max: 10}}
  - {{name: z, dtype: float64, min: -5}}
  - {{name: colour, dtype: category, categories: {COLOURS}}}
"""


@pytest.fixture(scope="module")
def rejected_result():
    contract = parse_contract(CONTRACT_YAML)
    batch = pd.DataFrame({
        "id": [1, 2, 3, 4],
        "x": [0.5, 12.5, 9.5, 10.0],  # 12.5 above max 10
        "z": [0.0, -7.0, 1.0, np.inf],  # -7 below min -5, inf not finite
        "colour": pd.array(["colour-number-01", "mauve", "colour-number-02", "colour-number-03"],
                           dtype="str"),
        "label": [0, 1, 1, 0],
    })
    result = validate_dataframe(batch, contract, stage="training", batch_id="t-0123")
    assert not result.success
    return result


def report_of(result) -> tuple[str, str]:
    quarantine_key = keys.quarantine_data_key("tiny", "t-0123", "a.parquet")
    markdown = report_markdown(result, source_key="incoming/tiny/dt=2026-11-02/a.parquet",
                               version="t-0123", routed_key=quarantine_key,
                               result_key=keys.validation_result_key("tiny", "t-0123", "training"))
    return markdown, quarantine_key


def table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def row_of(markdown: str, rule_id: str) -> str:
    (row,) = [line for line in table_rows(markdown) if line.startswith(f"| `{rule_id}`")]
    return row


def test_a_rejected_batch_report_names_its_quarantine_key_and_each_failed_rules_expectation(
    rejected_result,
):
    markdown, quarantine_key = report_of(rejected_result)

    assert "REJECTED" in markdown
    assert f"**quarantine key**: `{quarantine_key}`" in markdown
    assert "values in [0.0, 10.0]" in row_of(markdown, "range:x") and "12.5" in row_of(markdown, "range:x")
    assert "values >= -5.0 (finite)" in row_of(markdown, "range:z")
    assert "-7.0" in row_of(markdown, "range:z") and "inf" in row_of(markdown, "range:z")
    colour = row_of(markdown, "categories:colour")
    assert "colour-number-00" in colour and "mauve" in colour


def test_report_tables_stay_narrow_and_the_result_json_keeps_the_full_expected_values(
    rejected_result,
):
    result = rejected_result
    markdown, _ = report_of(result)

    for row in table_rows(markdown):
        cells = re.split(r"(?<!\\)\|", row)[1:-1]
        assert len(cells) == 4, row  # rule, expected, found, rows
        assert all(len(cell.strip().strip("`")) <= CELL_CHARS for cell in cells), row
    assert "colour-number-29" not in markdown  # the allowed list is shortened in the table ...
    (colour,) = [r for r in result.to_dict()["rules"] if r["rule_id"] == "categories:colour"]
    assert all(c in colour["expected"] for c in COLOURS)  # ... and whole in the result JSON
