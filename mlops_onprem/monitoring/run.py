"""One monitoring pass (:func:`monitor`): resolve the champion, read its window, measure drift
and quality, count persistence, decide; and the ``monitored`` ledger events of a report.
Writing the report and recording the signals are the caller's steps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mlops_onprem import keys, ledger
from mlops_onprem.clock import iso_utc, utc_now
from mlops_onprem.drift import drift_from_window
from mlops_onprem.errors import MlopsError, MonitoringError, ObjectNotFoundError
from mlops_onprem.monitoring.decision import MonitoringPolicy, decide
from mlops_onprem.monitoring.history import read_signal_history, signal_streaks
from mlops_onprem.monitoring.report import MonitoringReport, new_monitoring_run_id
from mlops_onprem.monitoring.window import (
    NoScoringRunsError,
    load_labels,
    load_window,
    select_window,
)
from mlops_onprem.monitoring.window_quality import holdout_rows, live_quality
from mlops_onprem.reference_profile import ReferenceProfile
from mlops_onprem.registry import versions as registry  # storage rules only: no training code
from mlops_onprem.store.base import ObjectStore
from mlops_onprem.threshold import threshold_of


def monitor(
    store: ObjectStore,
    model_name: str,
    dataset: str,
    *,
    window_days: int | None = None,
    window_batches: int | None = None,
    as_of: str | None = None,
    policy: MonitoringPolicy | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
) -> MonitoringReport:
    """One monitoring pass over the batch versions the champion scored in the window (no
    report written, nothing recorded).

    Resolves the champion, loads its contract, card and reference profile, reads the ledger's
    index once, then only the window's objects and the label objects overlapping it; computes
    drift and live quality, and decides. Raises ``ModelNotFoundError`` without a champion and
    :class:`NoScoringRunsError` when the champion scored nothing in the window.
    """
    policy = policy or MonitoringPolicy()
    now = now or utc_now()
    champion = registry.resolve(store, model_name)
    contract = registry.load_contract(store, champion)
    profile_key = champion.card.get("reference_profile_key") or keys.reference_profile_key(
        model_name, champion.version)
    try:
        profile = ReferenceProfile.from_dict(store.get_json(profile_key))
    except ObjectNotFoundError as exc:
        raise MonitoringError(
            f"model {model_name} v{champion.version} has no reference profile at {profile_key}"
        ) from exc
    index = ledger.read_index(store, dataset)
    model_ref = f"{model_name}@{champion.version}"
    views = select_window(index, model_ref, window_days=window_days,
                          window_batches=window_batches, as_of=as_of)
    if not views:
        raise NoScoringRunsError(
            f"model {model_name} v{champion.version} scored no batch of {dataset!r} in the window "
            f"(window_days={window_days}, window_batches={window_batches}, as_of={as_of}; "
            f"ledger {keys.ledger_index_key(dataset)})"
        )
    window = load_window(store, views, model_ref, contract, profile)
    drift = drift_from_window(profile, window.counts, policy.drift)
    quality_result, label_keys = None, []
    if contract.label is not None:
        try:
            labels, label_keys = load_labels(store, index, contract,
                                             window.predictions[contract.row_key])
            holdout = None
            if not labels.empty:
                try:
                    holdout = holdout_rows(registry.load_eval_frame(store, champion), contract,
                                           threshold_of(champion.card))
                except (MlopsError, KeyError) as exc:
                    window.notes.append(f"holdout rows unavailable, drop judged without an "
                                        f"interval: {exc}")
            quality_result = live_quality(window.predictions, labels, contract, champion.card,
                                          policy, holdout=holdout, calibration=profile.calibration)
        except MlopsError as exc:
            window.notes.append(f"live quality not computed: {exc}")
    streaks = signal_streaks(read_signal_history(store, model_name), champion.version,
                             views[-1].data_date)
    decision = decide(drift, quality_result, policy, streaks)
    return MonitoringReport(
        model_name=model_name,
        model_version=champion.version,
        dataset=dataset,
        run_id=run_id or new_monitoring_run_id(now),
        created_at=iso_utc(now),
        window={
            "versions": window.versions,
            "run_ids": window.run_ids,
            "manifest_keys": window.manifest_keys,
            "label_keys": label_keys,
            "feature_rows": window.counts.n_rows,
            "batches_counted": window.counted,
            "prediction_rows": len(window.predictions),
            "window_days": window_days,
            "window_batches": window_batches,
            "as_of": as_of,
            "data_dates": [views[0].data_date, views[-1].data_date],
            "notes": window.notes,
        },
        drift=drift,
        quality=quality_result,
        decision=decision,
        policy=policy,
        champion_spec=champion.card.get("spec", {}).get("name"),
    )


def monitored_events(report: MonitoringReport) -> list[dict[str, Any]]:
    """``monitored`` ledger events: which batch versions this monitoring run counted."""
    return [ledger.make_event("monitored", item["version"], identity=(report.run_id,),
                              monitoring_run_id=report.run_id, model_version=report.model_version,
                              decision=report.decision.status)
            for item in report.window.get("versions", [])]
