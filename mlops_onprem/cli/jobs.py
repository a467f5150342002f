"""``mlops ingest|train|monitor|pipeline``: each job's flow from the terminal, with options
mirroring the flow's parameters, a short summary table at the end and ``--json`` for the full
result. Like ``mlops score run``, these run the flow in this process (Prefect's local API unless
``PREFECT_API_URL`` is set), so the runs, logs and artifacts are in the Prefect UI as usual.

``python -m flows.<job>`` delegates here, so both spell the same options."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from mlops_onprem.cli.output import JSON_HELP, print_fields, print_json, print_table, progress

JSON_RESULT = JSON_HELP.format("the flow's whole result")
DATASET_HELP = "dataset name (contract: data_contracts/NAME.yaml)"
MODEL_HELP = "model name in the registry"
CONTRACT_HELP = "contract file (default: data_contracts/DATASET.yaml)"


def optional_int(text: str | int | None) -> int | None:
    """An integer, or ``none`` for the flow's ``None`` (no limit)."""
    if text is None or isinstance(text, int):  # the default
        return text
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an integer or 'none'") from None


def register(app: typer.Typer) -> None:
    from mlops_onprem.cli import add_command

    add_command(app, "ingest", run_ingest)
    add_command(app, "train", run_train)
    add_command(app, "monitor", run_monitor)
    add_command(app, "pipeline", run_pipeline)


def _verdict_rows(verdicts: list[dict[str, Any]]) -> list[list[Any]]:
    return [["validated" if v["success"] else "REJECTED", v["source_key"], v["stage"], v["rows"],
             v["routed_key"]] for v in verdicts]


def print_gate_table(validated: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> None:
    """One line per gated batch version, then the rejection messages."""
    if validated or rejected:
        print_table(["verdict", "batch", "stage", "rows", "copy / quarantine"],
                    _verdict_rows(validated + rejected))
    for verdict in rejected:
        print(f"rejected {verdict['source_key']}: {verdict['message'][:400]}")


def run_ingest(
    dataset: Annotated[str, typer.Option(help=DATASET_HELP)] = "demo",
    source_key: Annotated[str | None, typer.Option(
        help="only this landed key or key prefix (default: everything pending)")] = None,
    stage: Annotated[Literal["training", "scoring"] | None, typer.Option(
        help="incoming/ (training) or inbox/ (scoring); default both, and labels")] = None,
    start: Annotated[str | None, typer.Option(help="first data date (YYYY-MM-DD)")] = None,
    end: Annotated[str | None, typer.Option(help="last data date (YYYY-MM-DD)")] = None,
    contract_path: Annotated[str | None, typer.Option(help=CONTRACT_HELP)] = None,
    revalidate: Annotated[bool, typer.Option(
        "--revalidate", help="gate again versions decided under another contract version")] = False,
    json_output: Annotated[bool, typer.Option("--json", help=JSON_RESULT)] = False,
) -> int:
    """Run the ingest-batch flow: gate every pending batch version of a dataset (exit 1 when
    one is rejected)."""
    from flows.ingest import ingest_batch  # Prefect loads only for this command

    with progress(f"ingest-batch {dataset}"):
        result = ingest_batch(
            dataset=dataset, source_key=source_key, stage=stage, start=start,
            end=end, contract_path=contract_path, revalidate=revalidate,
            fail_on_rejected=False,
        )
    if json_output:
        print_json(result)
    else:
        print_gate_table(result["validated"], result["rejected"])
        print(f"{dataset}: {len(result['validated'])} batch version(s) validated, "
              f"{len(result['rejected'])} rejected")
    return 1 if result["rejected"] else 0


def run_train(
    dataset: Annotated[str, typer.Option(help=DATASET_HELP)] = "demo",
    model_name: Annotated[str, typer.Option("--model-name", "--model", help=MODEL_HELP)] = "demo",
    spec: Annotated[str, typer.Option(
        help="name in model_specs/, a YAML path or card:<model>@<version>")] = "xgboost",
    seed: Annotated[int | None, typer.Option(help="override the spec's seed")] = None,
    promotion_margin: Annotated[float, typer.Option(
        help="required improvement on the primary metric to become champion")] = 0.0,
    contract_path: Annotated[str | None, typer.Option(help=CONTRACT_HELP)] = None,
    window_days: Annotated[int | None, typer.Option(
        help="train on the last N days of data (default: every current batch)")] = None,
    window_batches: Annotated[int | None, typer.Option(
        help="train on the newest N batch versions")] = None,
    json_output: Annotated[bool, typer.Option("--json", help=JSON_RESULT)] = False,
) -> int:
    """Run the train-model flow: train, ONNX parity, register, promotion gate."""
    from flows.train import train_model

    with progress(f"train-model {model_name} ({spec})"):
        result = train_model(
            dataset=dataset, model_name=model_name, spec=spec, seed=seed,
            promotion_margin=promotion_margin, contract_path=contract_path,
            window_days=window_days, window_batches=window_batches,
        )
    if json_output:
        print_json(result)
        return 0
    decision = result["decision"]
    print_fields([
        ("model", f"{result['model_name']} v{result['version']}"),
        ("promoted", result["promoted"]),
        ("decision", f"{decision['action']}: {decision['reason']}"),
        *[(f"metric {name}", value) for name, value in sorted(result["metrics"].items())],
        ("card", result["card_key"]),
        ("training slot", f"{result['training_slot']['name']} "
                          f"(waited {result['training_slot']['waited_seconds']:.1f} s)"),
    ])
    return 0


def parse_policy(model: Any, text: str | None, option: str) -> Any:
    """``text`` (JSON) as the pydantic ``model``; a usage error naming ``option`` if it is not."""
    if not text:
        return None
    from pydantic import ValidationError

    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
                             for e in exc.errors())
        raise typer.BadParameter(problems, param_hint=option) from None


