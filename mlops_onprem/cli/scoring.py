"""``mlops score run|runs|show``: batch scoring runs from the command line."""

from __future__ import annotations

import argparse
from typing import Any

from mlops_onprem.cli.output import print_fields, print_json, print_table, progress
from mlops_onprem.manifest import dumps, list_manifest_keys, read_manifest
from mlops_onprem.scoring import DEFAULT_BATCH_ROWS
from mlops_onprem.store import open_store


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("score", help="run batch scoring and inspect its manifests")
    commands = parser.add_subparsers(dest="score_command", required=True)

    run = commands.add_parser("run", help="run the score-batch flow (champion by default)")
    run.add_argument("--dataset", default="demo")
    run.add_argument("--input-prefix", default=None,
                     help="limit to landed keys under this prefix (default all of inbox/<dataset>/)")
    run.add_argument("--model", default="demo")
    run.add_argument("--ref", default="champion", help="alias or version number")
    run.add_argument("--mode", choices=["new", "backfill", "rescore"], default="new",
                     help="new: batches the model never scored (default); backfill: every batch "
                          "in the range, idempotent; rescore: again, under a new run id")
    run.add_argument("--start", default=None, help="first data date (YYYY-MM-DD)")
    run.add_argument("--end", default=None, help="last data date (YYYY-MM-DD)")
    run.add_argument("--run-id", default=None, help="pin the run id (default: derived)")
    run.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS)
    run.add_argument("--ort-threads", type=int, default=1,
                     help="onnxruntime intra-op threads per partition")
    run.add_argument("--contract-path", default=None,
                     help="contract file (default data_contracts/<dataset>.yaml)")
    run.add_argument("--json", action="store_true", help="print the flow's whole run summary")
    run.set_defaults(handler=run_score)

    runs = commands.add_parser("runs", help="scoring runs of a model (one line per manifest)")
    runs.add_argument("model")
    runs.add_argument("--json", action="store_true", help="print every manifest as JSON")
    runs.set_defaults(handler=run_list)

    show = commands.add_parser("show", help="print one run's manifest (JSON)")
    show.add_argument("manifest_key")
    show.add_argument("--json", action="store_true",
                      help="accepted for symmetry: the manifest is always printed as JSON")
    show.set_defaults(handler=run_show)


def run_score(args: argparse.Namespace) -> int:
    from flows.score import score_batch  # Prefect loads only for this command

    with progress(f"score-batch {args.model}@{args.ref} on {args.dataset} ({args.mode})"):
        summary = score_batch(
            dataset=args.dataset, input_prefix=args.input_prefix, model_name=args.model,
            model_ref=args.ref, mode=args.mode, start=args.start, end=args.end,
            run_id=args.run_id, batch_rows=args.batch_rows, ort_threads=args.ort_threads,
            contract_path=args.contract_path, fail_on_rejected=False,
        )
    if args.json:
        print_json(summary)
    else:
        print_score_summary(summary)
    return 1 if summary["rejected"] else 0


def print_score_summary(summary: dict[str, Any]) -> None:
    """One table row per scored batch, then the run's totals and what went wrong."""
    from mlops_onprem.cli.jobs import print_gate_table

    if summary["inputs"]:
        print_table(["batch version", "landed key", "rows"],
                    [[i["version"], i["source_key"], i["rows"]] for i in summary["inputs"]])
        print()
    timings = summary.get("timings") or {}
    shadow = summary.get("shadow") or {}
    print_fields([
        ("model", f"{summary['model_name']} v{summary['model_version']}"),
        ("mode", summary.get("mode")),
        ("status", summary["status"]),
        ("rows", summary["rows"]),
        ("partitions", summary["partitions"]),
        ("rows/s", timings.get("rows_per_s")),
        ("run id", summary["run_id"]),
        ("manifest", summary["manifest_key"]),
        ("shadow challenger", " ".join(str(shadow[k]) for k in ("status", "challenger_version")
                                       if shadow.get(k) is not None) or None),
    ])
    for failed in summary.get("failed_partitions", []):
        print(f"failed partition {failed['key']}: {failed['error']}")
    if summary["rejected"]:
        print()
        print_gate_table([], summary["rejected"])


def run_list(args: argparse.Namespace) -> int:
    store = open_store()
    manifests = [read_manifest(store, key) for key in list_manifest_keys(store, args.model)]
    if args.json:
        print_json([{**m.to_json(), "manifest_key": m.key} for m in manifests])
        return 0 if manifests else 1
    if not manifests:
        print(f"model {args.model!r} has no completed scoring run in {store.location}")
        return 1
    print_table(["version", "run id", "created", "status", "rows", "manifest"],
                [[m.model_version, m.run_id, m.created_at, m.status, m.rows, m.key]
                 for m in manifests])
    return 0


def run_show(args: argparse.Namespace) -> int:
    print(dumps(read_manifest(open_store(), args.manifest_key)))
    return 0
