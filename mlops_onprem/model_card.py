"""Model cards: ``card.json`` (machine-readable lineage, metrics, files) and ``card.md``.

The card is the commit marker of a registry version: it is written last, so a version without
``card.json`` is incomplete and ignored.
"""

from __future__ import annotations

import json
import subprocess
from functools import partial
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from mlops_onprem.number_format import format_number

#: packages whose versions every card records
TRACKED_PACKAGES = (
    "mlops-onprem", "numpy", "pandas", "pyarrow", "scikit-learn", "xgboost-cpu", "xgboost",
    "onnx", "onnxruntime", "onnxmltools", "skl2onnx", "skops", "prefect",
)
DATA_SHA256_METHOD = (
    "sha256 of the sorted lines '<object key>\\t<object sha256>\\n' of the validated Parquet "
    "objects read"
)


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`TRACKED_PACKAGES` (absent ones are skipped)."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def code_version(repo_dir: Path | None = None) -> str:
    """The git commit of the code (``git rev-parse HEAD``), or ``"unknown"`` outside a repo."""
    directory = repo_dir or Path(__file__).resolve().parent.parent
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True,
            timeout=5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    commit = completed.stdout.strip()
    return commit if completed.returncode == 0 and commit else "unknown"


_fmt = partial(format_number, digits=6)  # a card's metrics: six significant digits


def metrics_table(metrics: dict[str, Any], primary: str | None = None) -> str:
    """A markdown table of metrics, the primary one marked."""
    lines = ["| metric | value |", "|---|---|"]
    for name in sorted(metrics):
        marker = " (primary)" if name == primary else ""
        lines.append(f"| {name}{marker} | {_fmt(metrics[name])} |")
    return "\n".join(lines)


def _batch_table(versions: list[dict[str, Any]]) -> list[str]:
    """The training batches (landed key, content hash, data date, rows) as a markdown table."""
    if not versions:
        return []
    lines = ["| landed as | content sha256 | data date | rows |", "|---|---|---|---|"]
    lines += [f"| `{v.get('source_key')}` | `{str(v.get('content_sha256'))[:16]}...` | "
              f"{v.get('data_date')} | {v.get('rows')} |" for v in versions]
    return [*lines, ""]


def _monitoring_lines(monitoring: dict[str, Any]) -> list[str]:
    """How monitoring will judge this version: its reference and the calibration check."""
    if not monitoring:
        return []
    calibration = monitoring.get("calibration") or {}
    status = calibration.get("status", "n/a")
    detail = {
        "calibrated": f"scores calibrated on the holdout (ECE {_fmt(calibration.get('ece_before'))}"
                      f" <= {_fmt(calibration.get('tolerance'))}): label-free estimates enabled",
        "recalibrated": f"scores recalibrated with an isotonic map fitted on the holdout (ECE "
                        f"{_fmt(calibration.get('ece_before'))} -> "
                        f"{_fmt(calibration.get('ece_after'))}, cross-fitted): estimates use it",
        "refused": f"no label-free estimates: {calibration.get('reason', '')}",
    }.get(status, status)
    return ["## Monitoring reference", "",
            f"- features: {monitoring.get('reference_rows')} training rows (train and holdout); "
            f"scores: {monitoring.get('score_rows')} holdout rows (out of sample)",
            f"- calibration: {detail}", ""]


def _threshold_lines(record: dict[str, Any] | None) -> list[str]:
    """The binary decision threshold: value, rule and what it achieved on the holdout."""
    if not record:
        return []
    rule = record.get("rule")
    how = {"default": "default (no threshold in the spec)", "fixed": "fixed by the spec",
           "max_f1": "maximises F1 on the holdout",
           "min_precision": f"lowest with precision >= {record.get('target')} on the holdout",
           "min_recall": f"highest with recall >= {record.get('target')} on the holdout"}.get(
               rule, str(rule))
    lines = [f"**Decision threshold:** {record['value']:.4g} ({how}); `predicted_label` is "
             "positive at score >= it. Holdout at this threshold: precision "
             f"{_fmt(record.get('precision'))}, recall {_fmt(record.get('recall'))}, "
             f"F1 {_fmt(record.get('f1'))}."]
    if record.get("met") is False:
        lines.append(f"**Target not met:** {record.get('note')}")
    elif record.get("note"):
        lines.append(f"_{record['note']}_")
    return [*lines, ""]


def _figure_lines(png: bytes | None, task: str | None) -> list[str]:
    if not png:
        return []
    import base64

    what = {"binary_classification": "ROC, precision-recall, confusion at the threshold",
            "multiclass_classification": "confusion matrix",
            "regression": "predicted vs actual, residuals"}.get(str(task), "holdout")
    return [f"![holdout: {what}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})", ""]


def _decision_lines(decisions: list[dict[str, Any]]) -> list[str]:
    """The registry's decisions about this version (history events naming it)."""
    if not decisions:
        return []
    lines = ["## Promotion decisions", "",
             "| when | action | vs champion | metric | this version | champion | rows | "
             "improvement [interval] | reason |", "|---|---|---|---|---|---|---|---|---|"]
    for d in decisions:
        interval = d.get("interval")
        lines.append(
            f"| {d.get('decided_at', '')[:19]} | {d.get('action')} | "
            f"{'-' if d.get('champion_version') is None else 'v' + str(d['champion_version'])} | "
            f"{d.get('metric') or '-'} | {_fmt(d.get('candidate_score'))} | "
            f"{_fmt(d.get('champion_score'))} | {d.get('eval_rows') or '-'} | "
            f"{_fmt(d.get('improvement'))}"
            + (f" [{_fmt(interval[0])}, {_fmt(interval[1])}]" if interval else "")
            + f" | {str(d.get('reason', '')).replace('|', '/')[:400]} |")
    return lines + [""]


