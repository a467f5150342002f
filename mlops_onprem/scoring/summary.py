"""The summary of a scoring run (pure): the score distribution over its partitions and the
markdown of the run's summary artifact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlops_onprem.manifest import ShadowStatus
from mlops_onprem.number_format import format_number

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def score_distribution(records: list[dict[str, Any]]) -> dict[str, float | int | None]:
    """Rows, exact min / max / mean and approximate quantiles of ``score`` over partitions.

    Quantiles come from each partition's evenly spaced ``score_sample``, each sampled value
    weighted by the rows it stands for (so a big partition counts more than a small one).
    """
    rows = sum(int(r["rows"]) for r in records)
    result: dict[str, float | int | None] = {"rows": rows}
    mins = [r["score_min"] for r in records if r.get("score_min") is not None]
    maxs = [r["score_max"] for r in records if r.get("score_max") is not None]
    result["min"] = min(mins) if mins else None
    result["max"] = max(maxs) if maxs else None
    result["mean"] = sum(float(r["score_sum"]) for r in records) / rows if rows else None
    values, weights = [], []
    for record in records:
        sample = [v for v in record.get("score_sample", []) if v == v]  # drop NaN
        if sample:
            values.extend(sample)
            weights.extend([int(record["rows"]) / len(sample)] * len(sample))
    for q in QUANTILES:
        result[f"p{round(q * 100):02d}"] = None
    if values:
        order = np.argsort(values)
        sorted_values = np.asarray(values)[order]
        cumulative = np.cumsum(np.asarray(weights)[order])
        cumulative /= cumulative[-1]
        for q in QUANTILES:
            index = min(int(np.searchsorted(cumulative, q)), len(sorted_values) - 1)
            result[f"p{round(q * 100):02d}"] = float(sorted_values[index])
    return result


def scoring_summary_markdown(summary: dict[str, Any], distribution: dict[str, Any]) -> str:
    """The markdown of a run's summary artifact: volumes, throughput, score distribution."""
    timings = summary.get("timings", {})
    lines = [
        f"# Scoring run `{summary['run_id']}`",
        "",
        f"Model **{summary['model_name']} v{summary['model_version']}** on dataset "
        f"`{summary['contract_dataset']}` (contract v{summary['contract_version']}). "
        f"Status: **{summary['status']}**"
        + (f", **{len(summary['rejected'])} batch(es) rejected**." if summary.get("rejected") else "."),
        "",
        "| | |",
        "|---|---|",
        f"| rows scored | {summary['rows']:,} |",
        f"| partitions | {summary['partitions']} ({len(summary['failed_partitions'])} failed) |",
        f"| wall time | {format_number(timings.get('wall_s'), missing='-')} s |",
        f"| throughput | {format_number(timings.get('rows_per_s'), missing='-')} rows/s |",
        f"| manifest | `{summary['manifest_key']}` |",
        "",
        "## Score distribution",
        "",
        "| " + " | ".join(distribution) + " |",
        "|" + "---|" * len(distribution),
        "| " + " | ".join(format_number(v, missing="-") for v in distribution.values()) + " |",
    ]
    shadow = summary.get("shadow")
    if shadow:
        lines += ["", "## Shadow challenger (not delivered)", "",
                  f"{shadow['status']}: {shadow.get('reason') or ''}".rstrip(": ")
                  + (f" v{shadow['challenger_version']} scored {shadow['rows']:,} rows into "
                     f"`{shadow['manifest_key']}` ({shadow['failed']} partition(s) failed)."
                     if shadow["status"] == ShadowStatus.SCORED else "")]
    if summary.get("inputs"):
        lines += ["", "## Batches scored", "", "| landed as | batch version | rows |", "|---|---|---|"]
        lines += [f"| `{i['source_key']}` | `{i['version']}` | {i['rows']:,} |"
                  for i in summary["inputs"]]
    if summary.get("rejected"):
        lines += ["", "## Batches rejected by the contract (not scored)", "",
                  "| landed as | quarantined at | reason |", "|---|---|---|"]
        lines += [f"| `{r['source_key']}` | `{r['routed_key']}` | {r['message'][:300].replace('|', '/')} |"
                  for r in summary["rejected"]]
    if summary["failed_partitions"]:
        lines += ["", "## Failed partitions (quarantined)", "", "| input | error |", "|---|---|"]
        lines += [f"| `{f['key']}` | {f['error'][:300].replace('|', '/')} |"
                  for f in summary["failed_partitions"]]
    return "\n".join(lines)


