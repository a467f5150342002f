"""The monitoring report: what one run found (:class:`MonitoringReport`), rendered as markdown
(decision, quality, per-column tables, the chart inlined), a PNG of the most drifted columns and
JSON, stored beside each other under ``monitoring/<model>/<run>/``.
"""

from __future__ import annotations

import base64
import io
import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from mlops_onprem import jsonio, keys
from mlops_onprem.clock import compact_utc
from mlops_onprem.drift import ColumnDrift, DriftResult, Status
from mlops_onprem.monitoring.decision import Decision, MonitoringPolicy
from mlops_onprem.number_format import format_number
from mlops_onprem.quality import QualityResult
from mlops_onprem.store.base import ObjectStore

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_PNG = "drift.png"


@dataclass
class MonitoringReport:
    """Everything one monitoring run found."""

    model_name: str
    model_version: int
    dataset: str
    run_id: str
    created_at: str
    window: dict[str, Any]
    drift: DriftResult
    quality: QualityResult | None
    decision: Decision
    policy: MonitoringPolicy
    champion_spec: str | None = None  # spec name the monitored champion was trained with

    def summary(self) -> str:
        """One line for alerts and logs."""
        head = (f"{self.model_name} v{self.model_version}: {self.decision.status} "
                f"({self.drift.n_current} rows, {len(self.window.get('versions', []))} batches)")
        if self.decision.rules_fired:
            head += " - rules fired: " + ", ".join(self.decision.rules_fired)
        return head

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "dataset": self.dataset,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "summary": self.summary(),
            "decision": self.decision.to_dict(),
            "window": self.window,
            "quality": self.quality.to_dict() if self.quality else None,
            "policy": self.policy.model_dump(),
            "drift": self.drift.to_dict(),
        }


def new_monitoring_run_id(now: datetime | None = None) -> str:
    """A sortable, unique monitoring run id: ``mon-<UTC time>-<random>``."""
    return f"mon-{compact_utc(now)}-{uuid.uuid4().hex[:8]}"


def _pct(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:+.1%}"


def _column_row(column: ColumnDrift) -> str:
    ks, psi = column.method("ks"), column.method("psi")
    js, unseen = column.method("jensenshannon"), column.method("unseen_share")
    status = {Status.DRIFT: "🔴 **drift**", Status.OK: "ok",
              Status.INSUFFICIENT_DATA: "insufficient data"}[column.status]
    means = (f"{format_number(column.mean_reference)} → {format_number(column.mean_current)}"
             if column.mean_reference is not None else "")
    if column.kind == "categorical":
        stats = f"JS {format_number(js.statistic if js else None)}"
        if unseen and unseen.statistic:
            stats += f"; unseen {unseen.statistic:.1%} ({', '.join(column.unseen_categories)})"
    else:
        stats = (f"KS {format_number(ks.statistic if ks else None)}; "
                 f"PSI {format_number(psi.statistic if psi else None)}")
    return (f"| {column.column} | {column.kind} | {stats} | {means} | {column.p_value:.2g} | "
            f"{column.adjusted_p_value:.2g} | x{column.effect:.1f} | {status} |")


_COLUMN_HEADER = ["| column | kind | statistics | mean ref → current | p | corrected p | "
                  "effect / floor | status |", "|---|---|---|---|---|---|---|---|"]


