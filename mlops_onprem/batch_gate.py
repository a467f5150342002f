"""The ingest gate over the batch ledger: find what landed, validate each batch version once, route it.

    incoming/<ds>/... (training) or inbox/<ds>/... (scoring), flat or Hive-style dt=YYYY-MM-DD/
      -> discover_landings: a ``landed`` event per new (key, ETag); same bytes = same version
      -> gate_version, once per pending version:
           validated/<ds>/<version>.parquet (or validated-scoring/)   every blocking rule passed
           quarantine/<ds>/<version>/...                              one did not
         then validation/<ds>/<version>.json (result), then the ``validated``/``rejected`` event

The event is the commit marker: a run killed before it leaves the version pending, and the next
run redoes the same writes to the same keys. Nothing is deleted and the landed object is never
modified. Batch ids are version ids, so ``a.csv``, ``a.parquet`` and ``sub/a.parquet`` never
collide. Delayed labels under ``labels/<ds>/`` are registered too (row-key range per object), so
monitoring reads only the label objects its window needs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from mlops_onprem import keys, ledger
from mlops_onprem.batch_reader import CSV_SUFFIXES, PARQUET_SUFFIXES, BatchFormatError, read_batch
from mlops_onprem.contracts import Contract
from mlops_onprem.store.base import ObjectStore, sha256_bytes
from mlops_onprem.store.parquet import get_dataframe, put_dataframe
from mlops_onprem.validation import (
    RuleResult,
    RuleStatus,
    ValidationResult,
    conform_to_contract,
    quarantine_batch,
    rejection_message,
    unreadable_result,
    validate_dataframe,
)

FORMAT_SUFFIXES = {"parquet": PARQUET_SUFFIXES, "csv": CSV_SUFFIXES}


def landing_prefix(dataset: str, stage: str) -> str:
    """Where batches of ``stage`` land: ``incoming/<ds>/`` (training) or ``inbox/<ds>/``."""
    if stage == ledger.STAGE_TRAINING:
        return keys.incoming_prefix(dataset)
    if stage == ledger.STAGE_SCORING:
        return keys.scoring_inbox_prefix(dataset)
    raise ValueError(f"stage must be 'training' or 'scoring', got {stage!r}")


def stage_of_key(dataset: str, key: str) -> str:
    """The stage a landed key belongs to, from its prefix (ValueError elsewhere)."""
    for stage in (ledger.STAGE_TRAINING, ledger.STAGE_SCORING):
        if key.startswith(landing_prefix(dataset, stage)):
            return stage
    raise ValueError(f"{key!r} is neither under {landing_prefix(dataset, 'training')} nor "
                     f"{landing_prefix(dataset, 'scoring')}")


def _content_sha256(store: ObjectStore, key: str, listed: str | None) -> str:
    if listed:
        return listed
    info = store.stat(key)
    # objects uploaded by other tools carry no sha256 metadata: hash the bytes once
    return info.sha256 or sha256_bytes(store.get_bytes(key, verify=False))


def discover_landings(
    store: ObjectStore, dataset: str, stage: str, index: dict[str, Any], *,
    prefix: str | None = None, start: str | None = None, end: str | None = None,
) -> list[dict[str, Any]]:
    """``landed`` events for objects under the stage's landing prefix (or ``prefix`` inside it)
    whose (key, ETag) the ledger has not seen; Hive partitions outside [start, end] are skipped."""
    base = landing_prefix(dataset, stage)
    prefix = prefix or base
    if not prefix.startswith(base):
        raise ValueError(f"prefix {prefix!r} is not under the {stage} landing prefix {base!r}")
    events = []
    for info in store.list(prefix):
        try:
            day = ledger.partition_date(info.key)
        except ValueError:
            day = None  # a malformed dt= segment: the batch still lands, dated by its content
        if day is not None and not ((start is None or day >= start) and (end is None or day <= end)):
            continue
        known = index["keys"].get(info.key)
        if known is not None and known["etag"] == info.etag:
            continue
        sha = _content_sha256(store, info.key, info.sha256)
        events.append(ledger.landed_event(stage, key=info.key, etag=info.etag, sha256=sha,
                                          size=info.size, partition_day=day))
    return events


def discover_labels(store: ObjectStore, dataset: str, contract: Contract,
                    index: dict[str, Any]) -> list[dict[str, Any]]:
    """Events for new label objects: one per object (rows and row-key range), then one
    ``labelled`` event per scoring version whose row-key range the labels overlap."""
    events = []
    for info in store.list(keys.labels_prefix(dataset)):
        known = index["labels"].get(info.key)
        if known is not None and known.get("etag") == info.etag:
            continue
        frame = get_dataframe(store, info.key, columns=[contract.row_key])
        low, high = _key_range(frame[contract.row_key])
        events.append(ledger.make_event(
            "labelled", "labels", identity=(info.key, info.etag), labels_key=info.key,
            etag=info.etag, rows=len(frame), row_key_min=low, row_key_max=high))
        for view in ledger.versions(index, stage=ledger.STAGE_SCORING):
            validation = view.validation or {}
            if view.status == ledger.STATUS_VALIDATED and key_ranges_overlap(
                    (validation.get("row_key_min"), validation.get("row_key_max")), (low, high)):
                events.append(ledger.make_event("labelled", view.id, identity=(info.key, info.etag),
                                                labels_key=info.key))
    return events


def _key_range(values: pd.Series) -> tuple[Any, Any]:
    values = values.dropna()
    if values.empty:
        return None, None
    low, high = values.min(), values.max()
    return (low.item() if hasattr(low, "item") else low), (high.item() if hasattr(high, "item") else high)


def key_ranges_overlap(a: tuple[Any, Any], b: tuple[Any, Any]) -> bool:
    """Whether two (min, max) row-key ranges share a key; unknown bounds or keys of
    different types never do."""
    if None in a or None in b:
        return False
    try:
        return not (a[1] < b[0] or b[1] < a[0])
    except TypeError:  # int keys vs string keys: cannot be the same rows
        return False


@dataclass(frozen=True)
class GateVerdict:
    """What gating one batch version decided (small; what tasks pass around)."""

    dataset: str
    version: str
    stage: str
    source_key: str
    success: bool
    result_key: str
    routed_key: str  # validated copy or quarantined copy
    message: str
    summary: str
    rows: int
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _format_rule(contract: Contract, key: str) -> RuleResult | None:
    accepted = [s for fmt in contract.formats for s in FORMAT_SUFFIXES[fmt]]
    if key.lower().endswith(tuple(accepted)):
        return None
    return RuleResult("format", "format", None, "accepted_format", "error", RuleStatus.FAILED,
                      observed=key.rsplit("/", 1)[-1],
                      message=f"contract {contract.dataset!r} v{contract.version} accepts "
                              f"{list(contract.formats)} files ({', '.join(accepted)})")


def row_key_overlap(store: ObjectStore, index: dict[str, Any], view: ledger.VersionView,
                    row_keys: pd.Series, contract: Contract) -> dict[str, int]:
    """Row keys this batch shares with other current, validated versions of its stage:
    ``{other version: shared rows}``. Only versions whose key range overlaps are read."""
    low, high = _key_range(row_keys)
    shared: dict[str, int] = {}
    mine = set(row_keys.dropna().tolist())
    for other in ledger.versions(index, stage=view.stage):
        validation = other.validation or {}
        if other.id == view.id or not other.current or other.status != ledger.STATUS_VALIDATED:
            continue
        if not key_ranges_overlap((validation.get("row_key_min"), validation.get("row_key_max")),
                                  (low, high)):
            continue
        theirs = get_dataframe(store, validation["validated_key"], columns=[contract.row_key])
        count = int(theirs[contract.row_key].isin(mine).sum())
        if count:
            shared[other.id] = count
    return shared


def _overlap_rule(contract: Contract, shared: dict[str, int]) -> RuleResult:
    policy = contract.row_key_overlap
    rows = sum(shared.values())
    return RuleResult(
        "row_key_overlap", "row_key_overlap", contract.row_key, "row_keys_unique_across_batches",
        "error" if policy == "reject" else "warn", RuleStatus.FAILED, observed=shared,
        unexpected_count=rows,
        message=f"{rows} row key(s) already landed in {sorted(shared)}; contract policy "
                f"row_key_overlap={policy}" + (" (the newest batch's rows win)"
                                               if policy == "keep_latest" else ""))


def gate_version(store: ObjectStore, contract: Contract, index: dict[str, Any],
                 view: ledger.VersionView) -> tuple[GateVerdict, ValidationResult, dict[str, Any]]:
    """Validate one pending batch version and route it; return verdict, full result and the
    ledger event to record (the caller records it: it is the commit marker).

    Raises the store family on I/O errors (nothing is routed then: the version stays pending).
    """
    stage, dataset = view.stage, contract.dataset
    source_key = next(k for k in reversed(view.state["keys"])
                      if index["keys"].get(k, {}).get("version") == view.id)
    started = time.perf_counter()
    df: pd.DataFrame | None = None
    format_failure = _format_rule(contract, source_key)
    if format_failure is not None:
        result = ValidationResult(dataset, contract.version, stage, view.id, 0, 0, [format_failure],
                                  source_key=source_key)
    else:
        data = store.get_bytes(source_key)
        try:
            if sha256_bytes(data) != view.state["sha256"]:
                raise BatchFormatError(f"{source_key!r} changed while it was gated; it is "
                                       "registered again as a new version on the next run")
            df = read_batch(data, source=source_key, contract=contract)
        except BatchFormatError as exc:
            result = unreadable_result(contract, stage, exc, batch_id=view.id, source_key=source_key)
        else:
            result = validate_dataframe(df, contract, stage=stage, batch_id=view.id,
                                        source_key=source_key)
    shared: dict[str, int] = {}
    if result.success and df is not None and contract.row_key in df:
        shared = row_key_overlap(store, index, view, df[contract.row_key], contract)
        if shared:
            result.rules.append(_overlap_rule(contract, shared))
    result.duration_s = time.perf_counter() - started
    # gated again under another contract version (revalidation): new keys, so the copy and the
    # result earlier models and runs recorded keep their bytes
    previous = (view.validation or {}).get("contract_version")
    name = view.id if previous in (None, contract.version) else f"{view.id}-c{contract.version}"
    result_key = keys.validation_result_key(dataset, name, stage)
    extra: dict[str, Any] = {}
    if result.success and df is not None:
        routed = (keys.validated_key(dataset, name) if stage == ledger.STAGE_TRAINING
                  else keys.validated_scoring_key(dataset, name))
        put_dataframe(store, routed, conform_to_contract(df, contract, stage=stage))
        extra["row_key_min"], extra["row_key_max"] = _key_range(df[contract.row_key])
        if contract.timestamp and contract.timestamp in df and len(df):
            stamps = pd.to_datetime(df[contract.timestamp], utc=True)
            extra["time_min"], extra["time_max"] = stamps.min().isoformat(), stamps.max().isoformat()
    store.put_json(result_key, result.to_dict())
    if not result.success:
        routed, _ = quarantine_batch(store, dataset=dataset, batch_id=name,
                                     source_key=source_key, result_key=result_key)
    message = "" if result.success else rejection_message(result, dataset=dataset, batch_id=view.id)
    verdict = GateVerdict(
        dataset=dataset, version=view.id, stage=stage, source_key=source_key,
        success=result.success, result_key=result_key, routed_key=routed, message=message,
        summary=result.summary_line(), rows=result.n_rows,
        warnings=[w.describe() for w in result.warnings])
    kind = "validated" if result.success else "rejected"
    event = ledger.make_event(
        kind, view.id, identity=(stage, contract.version), stage=stage,
        contract_version=contract.version, result_key=result_key, source_key=source_key,
        rows=result.n_rows, warnings=len(result.warnings), overlap=shared or None,
        **({"validated_key": routed} if result.success else {"quarantine_key": routed,
                                                              "message": message[:2000]}),
        **extra)
    return verdict, result, event
