"""Flow ``run-pipeline``: the end-to-end pipeline of one dataset.

    list-pending-batches -> ingest-batch (per landed batch: validated/ or quarantine/)
        -> train-model (export, parity gate, register, promotion gate)
        -> score-batch (inbox/<dataset>/ with the champion, manifest last)

Quarantined batches do not stop the others; the run ends Failed afterwards naming them
(unless ``fail_on_rejected`` is False), so nothing bad goes unnoticed.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.ingest import ingest_batch
from flows.score import score_batch
from flows.train import train_model
from mlops_onprem import keys
from mlops_onprem.validation import BatchRejectedError
from tasks.landing import has_objects, list_pending_batches


def _pipeline_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Pipeline `{summary['dataset']}`", "",
             f"- validated batches: {len(summary['validated'])}",
             f"- quarantined batches: {len(summary['quarantined'])}"]
    lines += [f"  - `{q['key']}`: {q['message'][:300]}" for q in summary["quarantined"]]
    training = summary.get("training") or {}
    if training:
        lines.append(f"- model `{training['model_name']}` version {training['version']}, "
                     f"promoted: {training['promoted']}")
    scoring = summary.get("scoring") or {}
    if scoring:
        lines.append(f"- scored {scoring.get('rows', '?')} rows, manifest `{scoring.get('manifest_key')}`")
    return "\n".join(lines)


@flow(name="run-pipeline")
def run_pipeline(
    dataset: str = "demo",
    model_name: str = "demo",
    spec: str = "xgboost",
    train: bool = True,
    score: bool = True,
    promotion_margin: float = 0.0,
    fail_on_rejected: bool = True,
) -> dict[str, Any]:
    """Validate every pending landed batch, train and register a model, score the inbox.

    Returns {dataset, validated, quarantined, training, scoring}.
    Raises BatchRejectedError (after training and scoring) when a batch was quarantined.
    """
    logger = get_run_logger()
    summary: dict[str, Any] = {"dataset": dataset, "validated": [], "quarantined": [],
                               "training": None, "scoring": None}
    for key in list_pending_batches(dataset):
        state = ingest_batch(dataset, key, return_state=True)
        if state.is_completed():
            summary["validated"].append(state.result())
            continue
        error = state.result(raise_on_failure=False)
        if not isinstance(error, BatchRejectedError):
            # a store outage or a broken contract is not a verdict on the batch: stop here
            state.result()
        summary["quarantined"].append({"key": key, "message": state.message or "rejected"})
    if train:
        summary["training"] = train_model(dataset=dataset, model_name=model_name, spec=spec,
                                          promotion_margin=promotion_margin)
    inbox = keys.scoring_inbox_prefix(dataset)
    if score and has_objects(inbox):
        summary["scoring"] = score_batch(dataset=dataset, input_prefix=inbox, model_name=model_name)
    elif score:
        logger.info("nothing to score under %s", inbox)
    create_markdown_artifact(markdown=_pipeline_markdown(summary), key=f"pipeline-{dataset}".lower(),
                             description="End-to-end pipeline summary")
    if summary["quarantined"] and fail_on_rejected:
        names = ", ".join(q["key"] for q in summary["quarantined"])
        raise BatchRejectedError(f"{len(summary['quarantined'])} batch(es) quarantined: {names}",
                                 dataset=dataset, batch_id="*")
    return summary


if __name__ == "__main__":
    import json

    print(json.dumps(run_pipeline(), indent=2, default=str))
