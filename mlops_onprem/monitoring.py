"""Monitoring: pick the scoring window, measure drift and live quality, decide, render the report.

The decision is **drift** when any rule fires, and the report names each rule that fired:

- ``feature_share``: the share of drifted features is at least ``drifted_share``;
- ``prediction_drift``: a score column drifted (and ``prediction_drift_triggers`` is on);
- ``quality_drop``: the live primary metric, from delayed labels joined on the contract's row
  key, is worse than the model card's holdout value by more than ``max_quality_drop``
  (relative), with at least ``min_labelled_rows`` labelled rows.

A window smaller than ``DriftThresholds.min_rows`` is **insufficient_data** (stated in the
report; never drift, never a retrain).

The functions here take an :class:`~mlops_onprem.store.base.ObjectStore` (the interface, no
client) or plain data; they import neither Prefect nor a store client.
"""

from __future__ import annotations

import base64
import io
import json
import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mlops_onprem import batch_gate, keys, ledger
from mlops_onprem.contracts import Contract, Task
from mlops_onprem.drift import ColumnDrift, DriftResult, DriftThresholds, Status, compute_drift
from mlops_onprem.errors import MlopsError, MonitoringError, ObjectNotFoundError
from mlops_onprem.reference_profile import ReferenceProfile
from mlops_onprem.store.base import ObjectStore
from mlops_onprem.store.parquet import get_dataframe

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_PNG = "drift.png"
MANIFEST_SUFFIX = "_manifest.json"

DECISION_DRIFT = "drift"
DECISION_NO_DRIFT = "no_drift"
DECISION_INSUFFICIENT = "insufficient_data"


class NoScoringRunsError(MonitoringError):
    """There is no scoring run of the model to monitor in the requested window."""


class MonitoringPolicy(BaseModel):
    """When a window counts as drifted (per-method thresholds live in ``drift``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drift: DriftThresholds = Field(default_factory=DriftThresholds)
    drifted_share: float = Field(
        default=0.25, gt=0, le=1, description="Share of drifted features that is dataset drift."
    )
    prediction_drift_triggers: bool = Field(
        default=True, description="A drifted score column alone makes the window drifted."
    )
    max_quality_drop: float = Field(
        default=0.10, ge=0,
        description="Relative degradation of the primary metric vs holdout that is drift.",
    )
    min_labelled_rows: int = Field(
        default=200, ge=1, description="Fewer labelled rows: quality is not judged."
    )


# --- the window ----------------------------------------------------------------------------
def parse_utc(text: str) -> datetime:
    """ISO-8601 (``Z`` or offset) to an aware UTC datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class Window:
    """The rows of the window's batch versions: features (their validated copies) and the
    predictions the model version made for them, each batch version once."""

    features: pd.DataFrame
    predictions: pd.DataFrame
    versions: list[dict[str, Any]]
    run_ids: list[str]
    manifest_keys: list[str]
    notes: list[str] = field(default_factory=list)


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


def load_window(
    store: ObjectStore, views: list[ledger.VersionView], model_ref: str, contract: Contract,
    score_columns: list[str],
) -> Window:
    """Read each version's validated copy (features) and the part its scoring run wrote.

    Reads 2 objects per batch version and nothing else: the cost depends on the window, not on
    the history. Rows whose key appears in two versions (allowed by a ``row_key_overlap`` policy
    of warn / keep_latest) count once, from the newest version (noted).
    """
    feature_frames, prediction_frames, notes, described = [], [], [], []
    feature_columns = [contract.row_key, *contract.feature_names]
    for view in views:
        scored = view.scored_by(model_ref)
        if view.validated_key is None:  # rejected when re-validated under a newer contract
            notes.append(f"batch version {view.id} skipped: no longer valid ({view.status})")
            continue
        try:
            features = get_dataframe(store, view.validated_key, columns=feature_columns)
            frame = get_dataframe(store, scored["output_key"])
        except ObjectNotFoundError as exc:
            notes.append(f"batch version {view.id} skipped: {exc}")
            continue
        feature_frames.append(features)
        # the ``score`` column always (quality needs it; a multiclass profile names only the
        # ``proba_<class>`` columns), plus every profiled score column
        wanted = [c for c in dict.fromkeys((contract.row_key, "predicted_label", "score",
                                            *score_columns)) if c in frame]
        prediction_frames.append(frame[wanted])
        described.append({"version": view.id, "data_date": view.data_date,
                          "source_key": (view.validation or {}).get("source_key"),
                          "run_id": scored["run_id"], "manifest_key": scored["manifest_key"],
                          "rows": len(features)})
    features = (pd.concat(feature_frames, ignore_index=True) if feature_frames
                else pd.DataFrame(columns=feature_columns))
    predictions = (pd.concat(prediction_frames, ignore_index=True) if prediction_frames
                   else pd.DataFrame(columns=[contract.row_key, *score_columns]))
    features, repeated = _latest_per_key(features, contract.row_key)
    predictions, _ = _latest_per_key(predictions, contract.row_key)
    if repeated:
        notes.append(f"{repeated} row(s) appeared in more than one batch version; counted once "
                     "(newest version)")
    return Window(
        features=features, predictions=predictions, versions=described,
        run_ids=list(dict.fromkeys(d["run_id"] for d in described)),
        manifest_keys=list(dict.fromkeys(d["manifest_key"] for d in described)), notes=notes)


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


