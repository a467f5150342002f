"""The monitoring trend artifact: one row per run, newest first, with the chart and what each
run did next."""

from __future__ import annotations

from mlops_onprem.monitoring.trend import TREND_RUNS, trend_markdown


def _entry(i: int, **extra) -> dict:
    return {"run_id": f"mon-{i}", "model_version": 1, "window_end": f"2026-11-{i:02d}",
            "created_at": f"2026-11-{i:02d}T03:30:00Z", "rows": 400, "drifted_share": i / 40,
            "top_features": ["num_00"] if i > 20 else [], "metric": "roc_auc",
            "live": 0.9 - i / 100, "estimated": 0.88, "holdout": 0.9,
            "decision": "drift" if i > 20 else "no_drift", **extra}


def test_the_trend_shows_the_last_runs_newest_first_with_chart_and_next_steps():
    history = [{"run_id": "old-format", "signals": []}]  # entries before the trend existed
    history += [_entry(i) for i in range(1, 36)]
    history[-1]["retrain"] = {"status": "triggered", "version": 2, "promoted": True}
    history[-2]["challenger"] = {"status": "retired", "version": 3}
    markdown = trend_markdown("demo", history)
    rows = [line for line in markdown.splitlines() if line.startswith("| 2026-")]
    assert len(rows) == TREND_RUNS
    assert rows[0].startswith("| 2026-11-35") or "2026-11-35" in rows[0]  # newest first
    assert "retrain → v2 promoted" in rows[0] and "challenger v3 retired" in rows[1]
    assert "**drift**" in rows[0] and "num_00" in rows[0] and "88%" in rows[0]
    assert "data:image/png;base64," in markdown


def test_a_single_run_has_a_table_and_no_chart():
    markdown = trend_markdown("demo", [_entry(1)])
    assert "data:image/png" not in markdown and "| 2026-11-01" in markdown