def _importance_lines(importance: list[dict[str, Any]], metric: str | None, top: int = 12) -> list[str]:
    """Permutation importance on the holdout (the features the model needs)."""
    if not importance:
        return []
    lines = ["## Feature importance", "",
             f"How much the holdout {metric} worsens when a feature's values are shuffled "
             "(permutation importance; mean ± spread over the shuffles; ~0 = not used).", "",
             "| feature | importance | ± |", "|---|---|---|"]
    lines += [f"| {item['feature']} | {_fmt(item['importance'])} | {_fmt(item.get('std'))} |"
              for item in importance[:top]]
    if len(importance) > top:
        lines.append(f"| … {len(importance) - top} more (card.json) | | |")
    return [*lines, ""]


def _status_lines(decisions: list[dict[str, Any]], invocation: dict[str, Any]) -> list[str]:
    """Where the version stands and how it got there (from the registry's decisions)."""
    spec = str(invocation.get("spec") or "")
    trigger = ("retrain of " + spec.removeprefix("card:") + "'s recorded spec"
               if spec.startswith("card:") else f"training of spec `{spec}`" if spec else None)
    lines = [f"- **Trigger:** {trigger}"] if trigger else []
    if decisions:
        last = decisions[-1]
        state = {"promoted": "champion", "rollback": "champion (rolled back to)",
                 "challenger_set": "shadow challenger", "rejected": "not promoted",
                 "challenger_retired": "retired challenger",
                 "already_champion": "champion"}.get(last.get("action"), last.get("action"))
        lines.append(f"- **Status (at its last decision):** {state}, {last.get('decided_at', '')[:19]}"
                     " — see the decisions below; `mlops models list` shows the current one")
    return [*lines, ""] if lines else []


def render_card_markdown(card: dict[str, Any], decisions: list[dict[str, Any]] | None = None,
                         figure_png: bytes | None = None) -> str:
    """The human-readable model card for ``card.json``'s content, plus the registry's
    ``decisions`` about the version when given (both models' metrics on the same rows) and the
    holdout figure inlined when given."""
    data = card.get("data", {})
    contract = card.get("contract", {})
    lineage = card.get("lineage", {})
    parity = card.get("parity", {})
    files = card.get("files", {})
    primary = card.get("primary_metric", {}).get("name")
    lines = [
        f"# Model card: {card['name']} v{card['version']}",
        "",
        f"- **Task:** {card.get('task')}",
        f"- **Estimator:** {card.get('spec', {}).get('kind')} (spec `{card.get('spec', {}).get('name')}`)",
        f"- **Created:** {card.get('created_at')}",
        f"- **Contract:** `{contract.get('dataset')}` v{contract.get('version')}, "
        f"{len(contract.get('feature_names', []))} features",
        *_status_lines(decisions or [], card.get("invocation") or {}),
        "",
        "## Holdout metrics",
        "",
        metrics_table(card.get("metrics", {}), primary),
        "",
        *_threshold_lines(card.get("decision_threshold")),
        *_figure_lines(figure_png, card.get("task")),
        *_importance_lines(card.get("feature_importance") or [], primary),
        *_decision_lines(decisions or []),
        "## Data",
        "",
        f"- rows: {data.get('rows')} (train {data.get('train_rows')}, holdout {data.get('holdout_rows')})",
        f"- split: {data.get('split')}",
        *([f"- time range: {data['time_range'][0]} to {data['time_range'][1]}"]
          if data.get("time_range") else []),
        f"- training data sha256: `{data.get('sha256')}`",
        f"- batch versions: {len(data.get('batch_versions') or data.get('object_keys', []))}",
        "",
        *_batch_table(data.get("batch_versions") or []),
        "## ONNX export",
        "",
        f"- parity: {'passed' if parity.get('passed') else 'FAILED'}, max abs diff "
        f"{_fmt(parity.get('max_abs_diff'))}, gate diff {_fmt(parity.get('gate_diff'))} "
        f"<= {_fmt(parity.get('tolerance'))} on {parity.get('rows')} rows",
        f"- onnx: `{files.get('onnx', {}).get('key')}` sha256 `{files.get('onnx', {}).get('sha256')}`",
        f"- opsets: {card.get('opsets')}",
        "",
        *_monitoring_lines(card.get("monitoring") or {}),
        "## Reproducibility",
        "",
        f"- seed: {lineage.get('seed')}",
        f"- code version: `{lineage.get('code_version')}`",
        f"- Prefect flow run: `{lineage.get('flow_run_id')}`",
        "- packages: " + ", ".join(f"{k} {v}" for k, v in lineage.get("packages", {}).items()),
        "",
        "## Hyperparameters",
        "",
        "```json",
        json.dumps(card.get("params", {}), indent=2, sort_keys=True, default=str),
        "```",
        "",
    ]
    return "\n".join(lines)
