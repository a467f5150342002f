"""Monitoring's window I/O: which batch versions the champion scored in the window (from the
ledger's index), their counts over the reference bins (cached per batch version beside the
reports), their predictions, and the delayed labels of their rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlops_onprem import batch_gate, keys, ledger
from mlops_onprem.contracts import Contract
from mlops_onprem.errors import MonitoringError, ObjectNotFoundError
from mlops_onprem.reference_profile import ReferenceProfile
from mlops_onprem.store.base import ObjectStore
from mlops_onprem.store.parquet import get_dataframe
from mlops_onprem.window_profile import WindowProfile, WindowProfileError, count_window

MANIFEST_SUFFIX = "_manifest.json"


class NoScoringRunsError(MonitoringError):
    """There is no scoring run of the model to monitor in the requested window."""



@dataclass
class Window:
    """The window's batch versions (each once): their merged counts over the reference bins
    (features and score columns) and the predictions (row key and score columns) for quality."""

    counts: WindowProfile
    predictions: pd.DataFrame
    versions: list[dict[str, Any]]
    run_ids: list[str]
    manifest_keys: list[str]
    notes: list[str] = field(default_factory=list)
    counted: int = 0  # batch versions counted from rows in this run (the others were cached)


def select_window(index: dict[str, Any], model_ref: str, *, window_days: int | None,
                  window_batches: int | None, as_of: str | None) -> list[ledger.VersionView]:
    """The scoring batch versions ``model_ref`` scored whose data date lies in the window:
    ``window_days`` days up to ``as_of`` (default: the newest scored data date) and/or the
    newest ``window_batches``. Each version at most once (its latest run)."""
    return ledger.scored_window(index, model_ref, as_of=as_of, last_days=window_days,
                                last_batches=window_batches)


def _latest_per_key(frame: pd.DataFrame, row_key: str) -> tuple[pd.DataFrame, int]:
    deduped = frame.drop_duplicates(row_key, keep="last")
    return deduped.reset_index(drop=True), len(frame) - len(deduped)


def _ranges_overlap(views: list[ledger.VersionView]) -> bool:
    ranges = [((v.validation or {}).get("row_key_min"), (v.validation or {}).get("row_key_max"))
              for v in views]
    return any(batch_gate.key_ranges_overlap(a, b)
               for i, a in enumerate(ranges) for b in ranges[i + 1:])


def load_window(
    store: ObjectStore, views: list[ledger.VersionView], model_ref: str, contract: Contract,
    profile: ReferenceProfile,
) -> Window:
    """The window's counts and predictions.

    Per batch version, its counts over the reference bins are read from the cache beside the
    monitoring reports (:func:`keys.window_profile_key`), or counted once from its validated
    copy and scoring part and cached: the cost of a window is then the batches new to it, not
    its rows. Predictions read only the row key and score columns. When the versions' row-key
    ranges overlap (a ``row_key_overlap`` policy of warn / keep_latest), the features are read
    as rows and a row in two versions counts once, from the newest (noted).
    """
    model_name, model_version = model_ref.rsplit("@", 1)
    score_columns = [c for c in dict.fromkeys(("score", *profile.scores))]
    usable, notes, described, prediction_frames = [], [], [], []
    for view in views:
        if view.validated_key is None:  # rejected when re-validated under a newer contract
            notes.append(f"batch version {view.id} skipped: no longer valid ({view.status})")
            continue
        usable.append(view)
    by_rows = _ranges_overlap(usable)
    merged: WindowProfile | None = None
    feature_frames, counted = [], 0
    for view in usable:
        scored = view.scored_by(model_ref)
        try:
            part = get_dataframe(store, scored["output_key"])
            predictions = part[[c for c in (contract.row_key, *score_columns) if c in part]]
            if by_rows:
                features = get_dataframe(store, view.validated_key,
                                         columns=[contract.row_key, *contract.feature_names])
                feature_frames.append(features)
                rows = len(features)
            else:
                counts, fresh = _batch_counts(store, view, scored, model_name, int(model_version),
                                              contract, profile, predictions)
                counted += fresh
                merged = counts if merged is None else merged.merge(counts)
                rows = counts.n_rows
        except ObjectNotFoundError as exc:
            notes.append(f"batch version {view.id} skipped: {exc}")
            continue
        prediction_frames.append(predictions)
        described.append({"version": view.id, "data_date": view.data_date,
                          "source_key": (view.validation or {}).get("source_key"),
                          "run_id": scored["run_id"], "manifest_key": scored["manifest_key"],
                          "rows": rows})
    predictions = (pd.concat(prediction_frames, ignore_index=True) if prediction_frames
                   else pd.DataFrame(columns=[contract.row_key, *score_columns]))
    predictions, _ = _latest_per_key(predictions, contract.row_key)
    if by_rows:
        features = (pd.concat(feature_frames, ignore_index=True) if feature_frames
                    else pd.DataFrame(columns=[contract.row_key, *contract.feature_names]))
        features, repeated = _latest_per_key(features, contract.row_key)
        if repeated:
            notes.append(f"{repeated} row(s) appeared in more than one batch version; counted "
                         "once (newest version)")
        scores = predictions if set(profile.scores) <= set(predictions.columns) else None
        merged = count_window(profile, features, scores)
        counted = len(described)
    if merged is None:
        merged = count_window(profile, pd.DataFrame(
            {c: pd.Series(dtype="float64") for c in profile.feature_names}))
    return Window(counts=merged, predictions=predictions, versions=described,
                  run_ids=list(dict.fromkeys(d["run_id"] for d in described)),
                  manifest_keys=list(dict.fromkeys(d["manifest_key"] for d in described)),
                  notes=notes, counted=counted)


def _batch_counts(store: ObjectStore, view: ledger.VersionView, scored: dict[str, Any],
                  model_name: str, model_version: int, contract: Contract,
                  profile: ReferenceProfile, predictions: pd.DataFrame) -> tuple[WindowProfile, int]:
    """(the batch's counts, 1 if counted now / 0 if read from the cache)."""
    key = keys.window_profile_key(model_name, model_version, view.id, scored["run_id"])
    try:
        return WindowProfile.from_dict(store.get_json(key), source=key), 0
    except ObjectNotFoundError:
        pass
    except WindowProfileError:
        pass  # a malformed cache entry is recounted and rewritten
    features = get_dataframe(store, view.validated_key, columns=contract.feature_names)
    scores = predictions if set(profile.scores) <= set(predictions.columns) else None
    counts = count_window(profile, features, scores)
    store.put_json(key, counts.to_dict())
    return counts, 1


def load_labels(store: ObjectStore, index: dict[str, Any], contract: Contract,
                row_keys: pd.Series) -> tuple[pd.DataFrame, list[str]]:
    """The delayed labels of the window's rows: only label objects the ledger registered whose
    row-key range overlaps the window's are read; a row labelled twice keeps its latest label.
    Returns (row key + label frame, label object keys read)."""
    columns = [contract.row_key, contract.label_name]
    if row_keys.empty:
        return pd.DataFrame(columns=columns), []
    low, high = row_keys.min(), row_keys.max()
    wanted = set(row_keys.tolist())
    frames, read = [], []
    for key, entry in sorted(index.get("labels", {}).items(), key=lambda item: str(item[1].get("at"))):
        if not batch_gate.key_ranges_overlap((entry.get("row_key_min"), entry.get("row_key_max")),
                                             (low, high)):
            continue
        frame = get_dataframe(store, key, columns=columns)
        frames.append(frame[frame[contract.row_key].isin(wanted)])
        read.append(key)
    if not frames:
        return pd.DataFrame(columns=columns), read
    labels = pd.concat(frames, ignore_index=True).drop_duplicates(contract.row_key, keep="last")
    return labels, read
