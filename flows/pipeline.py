"""Flow ``run-pipeline``: the end-to-end pipeline of one dataset.

    ingest-batch (every pending batch version, both stages, and new label objects)
        -> train-model (export, parity gate, register, promotion gate)
        -> score-batch (gates the inbox, scores what the champion has not scored yet)

Quarantined batches do not stop the others; the run ends Failed afterwards naming them
(unless ``fail_on_rejected`` is False), so nothing bad goes unnoticed.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.ingest import ingest_batch, rejected_error
from flows.score import score_batch
from flows.train import train_model
from tasks.run_labels import run_name


def _pipeline_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Pipeline `{summary['dataset']}`", "",
             f"- validated batches: {len(summary['validated'])}",
             f"- quarantined batches: {len(summary['quarantined'])}"]
    lines += [f"  - `{q['key']}` -> `{q['quarantine_key']}`: {q['message'][:300]}"
              for q in summary["quarantined"]]
    training = summary.get("training") or {}
    if training:
        lines.append(f"- model `{training['model_name']}` version {training['version']}, "
                     f"promoted: {training['promoted']}")
    scoring = summary.get("scoring") or {}
    if scoring:
        lines.append(f"- scored {scoring.get('rows', 0)} rows, manifest `{scoring.get('manifest_key')}`")
    return "\n".join(lines)


@flow(name="run-pipeline", flow_run_name=run_name(lambda p: f"pipeline {p.get('dataset', 'demo')}"))
def run_pipeline(
    dataset: str = "demo",
    model_name: str = "demo",
    spec: str = "xgboost",
    train: bool = True,
    score: bool = True,
    promotion_margin: float = 0.0,
    fail_on_rejected: bool = True,
) -> dict[str, Any]:
    """Gate every pending training batch, train and register a model, score what is new.

    Returns {dataset, validated, quarantined, training, scoring}.
    Raises BatchRejectedError (after training and scoring) when a batch was quarantined.
    """
    summary: dict[str, Any] = {"dataset": dataset, "validated": [], "quarantined": [],
                               "training": None, "scoring": None}
    gated = ingest_batch(dataset, fail_on_rejected=False)  # both stages, and new labels
    summary["validated"] = [v["source_key"] for v in gated["validated"]]
    summary["quarantined"] = [{"key": r["source_key"], "quarantine_key": r["routed_key"],
                               "message": r["message"]} for r in gated["rejected"]]
    rejected = list(gated["rejected"])
    if train:
        summary["training"] = train_model(dataset=dataset, model_name=model_name, spec=spec,
                                          promotion_margin=promotion_margin)
    if score:
        summary["scoring"] = score_batch(dataset=dataset, model_name=model_name,
                                         fail_on_rejected=False)
        rejected += summary["scoring"].get("rejected", [])
        summary["quarantined"] += [{"key": r["source_key"], "quarantine_key": r["routed_key"],
                                    "message": r["message"]}
                                   for r in summary["scoring"].get("rejected", [])]
    create_markdown_artifact(markdown=_pipeline_markdown(summary), key=f"pipeline-{dataset}".lower(),
                             description="End-to-end pipeline summary")
    if rejected and fail_on_rejected:
        raise rejected_error(dataset, rejected)
    return summary


if __name__ == "__main__":  # the same options as `mlops pipeline` (mlops_onprem/cli/)
    import sys

    from mlops_onprem.cli import main

    sys.exit(main(["pipeline", *sys.argv[1:]]))
