"""Monitoring: pick the scoring window, measure drift and quality, decide, render the report.

Each window raises **signals**, each named in the report with its evidence:

- ``feature_drift``: at least ``min_drifted_features`` features drifted (tests with a promised
  false-alarm rate, see :mod:`mlops_onprem.drift`);
- ``prediction_drift``: a score column drifted (same family of tests, same promise);
- ``quality_drop``: the realized primary metric on delayed labels is significantly worse than
  the holdout (bootstrap of the difference) and by at least ``max_quality_drop``;
- ``estimated_quality_drop``: the label-free estimate of the primary metric (CBPE, on the whole
  window) is worse than the holdout by at least ``estimated_quality_drop``.

A signal in ``alarm_on`` becomes an **alarm** once it was raised in ``persistence`` consecutive
windows (a re-run of the same window counts once); any alarm makes the decision **drift**, and an
alarm in ``retrain_on`` asks for a retrain. A window below the size a drift verdict needs is
**insufficient_data** for the drift signals (the report names the size and the parameter);
quality is still judged on its labels.

The functions here take an :class:`~mlops_onprem.store.base.ObjectStore` (the interface, no
client) or plain data; they import neither Prefect nor a store client.

Where it lives (everything below is importable from ``mlops_onprem.monitoring``):

- :mod:`~mlops_onprem.monitoring.window`: the window's I/O (ledger index -> batch versions,
  cached counts, predictions, delayed labels);
- :mod:`~mlops_onprem.monitoring.window_quality`: realized and label-free quality of a window;
- :mod:`~mlops_onprem.monitoring.decision`: the policy, the signals and the decision (pure);
- :mod:`~mlops_onprem.monitoring.history`: the per-model history (persistence streaks, outcomes);
- :mod:`~mlops_onprem.monitoring.trend`: the per-model trend table and chart;
- :mod:`~mlops_onprem.monitoring.report`: the report and its markdown, PNG and JSON;
- :mod:`~mlops_onprem.monitoring.run`: :func:`monitor`, one pass, and its ledger events.
"""

from mlops_onprem.clock import parse_utc
from mlops_onprem.monitoring.decision import (
    ALL_SIGNALS,
    DECISION_DRIFT,
    DECISION_INSUFFICIENT,
    DECISION_NO_DRIFT,
    Decision,
    MonitoringPolicy,
    Outcome,
    Signal,
    decide,
    window_signals,
)
from mlops_onprem.monitoring.history import (
    note_outcome,
    read_signal_history,
    record_signals,
    signal_streaks,
)
from mlops_onprem.monitoring.report import (
    REPORT_JSON,
    REPORT_MD,
    REPORT_PNG,
    MonitoringReport,
    ReportKeys,
    new_monitoring_run_id,
    render_drift_chart,
    render_markdown,
    write_report,
)
from mlops_onprem.monitoring.run import monitor, monitored_events
from mlops_onprem.monitoring.window import (
    MANIFEST_SUFFIX,
    NoScoringRunsError,
    Window,
    load_labels,
    load_window,
    select_window,
)
from mlops_onprem.monitoring.window_quality import holdout_rows, live_quality
from mlops_onprem.quality import QualityResult

__all__ = [
    "ALL_SIGNALS", "DECISION_DRIFT", "DECISION_INSUFFICIENT", "DECISION_NO_DRIFT", "Outcome",
    "MANIFEST_SUFFIX", "REPORT_JSON", "REPORT_MD", "REPORT_PNG",
    "Decision", "MonitoringPolicy", "MonitoringReport", "NoScoringRunsError", "QualityResult",
    "ReportKeys", "Signal", "Window",
    "decide", "holdout_rows", "live_quality", "load_labels", "load_window", "monitor",
    "monitored_events", "new_monitoring_run_id", "note_outcome", "parse_utc",
    "read_signal_history", "record_signals", "render_drift_chart", "render_markdown",
    "select_window", "signal_streaks", "window_signals", "write_report",
]
