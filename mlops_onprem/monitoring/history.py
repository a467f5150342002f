"""The per-model monitoring history (``control/monitoring/<model>.json``): one entry per
monitoring run (its signals, decision and trend fields, then what the run did next), and the
persistence streaks counted from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_onprem import keys
from mlops_onprem.errors import ObjectNotFoundError
from mlops_onprem.jsonio import jsonable
from mlops_onprem.monitoring.decision import ALL_SIGNALS
from mlops_onprem.monitoring.trend import trend_entry
from mlops_onprem.store.base import ObjectStore

if TYPE_CHECKING:
    from mlops_onprem.monitoring.report import MonitoringReport


def read_signal_history(store: ObjectStore, model_name: str) -> list[dict[str, Any]]:
    """The recent windows' signals of ``model_name`` (newest last)."""
    try:
        return list(store.get_json(keys.monitoring_state_key(model_name)).get("windows", []))
    except ObjectNotFoundError:
        return []


def signal_streaks(history: list[dict[str, Any]], model_version: int,
                   window_end: str | None) -> dict[str, int]:
    """Per signal, how many consecutive earlier windows of ``model_version`` raised it (one
    entry per window end: re-running a window does not count twice)."""
    per_window: dict[str, list[str]] = {}
    for entry in history:
        if entry.get("model_version") == model_version and entry.get("window_end") != window_end:
            per_window[str(entry.get("window_end"))] = list(entry.get("signals", []))
    ordered = [per_window[k] for k in sorted(per_window)]
    streaks: dict[str, int] = {}
    for signal in ALL_SIGNALS:
        count = 0
        for signals in reversed(ordered):
            if signal not in signals:
                break
            count += 1
        streaks[signal] = count
    return streaks


def record_signals(store: ObjectStore, report: MonitoringReport, *, keep: int = 60) -> None:
    """Append this window's signals to the model's history (monitoring runs one at a time)."""
    history = read_signal_history(store, report.model_name)
    history.append({"run_id": report.run_id, "model_version": report.model_version,
                    "window_end": (report.window.get("data_dates") or [None])[-1],
                    "signals": list(report.decision.signals),
                    "decision": report.decision.status, **trend_entry(report)})
    store.put_json(keys.monitoring_state_key(report.model_name), jsonable({"windows": history[-keep:]}))


def note_outcome(store: ObjectStore, model_name: str, run_id: str, **outcome: Any) -> list[dict[str, Any]]:
    """Add what monitoring run ``run_id`` did next (``retrain=``, ``challenger=``) to its history
    entry, for the trend; returns the history."""
    history = read_signal_history(store, model_name)
    for entry in history:
        if entry.get("run_id") == run_id:
            entry.update({k: v for k, v in outcome.items() if v is not None})
            store.put_json(keys.monitoring_state_key(model_name), jsonable({"windows": history}))
            break
    return history