def render_markdown(report: MonitoringReport, chart_png: bytes | None = None) -> str:
    """The human report: decision, rules fired, quality, per-feature table, embedded chart.

    The chart is embedded as a ``data:image/png;base64`` image so it renders in the Prefect UI
    without a reachable URL.
    """
    d = report.drift
    lines = [
        f"# Drift report: {report.model_name} v{report.model_version}",
        "",
        f"- **Decision:** {report.decision.status.upper()}",
        f"- **Alarms:** {', '.join(report.decision.rules_fired) or 'none'}"
        + (" (retrain requested)" if report.decision.retrain else ""),
        *[f"- {reason}" for reason in report.decision.reasons],
        f"- **Window:** {d.n_current} distinct rows from {len(report.window.get('versions', []))} "
        f"batch version(s) of dataset `{report.dataset}`, data dates "
        f"{' to '.join(report.window.get('data_dates') or ['?'])}",
        f"- **Monitoring run:** `{report.run_id}` at {report.created_at}",
        "",
    ]
    q = report.quality
    if q is not None:
        interval = (f"; drop {q.drop_interval[0]:.3g} .. {q.drop_interval[1]:.3g} "
                    f"({1 - 2 * report.policy.quality_alpha:.0%} bootstrap interval)"
                    if q.drop_interval else "")
        lines += [
            "## Model quality",
            "",
            "| | " + f"{q.metric} | relative drop | status | based on |",
            "|---|---|---|---|---|",
            f"| holdout (training) | {format_number(q.holdout)} | | | card |",
            f"| estimated (no labels) | {format_number(q.estimated)} | "
            f"{_pct(q.estimated_relative_drop)} | {q.estimated_status} | {q.estimate_note} |",
            f"| realized (delayed labels) | {format_number(q.live)} | {_pct(q.relative_drop)} | {q.status} | "
            f"{q.labelled_rows:,} labelled rows{interval} |",
            "",
        ]
    t = d.thresholds
    lines += [
        "## Features",
        "",
        f"{len(d.drifted_features)}/{len(d.features)} drifted. A column drifts when its p-value, "
        f"corrected ({t.correction}) across the window's {len(d.features) + len(d.predictions)} "
        f"columns, is below {t.false_alarm_rate:g} and its effect passes a floor (KS "
        f"{t.ks_min_statistic:g} or PSI {t.psi_min:g}; JS {t.js_min:g}): without drift a window "
        f"reports any drifted column at most {t.false_alarm_rate:.0%} of the time. Reference: "
        f"{d.n_reference:,} training rows; the window needs {d.rows_needed or 'more'} rows.",
        "",
        *_COLUMN_HEADER,
    ]
    lines += [_column_row(c) for c in sorted(d.features, key=lambda c: (not c.drifted, -c.severity))]
    if d.predictions:
        lines += ["", "## Predictions", "", *_COLUMN_HEADER, *[_column_row(c) for c in d.predictions]]
    if report.window.get("versions"):
        lines += ["", "## Batches in the window", "", "| landed as | data date | rows | scoring run |",
                  "|---|---|---|---|"]
        lines += [f"| `{v.get('source_key') or v['version']}` | {v['data_date']} | {v['rows']:,} | "
                  f"`{v['run_id']}` |" for v in report.window["versions"]]
    if report.window.get("notes"):
        lines += ["", "## Notes", "", *[f"- {note}" for note in report.window["notes"]]]
    if chart_png:
        encoded = base64.b64encode(chart_png).decode("ascii")
        lines += ["", "## Most drifted features", "",
                  f"![reference vs current bin shares](data:image/png;base64,{encoded})"]
    return "\n".join(lines) + "\n"


def render_drift_chart(drift: DriftResult, *, top_n: int = 6) -> bytes | None:
    """PNG bar charts (reference vs current bin shares) of the ``top_n`` most drifted columns.

    Returns None when there is nothing to draw.
    """
    columns = [c for c in (*drift.features, *drift.predictions) if c.bin_labels]
    columns = sorted(columns, key=lambda c: (not c.drifted, -c.severity))[:top_n]
    if not columns:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    n = len(columns)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.0 * nrows), dpi=80)
    for i, column in enumerate(columns):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        x = np.arange(len(column.bin_labels))
        ax.bar(x - 0.2, column.reference_shares, width=0.4, label="reference", color="#4c72b0")
        ax.bar(x + 0.2, column.current_shares, width=0.4, label="current", color="#dd8452")
        ax.set_xticks(x)
        ax.set_xticklabels(column.bin_labels, rotation=60, ha="right", fontsize=6)
        ax.set_title(f"{column.column} ({column.status.value})", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


@dataclass(frozen=True)
class ReportKeys:
    json: str
    markdown: str
    png: str | None


def write_report(
    store: ObjectStore, report: MonitoringReport, *, chart_top_n: int = 6
) -> tuple[ReportKeys, str]:
    """Store the report as JSON, markdown and PNG beside each other; return keys and markdown."""
    png = render_drift_chart(report.drift, top_n=chart_top_n)
    markdown = render_markdown(report, png)
    png_key = None
    if png:
        png_key = keys.monitoring_file_key(report.model_name, report.run_id, REPORT_PNG)
        store.put_bytes(png_key, png, content_type="image/png")
    md_key = keys.monitoring_file_key(report.model_name, report.run_id, REPORT_MD)
    store.put_bytes(md_key, markdown.encode("utf-8"), content_type="text/markdown")
    json_key = keys.monitoring_file_key(report.model_name, report.run_id, REPORT_JSON)
    document = report.to_dict()
    document["files"] = {"json": json_key, "markdown": md_key, "png": png_key}
    store.put_bytes(
        json_key, jsonio.dumps(document, indent=2).encode("utf-8"),
        content_type="application/json",
    )
    return ReportKeys(json=json_key, markdown=md_key, png=png_key), markdown