# --- live quality ---------------------------------------------------------------------------
@dataclass(frozen=True)
class QualityResult:
    """Live model quality from delayed labels vs the model card's holdout metrics."""

    status: str  # ok | degraded | insufficient_labels | no_labels
    metric: str | None
    higher_is_better: bool | None
    holdout: float | None
    live: float | None
    relative_drop: float | None
    labelled_rows: int
    live_metrics: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _score_arrays(predictions: pd.DataFrame, contract: Contract):
    from mlops_onprem.onnx_io import ScoreArrays

    task = contract.label.task if contract.label else Task.REGRESSION
    score = predictions["score"].to_numpy(dtype=np.float64)
    if task == Task.REGRESSION:
        return ScoreArrays(score=score)
    classes = list(contract.label.classes or ())
    if task == Task.BINARY:
        probabilities = np.column_stack([1.0 - score, score])
    else:
        probabilities = predictions[[f"proba_{c}" for c in classes]].to_numpy(dtype=np.float64)
    return ScoreArrays(
        score=score, label=probabilities.argmax(axis=1).astype(np.int64), probabilities=probabilities
    )


def live_quality(
    predictions: pd.DataFrame, labels: pd.DataFrame, contract: Contract, card: dict[str, Any],
    policy: MonitoringPolicy,
) -> QualityResult:
    """Join predictions with labels on the row key and compare the primary metric to holdout.

    Takes the window's predictions, the delayed labels, the contract and the champion's model
    card (``metrics`` and ``primary_metric``). Returns a :class:`QualityResult`; a label the
    contract does not allow raises the training module's ``TrainingDataError``.
    """
    from mlops_onprem.training import compute_metrics, encode_labels

    primary = card.get("primary_metric", {})
    metric, higher = primary.get("name"), primary.get("higher_is_better")
    holdout = card.get("metrics", {}).get(metric) if metric else None
    if labels.empty or predictions.empty:
        return QualityResult("no_labels", metric, higher, holdout, None, None, 0)
    joined = predictions.merge(labels, on=contract.row_key, how="inner")
    n = len(joined)
    if n < policy.min_labelled_rows:
        return QualityResult("insufficient_labels", metric, higher, holdout, None, None, n)
    task = contract.label.task if contract.label else Task.REGRESSION
    y_true = encode_labels(joined[contract.label_name], contract)
    live_metrics = compute_metrics(task, y_true, _score_arrays(joined, contract))
    live = live_metrics.get(metric) if metric else None
    if live is None or holdout is None or higher is None:
        return QualityResult("insufficient_labels", metric, higher, holdout, live, None, n, live_metrics)
    worse_by = (holdout - live) if higher else (live - holdout)
    relative = worse_by / abs(holdout) if holdout else (math.inf if worse_by > 0 else 0.0)
    status = "degraded" if relative > policy.max_quality_drop else "ok"
    return QualityResult(status, metric, higher, holdout, live, relative, n, live_metrics)


# --- the decision ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """The monitoring verdict and every rule that fired, in words."""

    status: str  # drift | no_drift | insufficient_data
    rules_fired: tuple[str, ...]
    reasons: tuple[str, ...]

    @property
    def drift(self) -> bool:
        return self.status == DECISION_DRIFT

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "drift": self.drift, "rules_fired": list(self.rules_fired),
                "reasons": list(self.reasons)}


