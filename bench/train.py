"""Benchmark: training vs ONNX export and parity check, on the same data in the same run.

200k rows x 30 features (28 numeric, 2 categorical), binary label, the ``xgboost`` spec
(200 trees, depth 6). Measures the fit, the ONNX export (skl2onnx + onnxmltools) and the
parity check (holdout scored through onnx_io vs native predictions). The baseline is the
training time itself: export plus parity should cost a small fraction of it.

    .venv/bin/python bench/train.py                 # full size
    .venv/bin/python bench/train.py --rows 20000    # quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import mlops_onprem  # noqa: F401  (telemetry off)
from mlops_onprem.contracts import Task
from mlops_onprem.model_spec import load_model_spec
from mlops_onprem.onnx_export import check_parity, export_onnx
from mlops_onprem.onnx_io import build_feeds, create_session, metadata_for, run_scores
from mlops_onprem.synthetic import SyntheticSpec, generate_batch, make_contract
from mlops_onprem.training import train_model

RESULTS = Path(__file__).resolve().parent / "results" / "train.json"
TARGET_EXPORT_PLUS_PARITY_OVER_TRAIN = 0.25


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--spec", default="xgboost")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="override the spec's n_jobs (OpenMP threads spin badly on a busy host)")
    args = parser.parse_args(argv)

    spec = SyntheticSpec(task=Task.BINARY, n_numeric=28, n_categorical=2)
    contract = make_contract(spec)
    frame = generate_batch(spec, args.rows, seed=args.seed)
    model_spec = load_model_spec(args.spec, seed=args.seed)
    if args.n_jobs is not None:
        model_spec = model_spec.model_copy(
            update={"params": {**model_spec.params, "n_jobs": args.n_jobs}})

    started = time.perf_counter()
    trained = train_model(frame, contract, model_spec)
    train_total = time.perf_counter() - started  # split + float32 feeds + fit + holdout predict

    started = time.perf_counter()
    onnx_bytes = export_onnx(
        trained.pipeline, contract,
        metadata_for(contract, model_name="bench", model_version=0, training_data_sha256="0" * 64),
    )
    export_seconds = time.perf_counter() - started

    started = time.perf_counter()
    feeds = build_feeds(trained.holdout, contract)
    parity = check_parity(onnx_bytes, feeds, trained.native_holdout, contract,
                          tolerance=model_spec.parity_tolerance, raise_on_failure=False)
    parity_seconds = time.perf_counter() - started

    session = create_session(onnx_bytes, intra_op_threads=os.cpu_count() or 1)
    started = time.perf_counter()
    run_scores(session, feeds, Task.BINARY)
    onnx_score_seconds = time.perf_counter() - started

    holdout_rows = len(trained.holdout)
    result = {
        "rows": args.rows,
        "features": len(contract.feature_names),
        "spec": model_spec.name,
        "params": trained.params,
        "cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "train_seconds": round(trained.fit_seconds, 3),
        "train_total_seconds": round(train_total, 3),
        "export_seconds": round(export_seconds, 3),
        "parity_seconds": round(parity_seconds, 3),
        "parity_max_abs_diff": parity.max_abs_diff,
        "parity_passed": parity.passed,
        "holdout_rows": holdout_rows,
        "onnx_rows_per_second": round(holdout_rows / onnx_score_seconds),
        "onnx_model_bytes": len(onnx_bytes),
        "export_over_train": round(export_seconds / trained.fit_seconds, 4),
        "export_plus_parity_over_train": round(
            (export_seconds + parity_seconds) / trained.fit_seconds, 4),
        "metrics": trained.metrics,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")

    print(f"{'step':<24}{'seconds':>10}")
    print(f"{'fit (' + model_spec.name + ')':<24}{trained.fit_seconds:>10.2f}")
    print(f"{'train total':<24}{train_total:>10.2f}")
    print(f"{'onnx export':<24}{export_seconds:>10.2f}")
    print(f"{'parity check':<24}{parity_seconds:>10.2f}")
    print(f"\nrows {args.rows}, holdout {holdout_rows}, cores {os.cpu_count()}, "
          f"parity max abs diff {parity.max_abs_diff:.2e} ({'pass' if parity.passed else 'FAIL'}), "
          f"onnx {result['onnx_rows_per_second']:,} rows/s, roc_auc {trained.metrics['roc_auc']:.4f}")
    print(f"(export + parity) / fit = {result['export_plus_parity_over_train']:.3f} "
          f"(target <= {TARGET_EXPORT_PLUS_PARITY_OVER_TRAIN}); export / fit = "
          f"{result['export_over_train']:.3f}")
    return 0 if parity.passed else 1


if __name__ == "__main__":
    sys.exit(main())
