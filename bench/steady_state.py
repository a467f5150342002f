"""Benchmark: does a day cost the same on day 60 as on day 1? (the steady-state ledger)

Sixty simulated days with small batches against the embedded local store, run with the
deployments' own parameters from ``prefect.yaml`` (ingest, score, monitor; training embedded
once, before day 1, on ten days of history). Every day lands one labelled training batch, one
scoring batch and the labels of the scoring batch of two days before, so every day does the
same work: the baseline of day 60 is day 1 of the same run.

Measured per day: wall time of ingest + score + monitor (the three flows, Prefect API warm, one
process, onnxruntime 1 thread), and the store calls of one monitoring pass (ledger index,
window, labels: objects read and keys listed), counted on a wrapped store instance. The same
work on both ends: the early figures come from the first day whose monitoring window holds as
many batches and label objects as the last day's (before that the window is still filling);
day times are medians of five days (a shared 2-core host is noisy).

Keys in ``bench/results/steady_state.json``: ``day60_over_day1`` (floor <= 1.3, goal <= 1.1),
``monitor_reads_day60_over_day1`` (goal 1.0), plus the raw series.

    .venv/bin/python bench/steady_state.py            # 60 days
    .venv/bin/python bench/steady_state.py --days 12  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "steady_state.json"
START = date(2026, 1, 1)
TARGETS = {"day60_over_day1": ("<=", 1.3), "monitor_reads_day60_over_day1": ("<=", 1.0)}


class CountingStore:
    """Counts the store calls made through one store instance (reads and listed keys)."""

    def __init__(self, store: Any) -> None:
        self.reads = 0
        self.listed = 0
        for name in ("get_bytes", "read_pointer", "stat", "get_file"):
            original = getattr(store, name)

            def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self.reads += 1
                return _original(*args, **kwargs)

            setattr(store, name, counted)
        original_list = store.list

        def listing(*args: Any, **kwargs: Any) -> Any:
            for info in original_list(*args, **kwargs):
                self.listed += 1
                yield info

        store.list = listing
        self.store = store


def deployment_parameters() -> dict[str, dict[str, Any]]:
    import yaml

    document = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    return {d["entrypoint"].rsplit(":", 1)[1]: dict(d.get("parameters") or {})
            for d in document["deployments"]}


def land_day(store: Any, n: int, rows: int, waiting: dict[int, Any]) -> None:
    import pandas as pd

    from mlops_onprem import keys
    from mlops_onprem.store.parquet import put_dataframe
    from mlops_onprem.synthetic import SyntheticSpec, generate_batch

    spec = SyntheticSpec(dataset="demo")
    day = (START + timedelta(days=n)).isoformat()
    stamp = pd.Timestamp(day)
    train = generate_batch(spec, rows, seed=10_000 + n, start_row=10_000_000 + n * 10_000,
                           start_time=stamp)
    put_dataframe(store, f"incoming/demo/dt={day}/batch.parquet", train)
    if n >= 1:
        scoring = generate_batch(spec, rows, seed=20_000 + n, start_row=20_000_000 + n * 10_000,
                                 start_time=stamp)
        put_dataframe(store, f"inbox/demo/dt={day}/batch.parquet", scoring.drop(columns=["label"]))
        waiting[n] = scoring[["row_id", "label"]]
    if n - 2 in waiting:
        put_dataframe(store, keys.labels_key("demo", f"dt-{(START + timedelta(days=n - 2)).isoformat()}"),
                      waiting.pop(n - 2))


def monitor_io(params: dict[str, Any]) -> dict[str, int]:
    """Store calls of one monitoring pass, on a fresh counted store instance."""
    from mlops_onprem.monitoring import monitor
    from mlops_onprem.store import open_store

    counted = CountingStore(open_store())
    report = monitor(counted.store, params["model_name"], params["dataset"],
                     window_days=params.get("window_days"),
                     window_batches=params.get("window_batches"))
    return {"reads": counted.reads, "listed": counted.listed,
            "window_batches": len(report.window["versions"]),
            "label_objects": len(report.window["label_keys"])}


def run(days: int, rows: int) -> dict[str, Any]:
    from flows.ingest import ingest_batch
    from flows.monitor import monitor_model
    from flows.score import score_batch
    from flows.train import train_model
    from mlops_onprem import keys
    from mlops_onprem.store import open_store

    params = deployment_parameters()
    ingest, score = params["ingest_batch"], params["score_batch"]
    monitor = {**params["monitor_model"], "training_deployment": None, "retrain": False}
    store = open_store()
    waiting: dict[int, Any] = {}
    for n in range(-9, 1):
        land_day(store, n, rows * 2, waiting)
    ingest_batch(**ingest)
    train_model(**params["train_model"])
    series = []
    for n in range(1, days + 1):
        land_day(store, n, rows, waiting)
        started = time.perf_counter()
        ingest_batch(**ingest)
        scored = score_batch(**score)
        monitored = monitor_model(**monitor)
        seconds = time.perf_counter() - started
        io = monitor_io(params["monitor_model"])
        index_bytes = store.stat(keys.ledger_index_key("demo")).size
        series.append({"day": n, "seconds": seconds, "scored_rows": scored["rows"],
                       "window_rows": monitored["rows"], "monitor_reads": io["reads"],
                       "monitor_listed": io["listed"], "window_batches": io["window_batches"],
                       "label_objects": io["label_objects"], "ledger_index_bytes": index_bytes})
        print(f"day {n:>3}: {seconds:6.2f} s  scored {scored['rows']:>5} rows  window "
              f"{monitored['rows']:>5} rows  monitor reads {io['reads']:>3} listed "
              f"{io['listed']:>3}  index {index_bytes:>8,} B", flush=True)
    return {"series": series, "params": params}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--rows", type=int, default=300, help="rows per daily batch")
    args = parser.parse_args()
    if args.days < 12:
        parser.error("--days must be at least 12 (two 5-day medians)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-steady-"))
    os.environ["MLOPS_DATA_DIR"] = str(workdir / "data")
    os.environ.setdefault("PREFECT_HOME", str(workdir / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

    import mlops_onprem  # noqa: F401  (telemetry off first)

    outcome = run(args.days, args.rows)
    series = outcome["series"]
    # the same work: the first day whose window holds as many batches and label objects as the
    # last day's (before that the window is still filling up)
    last = series[-1]
    full = next(i for i, d in enumerate(series) if (d["window_batches"], d["label_objects"])
                == (last["window_batches"], last["label_objects"]))
    early = statistics.median(d["seconds"] for d in series[full:full + 5])
    late = statistics.median(d["seconds"] for d in series[-5:])
    first_reads = series[full]["monitor_reads"] + series[full]["monitor_listed"]
    last_reads = last["monitor_reads"] + last["monitor_listed"]
    result = {
        "days": args.days, "rows_per_batch": args.rows, "threads": 1, "cores": os.cpu_count(),
        "day60_over_day1": late / early,
        "monitor_reads_day60_over_day1": last_reads / first_reads,
        "first_full_window_day": series[full]["day"],
        "median_day_seconds_first_5_full": early, "median_day_seconds_last_5": late,
        "monitor_reads_first_full": series[full]["monitor_reads"],
        "monitor_listed_first_full": series[full]["monitor_listed"],
        "monitor_reads_last": series[-1]["monitor_reads"],
            "monitor_listed_last": series[-1]["monitor_listed"],
        "ledger_index_bytes_last": series[-1]["ledger_index_bytes"],
        "monitor_params": outcome["params"]["monitor_model"], "series": series,
    }
    print()
    print(f"{'measure':<44} {'early':>10} {'late':>10} {'ratio':>7}  target")
    print(f"{'day time, median s (5 first full | last 5)':<44} {early:>10.2f} {late:>10.2f} "
          f"{result['day60_over_day1']:>7.2f}  <= 1.3 (goal 1.1)")
    print(f"{'monitoring store calls (reads + listed)':<44} {first_reads:>10} {last_reads:>10} "
          f"{result['monitor_reads_day60_over_day1']:>7.2f}  1.0")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print(f"wrote {RESULTS}")
    missed = [k for k, (op, bound) in TARGETS.items()
              if not (result[k] <= bound if op == "<=" else result[k] >= bound)]
    if missed:
        print(f"targets missed: {missed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
