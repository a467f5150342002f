"""``mlops ingest|train|monitor|pipeline``: each job's flow from the terminal, with options
mirroring the flow's parameters, a short summary table at the end and ``--json`` for the full
result. Like ``mlops score run``, these run the flow in this process (Prefect's local API unless
``PREFECT_API_URL`` is set), so the runs, logs and artifacts are in the Prefect UI as usual.

``python -m flows.<job>`` delegates here, so both spell the same options."""

from __future__ import annotations

import argparse
from typing import Any

from mlops_onprem.cli.output import print_fields, print_json, print_table, progress


def optional_int(text: str) -> int | None:
    """An integer, or ``none`` for the flow's ``None`` (no limit)."""
    return None if text.lower() == "none" else int(text)


def register(subparsers: argparse._SubParsersAction) -> None:
    ingest = subparsers.add_parser(
        "ingest", help="run the ingest-batch flow: gate every pending batch version of a dataset")
    ingest.add_argument("--dataset", default="demo")
    ingest.add_argument("--source-key", default=None,
                        help="only this landed key or key prefix (default: everything pending)")
    ingest.add_argument("--stage", choices=["training", "scoring"], default=None,
                        help="incoming/ (training) or inbox/ (scoring); default both, and labels")
    ingest.add_argument("--start", default=None, help="first data date (YYYY-MM-DD)")
    ingest.add_argument("--end", default=None, help="last data date (YYYY-MM-DD)")
    ingest.add_argument("--contract-path", default=None,
                        help="contract file (default data_contracts/<dataset>.yaml)")
    ingest.add_argument("--revalidate", action="store_true",
                        help="gate again versions decided under another contract version")
    ingest.add_argument("--json", action="store_true", help="print the flow's whole result")
    ingest.set_defaults(handler=run_ingest)

    train = subparsers.add_parser(
        "train", help="run the train-model flow: train, ONNX parity, register, promotion gate")
    train.add_argument("--dataset", default="demo")
    train.add_argument("--model-name", "--model", dest="model_name", default="demo")
    train.add_argument("--spec", default="xgboost",
                       help="name in model_specs/, a YAML path or card:<model>@<version>")
    train.add_argument("--seed", type=int, default=None, help="override the spec's seed")
    train.add_argument("--promotion-margin", type=float, default=0.0,
                       help="required improvement on the primary metric to become champion")
    train.add_argument("--contract-path", default=None)
    train.add_argument("--window-days", type=int, default=None,
                       help="train on the last N days of data (default: every current batch)")
    train.add_argument("--window-batches", type=int, default=None,
                       help="train on the newest N batch versions")
    train.add_argument("--json", action="store_true", help="print the flow's whole result")
    train.set_defaults(handler=run_train)

    monitor = subparsers.add_parser(
        "monitor", help="run the monitor-model flow: drift and quality of the champion's window")
    monitor.add_argument("--model-name", "--model", dest="model_name", default="demo")
    monitor.add_argument("--dataset", default="demo")
    monitor.add_argument("--window-days", type=optional_int, default=7,
                         help="days of data up to --as-of (default 7; none = no limit)")
    monitor.add_argument("--window-batches", type=int, default=None,
                         help="at most the newest N batch versions")
    monitor.add_argument("--as-of", default=None, help="last data date of the window (YYYY-MM-DD)")
    monitor.add_argument("--no-retrain", action="store_true", help="never retrain on drift")
    monitor.add_argument("--training-deployment", default=None,
                         help='retrain as this deployment, e.g. "train-model/train" '
                              "(default: an embedded subflow)")
    monitor.add_argument("--policy", default=None,
                         help='MonitoringPolicy as JSON, e.g. \'{"persistence": 2}\'')
    monitor.add_argument("--json", action="store_true", help="print the flow's whole result")
    monitor.set_defaults(handler=run_monitor)

    pipeline = subparsers.add_parser(
        "pipeline", help="run the run-pipeline flow: ingest, train, score one dataset")
    pipeline.add_argument("--dataset", default="demo")
    pipeline.add_argument("--model-name", "--model", dest="model_name", default="demo")
    pipeline.add_argument("--spec", default="xgboost")
    pipeline.add_argument("--no-train", action="store_true", help="skip training")
    pipeline.add_argument("--no-score", action="store_true", help="skip scoring")
    pipeline.add_argument("--promotion-margin", type=float, default=0.0)
    pipeline.add_argument("--json", action="store_true", help="print the flow's whole result")
    pipeline.set_defaults(handler=run_pipeline)


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


def run_ingest(args: argparse.Namespace) -> int:
    from flows.ingest import ingest_batch  # Prefect loads only for this command

    with progress(f"ingest-batch {args.dataset}"):
        result = ingest_batch(
            dataset=args.dataset, source_key=args.source_key, stage=args.stage, start=args.start,
            end=args.end, contract_path=args.contract_path, revalidate=args.revalidate,
            fail_on_rejected=False,
        )
    if args.json:
        print_json(result)
    else:
        print_gate_table(result["validated"], result["rejected"])
        print(f"{args.dataset}: {len(result['validated'])} batch version(s) validated, "
              f"{len(result['rejected'])} rejected")
    return 1 if result["rejected"] else 0


def run_train(args: argparse.Namespace) -> int:
    from flows.train import train_model

    with progress(f"train-model {args.model_name} ({args.spec})"):
        result = train_model(
            dataset=args.dataset, model_name=args.model_name, spec=args.spec, seed=args.seed,
            promotion_margin=args.promotion_margin, contract_path=args.contract_path,
            window_days=args.window_days, window_batches=args.window_batches,
        )
    if args.json:
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


def run_monitor(args: argparse.Namespace) -> int:
    from flows.monitor import monitor_model
    from mlops_onprem.monitoring import MonitoringPolicy

    policy = MonitoringPolicy.model_validate_json(args.policy) if args.policy else None
    with progress(f"monitor-model {args.model_name} on {args.dataset}"):
        result = monitor_model(
            model_name=args.model_name, dataset=args.dataset, window_days=args.window_days,
            window_batches=args.window_batches, as_of=args.as_of, retrain=not args.no_retrain,
            training_deployment=args.training_deployment, policy=policy,
        )
    if args.json:
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


def run_pipeline(args: argparse.Namespace) -> int:
    from flows.pipeline import run_pipeline as pipeline_flow

    with progress(f"run-pipeline {args.dataset}"):
        result = pipeline_flow(
            dataset=args.dataset, model_name=args.model_name, spec=args.spec,
            train=not args.no_train, score=not args.no_score,
            promotion_margin=args.promotion_margin, fail_on_rejected=False,
        )
    if args.json:
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
