"""The monitoring trend of a model: one row per monitoring run, over the last runs.

Each monitoring run appends one entry to ``control/monitoring/<model>.json`` (the same state
that counts signal persistence, :func:`mlops_onprem.monitoring.record_signals`): the champion
version, the window's last data date, rows, drifted share and the most drifted features, the
primary metric realized on delayed labels, estimated without labels and on the holdout, the
decision, and what the run did next (the retrain it triggered, the challenger it judged).
:func:`trend_markdown` renders them as a table and a chart (drifted share; realized, estimated
and holdout metric) for the keyed ``monitoring-trend-<model>`` artifact, which the Prefect UI
shows versioned, one version per run.
"""

from __future__ import annotations

import base64
import io
import math
from functools import partial
from typing import Any

from mlops_onprem.number_format import format_number

TREND_RUNS = 30  # rows the trend shows


def trend_entry(report: Any) -> dict[str, Any]:
    """The trend fields of a :class:`~mlops_onprem.monitoring.MonitoringReport`."""
    drift, quality = report.drift, report.quality
    ranked = sorted((c for c in drift.features if c.drifted), key=lambda c: -c.severity)
    return {
        "created_at": report.created_at, "rows": drift.n_current,
        "drifted_share": drift.drifted_share, "top_features": [c.column for c in ranked[:3]],
        "prediction_drift": drift.prediction_drift,
        "metric": quality.metric if quality else None,
        "live": quality.live if quality else None,
        "estimated": quality.estimated if quality else None,
        "holdout": quality.holdout if quality else None,
        "labelled_rows": quality.labelled_rows if quality else 0,
    }


_fmt = partial(format_number, digits=3, missing="–")  # trend cells: three significant digits


def _next_step(entry: dict[str, Any]) -> str:
    parts = []
    retrain = entry.get("retrain") or {}
    if retrain.get("status") == "triggered":
        parts.append(f"retrain → v{retrain.get('version')}"
                     + (" promoted" if retrain.get("promoted") else " kept out"))
    elif retrain.get("status") in ("skipped", "failed"):
        parts.append(f"retrain {retrain['status']}")
    challenger = entry.get("challenger") or {}
    if challenger.get("status") in ("promoted", "retired"):
        parts.append(f"challenger v{challenger.get('version')} {challenger['status']}")
    return "; ".join(parts)


def render_trend_chart(entries: list[dict[str, Any]]) -> bytes | None:
    """PNG: drifted share (left) and the primary metric realized/estimated/holdout (right)."""
    if len(entries) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    x = list(range(1, len(entries) + 1))
    fig = Figure(figsize=(10, 3.2), dpi=90)
    share = fig.add_subplot(1, 2, 1)
    share.plot(x, [e.get("drifted_share") or 0.0 for e in entries], marker="o", color="#c44e52")
    share.set_title("drifted share of features", fontsize=11)
    share.set_ylim(0, 1)
    share.set_xlabel("monitoring run (oldest → newest)", fontsize=10)
    metric = next((e["metric"] for e in reversed(entries) if e.get("metric")), None)
    quality = fig.add_subplot(1, 2, 2)
    for field, label, style in (("live", "realized (labels)", "o-"),
                                ("estimated", "estimated (no labels)", "s--"),
                                ("holdout", "holdout", ":")):
        values = [e.get(field) if e.get(field) is not None else math.nan for e in entries]
        if any(math.isfinite(v) for v in values):
            quality.plot(x, values, style, label=label)
    quality.set_title(f"{metric or 'primary metric'}", fontsize=11)
    quality.set_xlabel("monitoring run (oldest → newest)", fontsize=10)
    if quality.get_legend_handles_labels()[0]:
        quality.legend(fontsize=9)
    for ax in (share, quality):
        ax.tick_params(labelsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def trend_markdown(model_name: str, history: list[dict[str, Any]]) -> str:
    """The trend artifact: chart and table of the last :data:`TREND_RUNS` runs, newest first."""
    entries = [e for e in history if "drifted_share" in e][-TREND_RUNS:]
    lines = [f"# Monitoring trend: {model_name}", "",
             f"The last {len(entries)} monitoring run(s). Drifted share: features drifted after "
             "the correction; quality: the champion's primary metric on the window's delayed "
             "labels, estimated without labels, and on its holdout.", ""]
    chart = render_trend_chart(entries)
    if chart:
        encoded = base64.b64encode(chart).decode("ascii")
        lines += [f"![drifted share and quality over the runs](data:image/png;base64,{encoded})", ""]
    lines += ["| run | model | data to | rows | drifted | top features | realized | estimated | "
              "holdout | decision | next |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in reversed(entries):
        lines.append(
            f"| {str(e.get('created_at', ''))[:16]} | v{e.get('model_version')} | "
            f"{e.get('window_end') or '–'} | {e.get('rows', 0):,} | "
            f"{(e.get('drifted_share') or 0):.0%} | {', '.join(e.get('top_features') or []) or '–'} | "
            f"{_fmt(e.get('live'))} | {_fmt(e.get('estimated'))} | {_fmt(e.get('holdout'))} | "
            f"{'**' + e['decision'] + '**' if e.get('decision') == 'drift' else e.get('decision')} | "
            f"{_next_step(e)} |")
    return "\n".join(lines) + "\n"
