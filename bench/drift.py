"""Benchmark: drift of a current window against a reference, ours vs Evidently 0.7.23.

Same synthetic data in the same run (reference 200k rows, current 1M rows, 30 numeric features,
the first third shifted by ``--shift`` standard deviations). Evidently's ``DataDriftPreset`` is
configured with our methods and thresholds (PSI >= 0.2; KS p-value 0.01) and run once per
method, since one preset run applies one numeric method; ours computes both in one pass from
the reference profile built at training time (profile build time is reported apart).

Agreement compares, per feature and per method, the verdict of the rule both compute
(PSI >= threshold; KS p-value below threshold). Our reported verdict also requires a minimum
KS effect size, so the fused agreement is listed separately.

    .venv/bin/python bench/drift.py                    # full size
    .venv/bin/python bench/drift.py --ref-rows 20000 --cur-rows 100000   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import mlops_onprem  # noqa: F401  (sets DO_NOT_TRACK before Evidently is imported)
from mlops_onprem.drift import DriftThresholds, compute_drift
from mlops_onprem.reference_profile import DEFAULT_SAMPLE_SIZE, build_reference_profile
from mlops_onprem.synthetic import SyntheticSpec, generate_batch, make_contract

RESULTS = Path(__file__).resolve().parent / "results" / "drift.json"
TARGET_SPEEDUP = 40.0


def _import_evidently():
    # Evidently 0.7.23 imports a helper that pandas 3 removed; it is only used by a column-type
    # test that drift never runs, so a stand-in with the old meaning is enough to import it.
    import pandas.core.dtypes.common as pandas_common

    if not hasattr(pandas_common, "infer_dtype_from_object"):
        pandas_common.infer_dtype_from_object = lambda dtype: pd.api.types.pandas_dtype(dtype).type
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    return DataDefinition, Dataset, Report, DataDriftPreset


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame, method: str, threshold: float):
    """(seconds, {column: value}) of one DataDriftPreset run with one numeric method."""
    DataDefinition, Dataset, Report, DataDriftPreset = _import_evidently()
    columns = list(reference.columns)
    definition = DataDefinition(numerical_columns=columns)
    started = time.perf_counter()
    report = Report([DataDriftPreset(num_method=method, num_threshold=threshold)])
    snapshot = report.run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    seconds = time.perf_counter() - started
    values = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            values[config["column"]] = float(metric["value"])
    missing = set(columns) - set(values)
    if missing:
        raise RuntimeError(f"Evidently returned no {method} value for {sorted(missing)}")
    return seconds, values


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref-rows", type=int, default=200_000)
    parser.add_argument("--cur-rows", "--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--shift", type=float, default=0.5, help="sd shift of the drifting third")
    parser.add_argument("--sample-size", type=int, default=DEFAULT_SAMPLE_SIZE,
                        help="reference sample kept in the profile for exact KS")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results")
    args = parser.parse_args(argv)

    spec = SyntheticSpec(n_numeric=args.features, n_categorical=0, nullable_share=0.0)
    contract = make_contract(spec)
    names = contract.feature_names
    reference = generate_batch(spec, args.ref_rows, seed=args.seed, with_label=False)[names]
    current = generate_batch(
        spec, args.cur_rows, seed=args.seed + 1, covariate_shift=args.shift, with_label=False
    )[names]
    thresholds = DriftThresholds()

    started = time.perf_counter()
    profile = build_reference_profile(
        reference, contract, np.zeros(len(reference)), sample_size=args.sample_size, seed=args.seed
    )
    profile_seconds = time.perf_counter() - started

    compute_drift(profile, current.head(1000))  # warm-up: thread pool, scipy imports
    started = time.perf_counter()
    ours = compute_drift(profile, current, thresholds=thresholds)
    ours_seconds = time.perf_counter() - started

    ev_psi_seconds, ev_psi = run_evidently(reference, current, "psi", thresholds.psi)
    ev_ks_seconds, ev_ks = run_evidently(reference, current, "ks", thresholds.ks_p_value)
    evidently_seconds = ev_psi_seconds + ev_ks_seconds

    rows = []
    same_rule = same_fused = 0
    for column in ours.features:
        psi = next(m for m in column.methods if m.method == "psi")
        ks = next(m for m in column.methods if m.method == "ks")
        ours_psi, ours_ks = psi.drifted, ks.p_value < thresholds.ks_p_value
        ev_psi_drift = ev_psi[column.column] >= thresholds.psi
        ev_ks_drift = ev_ks[column.column] <= thresholds.ks_p_value
        same_rule += (ours_psi == ev_psi_drift) + (ours_ks == ev_ks_drift)
        same_fused += column.drifted == (ev_psi_drift or ev_ks_drift)
        rows.append((column.column, psi.statistic, ev_psi[column.column], ks.p_value,
                     ev_ks[column.column], column.drifted, ev_psi_drift or ev_ks_drift))

    print(f"{'feature':<8} {'psi ours':>9} {'psi evid':>9} {'ks p ours':>10} {'ks p evid':>10}"
          f" {'ours':>6} {'evid':>6}")
    for name, p1, p2, k1, k2, d1, d2 in rows:
        print(f"{name:<8} {p1:9.4f} {p2:9.4f} {k1:10.3g} {k2:10.3g} {d1!s:>6} {d2!s:>6}")
    n = len(rows)
    result = {
        "ref_rows": args.ref_rows,
        "cur_rows": args.cur_rows,
        "features": args.features,
        "shift_sd": args.shift,
        "reference_sample_size": min(args.sample_size, args.ref_rows),
        "profile_seconds": round(profile_seconds, 3),
        "ours_seconds": round(ours_seconds, 3),
        "evidently_psi_seconds": round(ev_psi_seconds, 3),
        "evidently_ks_seconds": round(ev_ks_seconds, 3),
        "evidently_seconds": round(evidently_seconds, 3),
        "speedup_vs_evidently": round(evidently_seconds / ours_seconds, 1),
        "speedup_incl_profile": round(evidently_seconds / (ours_seconds + profile_seconds), 1),
        "verdict_agreement": same_rule / (2 * n),
        "fused_verdict_agreement": same_fused / n,
        "ours_drifted": ours.drifted_features,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    print()
    for key in ("profile_seconds", "ours_seconds", "evidently_psi_seconds", "evidently_ks_seconds",
                "speedup_incl_profile", "verdict_agreement", "fused_verdict_agreement"):
        print(f"{key:<26} {result[key]}")
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"speedup_vs_evidently {result['speedup_vs_evidently']}x (target >= {TARGET_SPEEDUP:g}x), "
        f"verdict_agreement {result['verdict_agreement']:.3f} (target 1.0)"
    )
    return result


if __name__ == "__main__":
    main()
