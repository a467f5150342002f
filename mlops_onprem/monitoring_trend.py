"""Kept importable for ``tasks/monitoring.py`` and its tests: the monitoring trend lives in
:mod:`mlops_onprem.monitoring.trend`."""

from mlops_onprem.monitoring.trend import (
    TREND_RUNS,
    render_trend_chart,
    trend_entry,
    trend_markdown,
)

__all__ = ["TREND_RUNS", "render_trend_chart", "trend_entry", "trend_markdown"]
