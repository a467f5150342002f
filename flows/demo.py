"""The main job (``make demo``): the whole closed loop on embedded defaults.

    generate data -> validate (one bad batch is quarantined) -> train -> export -> register
    -> score -> monitor (clean period: no drift, no retrain)
    -> drift arrives -> score -> monitor -> drift detected -> alert -> retrain -> promotion gate
    -> the model that is not champion becomes the shadow challenger -> a new batch is scored by
       both -> its labels arrive -> monitor judges the challenger (promoted or retired)

Runs against its own local-directory store, ``.mlops-demo/`` (never the embedded default
``.mlops-data/`` that real embedded use writes to), and Prefect's local database
(``PREFECT_HOME``); ``make ui`` shows every run afterwards. It starts from an empty store each
time, but only wipes a directory it created itself (a marker file says so): pointed at another
store (``MLOPS_DATA_DIR``) it refuses unless ``--keep`` adds to it.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Annotated, Any

import typer
from prefect import flow, get_run_logger

from flows.ingest import ingest_batch
from flows.monitor import monitor_model
from flows.pipeline import run_pipeline
from flows.score import score_batch
from mlops_onprem.settings import get_settings
from tasks.landing import land_synthetic_batch
from tasks.registry import set_shadow_challenger


@flow(name="closed-loop-demo")
def closed_loop_demo(
    dataset: str = "demo",
    model_name: str = "demo",
    rows_per_batch: int = 4000,
    covariate_shift: float = 1.0,
    concept_shift: float = 0.35,
) -> dict[str, Any]:
    """Run the closed loop on synthetic data. Returns a summary of every stage."""
    rows = rows_per_batch
    for i in range(3):
        land_synthetic_batch(dataset, f"train-{i:03d}", rows=rows, seed=100 + i, start_row=i * rows)
    land_synthetic_batch(dataset, "train-bad", rows=500, seed=199, start_row=3 * rows, corrupt=True)
    get_run_logger().info("train-bad is corrupt on purpose: expect the gate to quarantine it "
                          "(its ingest-batch run ends Failed with the reasons, the loop goes on)")
    land_synthetic_batch(dataset, "score-001", rows=rows, seed=200, start_row=10 * rows, for_scoring=True)
    first = run_pipeline(dataset=dataset, model_name=model_name, fail_on_rejected=False)
    clean = monitor_model(model_name=model_name, dataset=dataset, window_batches=1, retrain=True)

    # the world changes: inputs shift and the feature-label relationship moves
    land_synthetic_batch(
        dataset, "train-004-drifted", rows=2 * rows, seed=300, start_row=20 * rows,
        covariate_shift=covariate_shift, concept_shift=concept_shift)
    land_synthetic_batch(
        dataset, "score-002-drifted", rows=rows, seed=301, start_row=30 * rows, for_scoring=True,
        covariate_shift=covariate_shift, concept_shift=concept_shift)
    ingest_batch(dataset)  # what the 01:00 ingest deployment does: batches and labels
    drifted_scoring = score_batch(dataset=dataset, model_name=model_name)  # only the new batch
    drifted = monitor_model(model_name=model_name, dataset=dataset, window_batches=1, retrain=True)

    # a shadow challenger: the other model scores the next batch beside the champion (not
    # delivered) and is judged on that batch's labels when monitoring sees them
    set_shadow_challenger(model_name, reason="demo: the model that is not champion, in the shadow")
    land_synthetic_batch(
        dataset, "score-003-drifted", rows=rows, seed=302, start_row=40 * rows, for_scoring=True,
        covariate_shift=covariate_shift, concept_shift=concept_shift)
    shadow_scoring = score_batch(dataset=dataset, model_name=model_name)
    ingest_batch(dataset)  # registers the batch's labels (landed with it in this demo)
    shadow = monitor_model(model_name=model_name, dataset=dataset, window_batches=1, retrain=False)
    return {"pipeline": first, "clean_monitoring": clean, "drifted_scoring": drifted_scoring,
            "drifted_monitoring": drifted, "shadow_scoring": shadow_scoring,
            "shadow_monitoring": shadow}


def render_summary(result: dict[str, Any], seconds: float, location: str) -> str:
    """The human summary printed at the end of ``make demo``."""
    pipeline = result["pipeline"]
    training = pipeline["training"]
    clean, drifted = result["clean_monitoring"], result["drifted_monitoring"]
    retrain = drifted.get("retrain") or {}
    lines = [
        "", "=" * 72, f"mlops-onprem demo: closed loop finished in {seconds:.0f} s", "=" * 72,
        f"validated batches     : {len(pipeline['validated'])}",
        f"quarantined batches   : {', '.join(q['key'] for q in pipeline['quarantined']) or 'none'}"
        + (" (corrupt on purpose)" if pipeline["quarantined"] else ""),
        f"model                 : {training['model_name']} v{training['version']} "
        f"(promoted: {training['promoted']})",
        "holdout metrics       : " + ", ".join(
            f"{k}={v:.4f}" for k, v in training["metrics"].items() if isinstance(v, float)),
        f"scored rows           : {pipeline['scoring']['rows']} -> {pipeline['scoring']['manifest_key']}",
        f"clean monitoring      : drift={clean['drift']} ({clean['decision_reason']})",
        f"drifted monitoring    : drift={drifted['drift']} ({drifted['decision_reason']})",
        f"report                : {drifted.get('report_key')}",
    ]
    if retrain:
        lines.append(f"retrain               : {retrain.get('status')} -> version "
                     f"{retrain.get('version')}, promoted: {retrain.get('promoted')}")
        if retrain.get("decision"):
            lines.append(f"promotion decision    : {retrain['decision'].get('reason')}")
    shadow = (result.get("shadow_monitoring") or {}).get("challenger")
    if shadow:
        lines.append(f"shadow challenger     : v{shadow['challenger_version']} {shadow['status']} "
                     f"({shadow['reason']})")
    data_dir = get_settings().data_dir
    lines += [f"outputs               : {location}",
              f"the models            : MLOPS_DATA_DIR={data_dir} mlops models list demo; "
              f"MLOPS_DATA_DIR={data_dir} mlops models show demo "
              + (str(shadow["challenger_version"]) if shadow else "champion"),
              "inspect the runs      : make ui  (then open http://127.0.0.1:4200)", ""]
    return "\n".join(lines)


DEMO_DATA_DIR = ".mlops-demo"
DEMO_MARKER = ".created-by-mlops-demo"  # only a directory holding it is ever wiped


def prepare_demo_store(keep: bool) -> str | None:
    """Point the demo at its own store and empty it; returns an error message instead of
    touching a store the demo did not create."""
    os.environ.setdefault("MLOPS_DATA_DIR", DEMO_DATA_DIR)
    get_settings.cache_clear()
    settings = get_settings()
    if settings.uses_s3 or keep:
        return None
    marker = settings.data_dir / DEMO_MARKER
    if settings.local_store_dir.exists() and any(settings.local_store_dir.iterdir()) \
            and not marker.exists():
        return (f"{settings.local_store_dir} holds a store the demo did not create; the demo "
                "never wipes it: run with --keep to add the demo to it, or unset MLOPS_DATA_DIR "
                f"(the demo then uses {DEMO_DATA_DIR}/)")
    shutil.rmtree(settings.local_store_dir, ignore_errors=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text("created by `make demo`; the demo empties this store on every run\n")
    return None


def demo(
    keep: Annotated[bool, typer.Option(
        "--keep", help="keep the existing local store (default: start fresh)")] = False,
    rows: Annotated[int, typer.Option(help="rows per synthetic batch")] = 4000,
) -> int:
    """The whole closed loop on embedded defaults: data, validation, training, scoring, monitoring,
    drift, retrain, promotion gate and shadow challenger.

    It runs against its own local-directory store, .mlops-demo/ (never the embedded default
    .mlops-data/), emptied on every run; pointed at another store (MLOPS_DATA_DIR) it refuses
    unless --keep adds to it. make ui shows every run afterwards."""
    refused = prepare_demo_store(keep)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    settings = get_settings()
    from mlops_onprem.store import open_store

    location = open_store(settings).location
    started = time.monotonic()
    result = closed_loop_demo(rows_per_batch=rows)
    print(render_summary(result, time.monotonic() - started, location))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.demo [--keep] [--rows N]`` (``make demo``), run like ``mlops``."""
    from mlops_onprem.cli import add_command, new_app, run

    app = new_app(__doc__.split("\n\n")[0], no_args_is_help=False)
    add_command(app, "demo", demo)
    return run(app, argv, prog_name="python -m flows.demo")


if __name__ == "__main__":
    sys.exit(main())
