"""``mlops score run|runs|show``: batch scoring runs from the command line."""

from __future__ import annotations

import argparse
import json

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
    run.set_defaults(handler=run_score)

    runs = commands.add_parser("runs", help="scoring runs of a model (one line per manifest)")
    runs.add_argument("model")
    runs.set_defaults(handler=run_list)

    show = commands.add_parser("show", help="print one run's manifest")
    show.add_argument("manifest_key")
    show.set_defaults(handler=run_show)


def run_score(args: argparse.Namespace) -> int:
    from flows.score import score_batch  # Prefect loads only for this command

    summary = score_batch(
        dataset=args.dataset, input_prefix=args.input_prefix, model_name=args.model,
        model_ref=args.ref, mode=args.mode, start=args.start, end=args.end, run_id=args.run_id,
        batch_rows=args.batch_rows, fail_on_rejected=False,
    )
    print(json.dumps({**{k: summary[k] for k in ("run_id", "manifest_key", "status", "rows")},
                      "rejected": [r["source_key"] for r in summary["rejected"]]}))
    return 1 if summary["rejected"] else 0


def run_list(args: argparse.Namespace) -> int:
    store = open_store()
    manifest_keys = list_manifest_keys(store, args.model)
    if not manifest_keys:
        print(f"model {args.model!r} has no completed scoring run in {store.location}")
        return 1
    print(f"{'version':>7}  {'run id':<22} {'created':<28} {'status':<8} {'rows':>12}  manifest")
    for key in manifest_keys:
        m = read_manifest(store, key)
        print(f"{m.model_version:>7}  {m.run_id:<22} {m.created_at:<28} {m.status:<8} "
              f"{m.rows:>12,}  {key}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    print(dumps(read_manifest(open_store(), args.manifest_key)))
    return 0