def run_monitor(
    model_name: Annotated[str, typer.Option("--model-name", "--model", help=MODEL_HELP)] = "demo",
    dataset: Annotated[str, typer.Option(help=DATASET_HELP)] = "demo",
    window_days: Annotated[int | None, typer.Option(
        parser=optional_int, metavar="DAYS|none",
        help="days of data up to --as-of (default 7; none = no limit)")] = 7,
    window_batches: Annotated[int | None, typer.Option(
        help="at most the newest N batch versions")] = None,
    as_of: Annotated[str | None, typer.Option(
        help="last data date of the window (YYYY-MM-DD)")] = None,
    no_retrain: Annotated[bool, typer.Option("--no-retrain", help="never retrain on drift")] = False,
    training_deployment: Annotated[str | None, typer.Option(
        help='retrain as this deployment, e.g. "train-model/train" (default: an embedded subflow)')] = None,
    policy: Annotated[str | None, typer.Option(
        help='MonitoringPolicy as JSON, e.g. \'{"persistence": 2}\'')] = None,
    json_output: Annotated[bool, typer.Option("--json", help=JSON_RESULT)] = False,
) -> int:
    """Run the monitor-model flow: drift and quality of the champion's window (retrain on drift
    unless --no-retrain)."""
    from flows.monitor import monitor_model
    from mlops_onprem.monitoring import MonitoringPolicy

    monitoring_policy = parse_policy(MonitoringPolicy, policy, "--policy")
    with progress(f"monitor-model {model_name} on {dataset}"):
        result = monitor_model(
            model_name=model_name, dataset=dataset, window_days=window_days,
            window_batches=window_batches, as_of=as_of, retrain=not no_retrain,
            training_deployment=training_deployment, policy=monitoring_policy,
        )
    if json_output:
        print_json(result)
        return 0
    quality = result.get("quality") or {}
    challenger = result.get("challenger") or {}
    retrain = result.get("retrain") or {}
    window = result.get("window") or {}
    fields: list[tuple[str, Any]] = [
        ("model", f"{result['model_name']} v{result['model_version']}"),
        ("decision", result["decision"]),
        ("window", " .. ".join(str(d) for d in window.get("data_dates") or []) +
         f" ({result['rows']:,} rows)" if window else "no scoring run in the window"),
        ("drifted features", ", ".join(result["drifted_features"]) or "none"),
        ("prediction drift", result["prediction_drift"]),
        ("quality", quality.get("status") if quality else None),
        ("challenger", challenger.get("status") if challenger else None),
        ("retrain", " ".join(str(v) for v in (retrain.get("status"), retrain.get("version"),
                                              retrain.get("reason")) if v is not None)),
        ("report", result.get("report_key")),
    ]
    print_fields(fields)
    for reason in result.get("reasons", [])[:10]:
        print(f"  - {reason}")
    return 0


def run_pipeline(
    dataset: Annotated[str, typer.Option(help=DATASET_HELP)] = "demo",
    model_name: Annotated[str, typer.Option("--model-name", "--model", help=MODEL_HELP)] = "demo",
    spec: Annotated[str, typer.Option(
        help="name in model_specs/, a YAML path or card:<model>@<version>")] = "xgboost",
    no_train: Annotated[bool, typer.Option("--no-train", help="skip training")] = False,
    no_score: Annotated[bool, typer.Option("--no-score", help="skip scoring")] = False,
    promotion_margin: Annotated[float, typer.Option(
        help="required improvement on the primary metric to become champion")] = 0.0,
    json_output: Annotated[bool, typer.Option("--json", help=JSON_RESULT)] = False,
) -> int:
    """Run the run-pipeline flow: ingest, train, score one dataset (exit 1 when a batch is
    quarantined)."""
    from flows.pipeline import run_pipeline as pipeline_flow

    with progress(f"run-pipeline {dataset}"):
        result = pipeline_flow(
            dataset=dataset, model_name=model_name, spec=spec,
            train=not no_train, score=not no_score,
            promotion_margin=promotion_margin, fail_on_rejected=False,
        )
    if json_output:
        print_json(result)
    else:
        training, scoring = result.get("training") or {}, result.get("scoring") or {}
        print_fields([
            ("dataset", result["dataset"]),
            ("validated batches", len(result["validated"])),
            ("quarantined batches", len(result["quarantined"])),
            ("trained", f"{training['model_name']} v{training['version']}, promoted: "
                        f"{'yes' if training['promoted'] else 'no'}" if training else None),
            ("scored", f"{scoring.get('rows', 0):,} rows, {scoring.get('status')}, "
                       f"manifest {scoring.get('manifest_key')}" if scoring else None),
        ])
        for q in result["quarantined"]:
            print(f"quarantined {q['key']} -> {q['quarantine_key']}: {q['message'][:300]}")
    return 1 if result["quarantined"] else 0