def decide(drift: DriftResult, quality: QualityResult | None, policy: MonitoringPolicy) -> Decision:
    """Apply the policy's rules to a drift result and the live quality (see module docstring)."""
    if drift.insufficient_data:
        return Decision(
            DECISION_INSUFFICIENT, (),
            (f"insufficient data: {drift.n_current} rows in the window, "
             f"{policy.drift.min_rows} needed for a verdict (policy drift.min_rows; widen "
             "the window with window_days / window_batches or lower it)",),
        )
    fired, reasons = [], []
    if drift.drifted_share >= policy.drifted_share:
        fired.append("feature_share")
        reasons.append(
            f"{len(drift.drifted_features)}/{len(drift.features)} features drifted "
            f"({drift.drifted_share:.0%} >= {policy.drifted_share:.0%}): "
            + ", ".join(drift.drifted_features)
        )
    if policy.prediction_drift_triggers and drift.prediction_drift:
        fired.append("prediction_drift")
        reasons.append(
            "prediction drift in " + ", ".join(c.column for c in drift.predictions if c.drifted)
        )
    if quality is not None and quality.status == "degraded":
        fired.append("quality_drop")
        reasons.append(
            f"{quality.metric} {quality.live:.4g} live vs {quality.holdout:.4g} holdout: "
            f"{quality.relative_drop:.1%} worse > {policy.max_quality_drop:.0%} "
            f"({quality.labelled_rows} labelled rows)"
        )
    if fired:
        return Decision(DECISION_DRIFT, tuple(fired), tuple(reasons))
    return Decision(
        DECISION_NO_DRIFT, (),
        (f"{len(drift.drifted_features)}/{len(drift.features)} features drifted "
         f"(< {policy.drifted_share:.0%}), no prediction drift, no quality drop",),
    )


# --- the report -----------------------------------------------------------------------------
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
    now = now or datetime.now(UTC)
    return f"mon-{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}"


def _method_rows(column: ColumnDrift) -> list[str]:
    rows = []
    for m in column.methods:
        stat = _fmt(m.statistic) + (f" (p={m.p_value:.3g})" if m.p_value is not None else "")
        status = column.status.value if column.status == Status.INSUFFICIENT_DATA else (
            "**drift**" if m.drifted else "ok")
        rows.append(f"| {column.column} | {column.kind} | {m.method} | {stat} | {m.rule} | {status} |")
    return rows


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
        f"- **Rules fired:** {', '.join(report.decision.rules_fired) or 'none'}",
        *[f"- {reason}" for reason in report.decision.reasons],
        f"- **Window:** {d.n_current} distinct rows from {len(report.window.get('versions', []))} "
        f"batch version(s) of dataset `{report.dataset}`, data dates "
        f"{' to '.join(report.window.get('data_dates') or ['?'])}",
        f"- **Monitoring run:** `{report.run_id}` at {report.created_at}",
        "",
    ]
    q = report.quality
    if q is not None:
        lines += [
            "## Model quality (delayed labels)",
            "",
            f"- status: {q.status}; labelled rows: {q.labelled_rows}",
            f"- {q.metric}: live {_fmt(q.live)} vs holdout {_fmt(q.holdout)}"
            + (f" ({q.relative_drop:+.1%} worse)" if q.relative_drop is not None else ""),
            "",
        ]
    lines += [
        "## Features",
        "",
        f"{len(d.drifted_features)}/{len(d.features)} drifted "
        f"(threshold {report.policy.drifted_share:.0%}).",
        "",
        "| feature | kind | method | statistic | threshold | status |",
        "|---|---|---|---|---|---|",
    ]
    for column in sorted(d.features, key=lambda c: (not c.drifted, -c.severity)):
        lines += _method_rows(column)
    if d.predictions:
        lines += ["", "## Predictions", "", "| column | kind | method | statistic | threshold | status |",
                  "|---|---|---|---|---|---|"]
        for column in d.predictions:
            lines += _method_rows(column)
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


# --- one monitoring run ---------------------------------------------------------------------
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
        json_key, json.dumps(document, indent=2, default=_json_default).encode("utf-8"),
        content_type="application/json",
    )
    return ReportKeys(json=json_key, markdown=md_key, png=png_key), markdown


def _json_default(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return str(value)


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
    from mlops_onprem import registry

    policy = policy or MonitoringPolicy()
    now = now or datetime.now(UTC)
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
    window = load_window(store, views, model_ref, contract, list(profile.scores))
    scores = window.predictions if set(profile.scores) <= set(window.predictions.columns) else None
    drift = compute_drift(profile, window.features, scores, policy.drift)
    quality, label_keys = None, []
    if contract.label is not None:
        try:
            labels, label_keys = load_labels(store, index, contract,
                                             window.predictions[contract.row_key])
            quality = live_quality(window.predictions, labels, contract, champion.card, policy)
        except MlopsError as exc:
            window.notes.append(f"live quality not computed: {exc}")
    decision = decide(drift, quality, policy)
    return MonitoringReport(
        model_name=model_name,
        model_version=champion.version,
        dataset=dataset,
        run_id=run_id or new_monitoring_run_id(now),
        created_at=now.isoformat().replace("+00:00", "Z"),
        window={
            "versions": window.versions,
            "run_ids": window.run_ids,
            "manifest_keys": window.manifest_keys,
            "label_keys": label_keys,
            "feature_rows": len(window.features),
            "prediction_rows": len(window.predictions),
            "window_days": window_days,
            "window_batches": window_batches,
            "as_of": as_of,
            "data_dates": [views[0].data_date, views[-1].data_date],
            "notes": window.notes,
        },
        drift=drift,
        quality=quality,
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
