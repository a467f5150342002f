"""``mlops score run|runs|show``: batch scoring runs from the command line."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from mlops_onprem.cli.output import (
    JSON_HELP,
    print_fields,
    print_json,
    print_table,
    progress,
    progress_style,
    step_progress,
)
from mlops_onprem.manifest import dumps, list_manifest_keys, read_manifest
from mlops_onprem.scoring import DEFAULT_BATCH_ROWS
from mlops_onprem.store import open_store


def register(app: typer.Typer) -> None:
    from mlops_onprem.cli import add_command, new_app

    group = new_app("Run batch scoring and inspect its manifests.")
    add_command(group, "run", run_score)
    add_command(group, "runs", run_list)
    add_command(group, "show", run_show)
    app.add_typer(group, name="score")


def run_score(
    dataset: Annotated[str, typer.Option(help="dataset name (contract: data_contracts/NAME.yaml)")]
    = "demo",
    input_prefix: Annotated[str | None, typer.Option(
        help="limit to landed keys under this prefix (default all of inbox/<dataset>/)")] = None,
    model: Annotated[str, typer.Option(help="model name in the registry")] = "demo",
    ref: Annotated[str, typer.Option(help="alias or version number")] = "champion",
    mode: Annotated[Literal["new", "backfill", "rescore"], typer.Option(
        help="new: batches the model never scored; backfill: every batch in the range, idempotent; "
             "rescore: again, under a new run id")] = "new",
    start: Annotated[str | None, typer.Option(help="first data date (YYYY-MM-DD)")] = None,
    end: Annotated[str | None, typer.Option(help="last data date (YYYY-MM-DD)")] = None,
    run_id: Annotated[str | None, typer.Option(help="pin the run id (default: derived)")] = None,
    batch_rows: Annotated[int, typer.Option(help="rows per scored batch within a partition")]
    = DEFAULT_BATCH_ROWS,
    ort_threads: Annotated[int, typer.Option(help="onnxruntime intra-op threads per partition")] = 1,
    contract_path: Annotated[str | None, typer.Option(
        help="contract file (default: data_contracts/DATASET.yaml)")] = None,
    json_output: Annotated[bool, typer.Option(
        "--json", help=JSON_HELP.format("the flow's whole run summary"))] = False,
) -> int:
    """Run the score-batch flow (champion by default): a progress bar per partition on stderr
    (plain lines when stderr is not a terminal; MLOPS_PROGRESS=bar|lines|off forces one), then
    the batches scored and a summary table; exit 1 when an inbox batch was rejected."""
    from flows.score import score_batch  # Prefect loads only for this command

    label = f"score-batch {model}@{ref} on {dataset} ({mode})"
    with progress(label), step_progress(progress_style(json_output), "score-batch"):
        summary = score_batch(
            dataset=dataset, input_prefix=input_prefix, model_name=model,
            model_ref=ref, mode=mode, start=start, end=end,
            run_id=run_id, batch_rows=batch_rows, ort_threads=ort_threads,
            contract_path=contract_path, fail_on_rejected=False,
        )
    if json_output:
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


def run_list(
    model: Annotated[str, typer.Argument(help="model name")],
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP.format("every manifest"))] = False,
) -> int:
    """Scoring runs of a model, one line per manifest (exit 1 when it has none)."""
    store = open_store()
    manifests = [read_manifest(store, key) for key in list_manifest_keys(store, model)]
    if json_output:
        print_json([{**m.to_json(), "manifest_key": m.key} for m in manifests])
        return 0 if manifests else 1
    if not manifests:
        print(f"model {model!r} has no completed scoring run in {store.location}")
        return 1
    print_table(["version", "run id", "created", "status", "rows", "manifest"],
                [[m.model_version, m.run_id, m.created_at, m.status, m.rows, m.key]
                 for m in manifests])
    return 0


def run_show(
    manifest_key: Annotated[str, typer.Argument(help="the run's manifest key (see: mlops score runs)")],
    json_output: Annotated[bool, typer.Option(
        "--json", help="accepted for symmetry: the manifest is always printed as JSON")] = False,
) -> int:
    """Print one run's manifest (JSON)."""
    print(dumps(read_manifest(open_store(), manifest_key)))
    return 0
