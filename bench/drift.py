"""Benchmark: drift of a window against a reference, ours vs Evidently 0.7.23 and plain scipy.

**Same rows on both sides.** One reference (default 200k rows) and, per scenario, one current
window (default 1M rows) of 30 numeric features (standard normal, named like the features of
``make_contract(SyntheticSpec(n_numeric=30, n_categorical=0, nullable_share=0.0))``). Three
scenarios: clean, the first third of the features shifted by 0.05 sd, and by ``--shift`` sd
(0.5). Every timed figure below is the sum over the three scenarios; each side is warmed up
once on a 1000-row slice first, and every run happens under ``threadpool_limits(1)`` (no
BLAS/OpenMP threads on any side).

- **Ours**, as the product runs it: ``build_reference_profile(reference, contract, scores)``
  once (dummy 1-D scores; its time is reported apart), then ``compute_drift(profile, current)``
  per window (count the window over the profile's bins, then KS + PSI + the correction), with
  ``max_workers=1`` and with ``max_workers=os.cpu_count()``.
- **Evidently** (single-threaded; it has no thread option): one ``Report`` of a
  ``ValueDrift(method="ks", threshold=0.01)`` and a ``ValueDrift(method="psi", threshold=0.1)``
  per column, timed from ``Dataset.from_pandas`` to the snapshot: the fastest way its API runs
  both tests (``DataDriftPreset`` applies one numeric method per run). The literal
  ``DataDriftPreset(num_method="ks")`` + ``(num_method="psi")`` pair is also timed once, on the
  0.5 sd scenario, as detail (``evidently_data_drift_preset``; same p-values and PSI).
- **scipy anchor** (single-threaded): per column ``scipy.stats.ks_2samp(reference, current)``
  over the full samples plus numpy PSI over the same coarse edges as ours
  (``profile.numeric[c].edges``, the same epsilon clipping), recounting the reference each
  time (there is no profile on that side; the edges are taken from ours for free).

``speedup_vs_evidently`` and ``speedup_vs_scipy`` are at one thread on every side; the
``*_all_cores`` ratios run ours on all cores against the same single-threaded others, and
``*_incl_profile`` charge ours one profile build per scenario (a conservative worst case: the
product builds the profile once at training time and reuses it for every window).

**What Evidently cannot match** (so its numbers are not ours):

- PSI bins: Evidently bins a numeric column (more than 20 distinct values) into equal-width
  bins by Sturges' rule over reference and current combined (~22 bins at 1.2M rows) and
  replaces empty shares by tiny values; its ``n_bins`` is not reachable from ``ValueDrift``
  (``nbinsx`` only shapes its plots). Ours: 10 reference-quantile bins, shares clipped to 1e-4.
  PSI values therefore differ and the PSI verdicts are detail, not the agreement measure.
- KS: Evidently runs the exact two-sample statistic (``ks_2samp``); ours evaluates it at the
  full reference's 1000-quantile fine grid, so it is never above the exact statistic and falls
  short by at most ``bound`` (the largest share of one fine bin; measured gap and bound are in
  the JSON). Its p-value is scipy's asymptotic formula, so it is conservative.
- Multiple testing and effect floor: Evidently's KS verdict per column is ``p <= 0.01``, no
  correction. Ours: Holm-corrected p < 0.01 across the 30 columns **and** an effect floor (KS
  D >= 0.1 or PSI >= 0.1), so a window without drift alarms on any column with chance <= 1 %.
- Evidently also computes per-column histograms and correlations for its plots; its API has no
  switch to skip them, so they are in its time (the scipy anchor is the test-only comparison).

**Agreement** of verdicts, per feature: ours (``column.drifted``) vs Evidently's KS verdict
(``p <= 0.01``). ``verdict_agreement`` pools the clean and the 0.5 sd scenarios (60 verdicts).
``verdict_agreement_small_shift`` is the 0.05 sd scenario: a 0.05 sd shift moves the KS
statistic by ~0.02, which 200k vs 1M rows make very significant, so Evidently flags the shifted
third; ours does not, by design, because the shift is below the effect floor (a 0.05 sd move is
not a drift worth an alarm). Expect ~2/3 there; that gap is the floor, not an error.

**Window of 30 batches** (``window_30x1m_seconds``): 30 batches of 1M rows, each generated
fresh (never 30M rows at once) and counted with ``count_window`` (all cores; the per-batch
counting time is reported apart, not in the figure). Three windows from the same rows: clean,
first third shifted 0.05 sd, and ``--shift`` sd (only the shifted columns are recounted). Timed
per window: ``functools.reduce(merge)`` over the 30 window profiles + ``drift_from_window``;
the key is the **slowest** of the three. The decision time depends on the data: scipy's
``kstwo.sf`` (our KS p-value, and ks_2samp's) takes ~0.1-0.25 s a call when the p-value is
small but not 0 (a mild shift), and microseconds otherwise.

**False alarms** (``false_alarm_rate_measured``): :func:`mlops_onprem.drift_simulation.simulate`
without drift at several reference/current sizes (run in parallel processes; not a timing);
the key is the pooled rate over all sizes (per-size rates and 95 % Clopper-Pearson upper bounds
in ``false_alarms``). Promised: <= 1 %. Under no drift the effect floor alone keeps nearly every
column quiet at these sizes, so the same windows are also judged with the floors set to 0
(``false_alarm_rate_no_effect_floor``): that is the rate of the p-values and Holm alone.

Keys in ``bench/results/drift.json``: ``speedup_vs_evidently`` (goal >= 100),
``speedup_vs_scipy`` (goal >= 3), ``verdict_agreement``, ``verdict_agreement_small_shift``,
``window_30x1m_seconds`` (goal <= 1 s), ``false_alarm_rate_measured`` (promise <= 0.01), plus
the detail. A missed goal is printed, not hidden.

    .venv/bin/python bench/drift.py            # 200k vs 1M rows, 30 x 1M window (~6-7 min)
    .venv/bin/python bench/drift.py --quick    # 20k vs 100k rows, 30 x 100k window
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from threadpoolctl import threadpool_limits

import mlops_onprem  # noqa: F401  (sets DO_NOT_TRACK before Evidently is imported)
from mlops_onprem.drift import DriftResult, DriftThresholds, compute_drift, drift_from_window
from mlops_onprem.drift_simulation import simulate
from mlops_onprem.reference_profile import ReferenceProfile, build_reference_profile
from mlops_onprem.synthetic import SyntheticSpec, make_contract
from mlops_onprem.window_profile import WindowProfile, count_numeric, count_window

RESULTS = Path(__file__).resolve().parent / "results" / "drift.json"
TARGETS = {"speedup_vs_evidently": (">=", 100.0), "speedup_vs_scipy": (">=", 3.0),
           "window_30x1m_seconds": ("<=", 1.0), "false_alarm_rate_measured": ("<=", 0.01)}
EVIDENTLY_KS_P = 0.01  # Evidently's KS verdict: p_value <= this (its rule is p <= threshold)
EVIDENTLY_PSI = 0.1  # Evidently's PSI verdict: PSI >= this (its default; our psi_min too)
SMALL_SHIFT = 0.05
WARMUP_ROWS = 1000


def _import_evidently():
    # Evidently 0.7.23 imports a helper that pandas 3 removed; it is only used by a column-type
    # test that drift never runs, so a stand-in with the old meaning is enough to import it.
    import pandas.core.dtypes.common as pandas_common

    if not hasattr(pandas_common, "infer_dtype_from_object"):
        pandas_common.infer_dtype_from_object = lambda dtype: pd.api.types.pandas_dtype(dtype).type
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    return DataDefinition, Dataset, Report, ValueDrift, DataDriftPreset


def normal_frame(names: list[str], n_rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Standard normal columns; the first third of ``names`` moved by ``shift`` sd."""
    z = np.random.default_rng(seed).standard_normal((len(names), n_rows))
    z[: max(1, len(names) // 3)] += shift
    return pd.DataFrame({name: z[j] for j, name in enumerate(names)})


def run_ours(profile: ReferenceProfile, current: pd.DataFrame,
             workers: int) -> tuple[float, DriftResult]:
    started = time.perf_counter()
    result = compute_drift(profile, current, max_workers=workers)
    return time.perf_counter() - started, result


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[float, dict]:
    """(seconds, {"ks": {column: p}, "psi": {column: psi}}) of one Report with both tests."""
    DataDefinition, Dataset, Report, ValueDrift, _ = _import_evidently()
    columns = list(reference.columns)
    definition = DataDefinition(numerical_columns=columns)
    started = time.perf_counter()
    metrics = [ValueDrift(column=c, method="ks", threshold=EVIDENTLY_KS_P) for c in columns]
    metrics += [ValueDrift(column=c, method="psi", threshold=EVIDENTLY_PSI) for c in columns]
    snapshot = Report(metrics).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    seconds = time.perf_counter() - started
    values: dict[str, dict[str, float]] = {"ks": {}, "psi": {}}
    _collect(snapshot, values)
    _check(values, columns)
    return seconds, values


def run_evidently_preset(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[float, dict]:
    """The same two tests as two ``DataDriftPreset(num_method=...)`` runs (one numeric method
    per preset run): (seconds of both, {"ks": ..., "psi": ...})."""
    DataDefinition, Dataset, Report, _, DataDriftPreset = _import_evidently()
    columns = list(reference.columns)
    definition = DataDefinition(numerical_columns=columns)
    values: dict[str, dict[str, float]] = {"ks": {}, "psi": {}}
    started = time.perf_counter()
    for method, threshold in (("ks", EVIDENTLY_KS_P), ("psi", EVIDENTLY_PSI)):
        preset = DataDriftPreset(num_method=method, num_threshold=threshold)
        _collect(Report([preset]).run(
            current_data=Dataset.from_pandas(current, data_definition=definition),
            reference_data=Dataset.from_pandas(reference, data_definition=definition),
        ), values)
    seconds = time.perf_counter() - started
    _check(values, columns)
    return seconds, values


def _collect(snapshot: Any, values: dict[str, dict[str, float]]) -> None:
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            values[config["method"]][config["column"]] = float(metric["value"])


def _check(values: dict[str, dict[str, float]], columns: list[str]) -> None:
    for method, found in values.items():
        if set(found) != set(columns):
            raise RuntimeError(f"Evidently returned no {method} value for "
                               f"{sorted(set(columns) - set(found))}")


def _psi(reference: np.ndarray, current: np.ndarray, edges: np.ndarray, epsilon: float) -> float:
    r = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=edges.size + 1)
    c = np.bincount(np.searchsorted(edges, current, side="left"), minlength=edges.size + 1)
    r = np.clip(r / r.sum(), epsilon, None)
    c = np.clip(c / c.sum(), epsilon, None)
    return float(np.sum((c - r) * np.log(c / r)))


def run_scipy(reference: pd.DataFrame, current: pd.DataFrame, profile: ReferenceProfile,
              epsilon: float) -> tuple[float, dict]:
    """(seconds, {column: (exact KS D, KS p, PSI)}): ks_2samp + numpy PSI per column."""
    started = time.perf_counter()
    out = {}
    for name in reference.columns:
        r, c = reference[name].to_numpy(), current[name].to_numpy()
        ks = stats.ks_2samp(r, c)
        out[name] = (float(ks.statistic), float(ks.pvalue),
                     _psi(r, c, profile.numeric[name].edges, epsilon))
    return time.perf_counter() - started, out


def window_benchmark(profile: ReferenceProfile, names: list[str], batches: int, rows: int,
                     shifts: tuple[float, ...], seed: int) -> dict[str, Any]:
    """Windows of ``batches`` fresh batches: per batch, the clean rows are counted with
    ``count_window`` (all cores; timed: the per-batch counting figure), and the same rows with
    the first third shifted by each of ``shifts`` sd are counted again for those columns only
    (``count_numeric``; the rest of a shifted batch is the clean rows). Then, per window,
    ``reduce(merge)`` + ``drift_from_window`` is timed."""
    shifted = names[: max(1, len(names) // 3)]
    parts: dict[float, list[WindowProfile]] = {0.0: [], **{s: [] for s in shifts}}
    count_seconds = []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for b in range(batches):
            z = np.random.default_rng(seed + 1000 + b).standard_normal((len(names), rows))
            frame = pd.DataFrame({name: z[j] for j, name in enumerate(names)})
            started = time.perf_counter()
            clean = count_window(profile, frame)
            count_seconds.append(time.perf_counter() - started)
            parts[0.0].append(clean)
            del frame
            for s in shifts:
                moved = list(pool.map(
                    lambda j, s=s, z=z: count_numeric(profile.numeric[names[j]], z[j] + s),
                    range(len(shifted))))
                parts[s].append(WindowProfile(
                    n_rows=clean.n_rows, numeric={**clean.numeric, **dict(zip(shifted, moved,
                                                                              strict=True))},
                    categorical={}, scores={}))
    windows = {}
    for s, window_parts in parts.items():
        started = time.perf_counter()
        merged = functools.reduce(lambda a, b: a.merge(b), window_parts)
        merged_at = time.perf_counter()
        result = drift_from_window(profile, merged)
        done = time.perf_counter()
        windows[f"{s:g}sd"] = {
            "shift_sd": s, "seconds": done - started, "merge_seconds": merged_at - started,
            "decide_seconds": done - merged_at, "window_rows": merged.n_rows,
            "drifted_features": len(result.drifted_features),
            "insufficient_data": result.insufficient_data}
    return {"batches": batches, "batch_rows": rows, "count_workers": os.cpu_count(),
            "per_batch_count_seconds_median": statistics.median(count_seconds),
            "per_batch_count_seconds_total": sum(count_seconds),
            "worst_seconds": max(w["seconds"] for w in windows.values()),
            "windows": windows}


def clopper_pearson_upper(alarms: int, n: int, level: float = 0.95) -> float:
    if n == 0:
        return float("nan")
    return 1.0 if alarms >= n else float(stats.beta.ppf(level, alarms + 1, n - alarms))


NO_FLOOR = {"psi_min": 0.0, "ks_min_statistic": 0.0, "js_min": 0.0}


def _simulate_job(job: tuple[str, int, int, int, int]) -> dict[str, Any]:
    variant, n_ref, n_cur, windows, seed = job
    t = DriftThresholds(**(NO_FLOOR if variant == "no_effect_floor" else {}))
    started = time.perf_counter()
    sim = simulate(n_ref, n_cur, windows=windows, seed=seed, thresholds=t)
    judged = sim.windows - sim.insufficient
    return {"variant": variant, "n_reference": n_ref, "n_current": n_cur,
            "windows": sim.windows, "judged": judged, "alarms": sim.alarms, "rate": sim.rate,
            "upper_95": clopper_pearson_upper(sim.alarms, judged),
            "seconds": time.perf_counter() - started}


def false_alarms(pairs: list[tuple[int, int]], windows: int, seed: int,
                 workers: int) -> dict[str, dict[str, Any]]:
    """Simulated windows without drift, per size pair, with the default thresholds and with
    the effect floors set to 0 (the p-values and the correction alone); the same windows
    (seeds) in both variants. Run in ``workers`` processes (these are not timings)."""
    jobs = [(variant, n_ref, n_cur, windows, seed + i)
            for variant in ("default", "no_effect_floor")
            for i, (n_ref, n_cur) in enumerate(pairs)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        done = []
        for d in pool.map(_simulate_job, jobs):
            done.append(d)
            print(f"  simulate {d['variant']:<15} {d['n_reference']:>7} vs {d['n_current']:>7}: "
                  f"{d['alarms']}/{d['judged']} windows alarmed ({d['seconds']:.0f} s)",
                  flush=True)
    out = {}
    for variant in ("default", "no_effect_floor"):
        detail = [d for d in done if d["variant"] == variant]
        alarms, judged = sum(d["alarms"] for d in detail), sum(d["judged"] for d in detail)
        out[variant] = {
            "pooled_rate": alarms / judged if judged else float("nan"), "alarms": alarms,
            "judged": judged, "pooled_upper_95": clopper_pearson_upper(alarms, judged),
            "promised": DriftThresholds().false_alarm_rate,
            "thresholds": "DriftThresholds()" if variant == "default"
            else f"DriftThresholds(**{NO_FLOOR})", "per_size": detail}
    return out


def _ratio(num: float, den: float) -> float:
    return round(num / den, 2) if den > 0 else float("nan")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="20k vs 100k rows, 30 x 100k window, 50 simulated windows a size")
    parser.add_argument("--ref-rows", type=int, default=None)
    parser.add_argument("--cur-rows", type=int, default=None)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--shift", type=float, default=0.5, help="sd shift of the drifting third")
    parser.add_argument("--window-batches", type=int, default=30)
    parser.add_argument("--window-batch-rows", type=int, default=None)
    parser.add_argument("--sim-windows", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results")
    args = parser.parse_args(argv)
    quick = args.quick
    ref_rows = args.ref_rows or (20_000 if quick else 200_000)
    cur_rows = args.cur_rows or (100_000 if quick else 1_000_000)
    batch_rows = args.window_batch_rows or (100_000 if quick else 1_000_000)
    sim_windows = args.sim_windows or (50 if quick else 200)
    sim_pairs = [(1_000, 5_000), (5_000, 20_000), (20_000, 100_000)]
    cores = os.cpu_count() or 1
    load_start = os.getloadavg()

    spec = SyntheticSpec(n_numeric=args.features, n_categorical=0, nullable_share=0.0)
    contract = make_contract(spec)
    names = contract.feature_names
    shifted = set(names[: max(1, len(names) // 3)])
    thresholds = DriftThresholds()
    reference = normal_frame(names, ref_rows, args.seed)
    scores = np.random.default_rng(args.seed + 7).random(ref_rows)  # dummy 1-D scores

    with threadpool_limits(limits=1):
        started = time.perf_counter()
        profile = build_reference_profile(reference, contract, scores)
        profile_seconds = time.perf_counter() - started

        warm = normal_frame(names, WARMUP_ROWS, args.seed + 99, args.shift)
        for workers in (1, cores):
            compute_drift(profile, warm, max_workers=workers)
        run_evidently(reference.head(WARMUP_ROWS), warm)
        run_evidently_preset(reference.head(WARMUP_ROWS), warm)
        run_scipy(reference.head(WARMUP_ROWS), warm, profile, thresholds.psi_epsilon)

        scenarios: dict[str, dict[str, Any]] = {}
        for label, shift, seed in (("clean", 0.0, 1), (f"{SMALL_SHIFT:g}sd", SMALL_SHIFT, 2),
                                   (f"{args.shift:g}sd", args.shift, 3)):
            current = normal_frame(names, cur_rows, args.seed + seed, shift)
            ours_1_s, ours = run_ours(profile, current, 1)
            ours_n_s, ours_n = run_ours(profile, current, cores)
            if [c.drifted for c in ours.features] != [c.drifted for c in ours_n.features]:
                raise RuntimeError("max_workers changed our verdicts")
            scipy_s, anchor = run_scipy(reference, current, profile, thresholds.psi_epsilon)
            ev_s, ev = run_evidently(reference, current)
            scenarios[label] = {"shift_sd": shift, "ours_1_thread_seconds": ours_1_s,
                                "ours_all_cores_seconds": ours_n_s, "scipy_seconds": scipy_s,
                                "evidently_seconds": ev_s, "ours": ours, "anchor": anchor,
                                "evidently": ev}
            print(f"  {label:<7} ours {ours_1_s:6.2f} s (1 thread) {ours_n_s:6.2f} s ({cores}) "
                  f"scipy {scipy_s:6.2f} s  evidently {ev_s:6.2f} s", flush=True)
            if shift == args.shift:  # the literal DataDriftPreset(num_method=...) config too
                preset_s, preset = run_evidently_preset(reference, current)
                print(f"  {label:<7} evidently DataDriftPreset ks + psi (2 runs) {preset_s:6.2f} s",
                      flush=True)
            del current

    # --- verdicts, per feature ----------------------------------------------------------
    per_scenario = {}
    for label, s in scenarios.items():
        ours, ev = s["ours"], s["evidently"]
        agree_ks = agree_psi = 0
        disagree = []
        ks_gap = ks_bound = psi_diff = ev_scipy_p = 0.0
        for col in ours.features:
            name = col.column
            ev_ks = ev["ks"][name] <= EVIDENTLY_KS_P
            ev_psi = ev["psi"][name] >= EVIDENTLY_PSI
            agree_ks += col.drifted == ev_ks
            agree_psi += col.drifted == ev_psi
            if col.drifted != ev_ks:
                disagree.append(name)
            ks = col.method("ks")
            exact_d, scipy_p, anchor_psi = s["anchor"][name]
            ks_gap = max(ks_gap, exact_d - ks.statistic)
            ks_bound = max(ks_bound, ks.bound or 0.0)
            psi_diff = max(psi_diff, abs(col.method("psi").statistic - anchor_psi))
            ev_scipy_p = max(ev_scipy_p, abs(ev["ks"][name] - scipy_p))
        n = len(ours.features)
        per_scenario[label] = {
            "shift_sd": s["shift_sd"], "features": n,
            "ours_drifted": len(ours.drifted_features),
            "evidently_ks_drifted": sum(p <= EVIDENTLY_KS_P for p in ev["ks"].values()),
            "evidently_psi_drifted": sum(v >= EVIDENTLY_PSI for v in ev["psi"].values()),
            "agreement_ks": agree_ks / n, "agreement_psi": agree_psi / n,
            "disagreeing_features_ks": disagree,
            "ks_statistic_max_gap_vs_exact": ks_gap, "ks_bound_max": ks_bound,
            "ks_gap_within_bound": ks_gap <= ks_bound + 1e-12,
            "psi_max_abs_diff_vs_numpy": psi_diff,
            "evidently_vs_scipy_ks_p_max_abs_diff": ev_scipy_p,
            **{k: round(s[k], 4) for k in ("ours_1_thread_seconds", "ours_all_cores_seconds",
                                           "scipy_seconds", "evidently_seconds")},
        }

    labels = list(scenarios)
    big = labels[2]
    totals = {k: sum(s[k] for s in scenarios.values())
              for k in ("ours_1_thread_seconds", "ours_all_cores_seconds", "scipy_seconds",
                        "evidently_seconds")}
    ours_1, ours_n = totals["ours_1_thread_seconds"], totals["ours_all_cores_seconds"]
    ev_total, scipy_total = totals["evidently_seconds"], totals["scipy_seconds"]
    profile_charge = profile_seconds * len(scenarios)
    pooled = [per_scenario[labels[0]], per_scenario[big]]

    print(f"\nper feature ({ref_rows:,} reference vs {cur_rows:,} current rows; "
          f"D = KS statistic at {args.shift:g} sd)")
    print(f"{'feature':<8} {'shifted':>7} | {'ours / Evidently KS verdict':^33} | "
          f"{'D ours':>7} {'D exact':>7} {'PSI ours':>8} {'PSI evid':>8}")
    print(f"{'':<8} {'':>7} | {labels[0]:>9} {labels[1]:>11} {labels[2]:>11} |")
    for j, name in enumerate(names):
        marks = []
        for label in labels:
            col = scenarios[label]["ours"].features[j]
            ev_ks = scenarios[label]["evidently"]["ks"][name] <= EVIDENTLY_KS_P
            marks.append(f"{'D' if col.drifted else '.'}/{'D' if ev_ks else '.'}")
        col = scenarios[big]["ours"].features[j]
        print(f"{name:<8} {'yes' if name in shifted else '':>7} | {marks[0]:>9} {marks[1]:>11} "
              f"{marks[2]:>11} | {col.method('ks').statistic:7.4f} "
              f"{scenarios[big]['anchor'][name][0]:7.4f} {col.method('psi').statistic:8.4f} "
              f"{scenarios[big]['evidently']['psi'][name]:8.4f}")

    print("\nwindow verdicts: ours holm p < 0.01 and D >= 0.1 or PSI >= 0.1 | Evidently KS p <= "
          f"{EVIDENTLY_KS_P:g}, no correction | Evidently PSI >= {EVIDENTLY_PSI:g}")
    print(f"{'scenario':<8} {'ours':>5} {'ev KS':>6} {'ev PSI':>7} {'agree KS':>9} "
          f"{'agree PSI':>10} {'KS gap/bound':>16} {'ours 1t':>8} {'ours ' + str(cores) + 't':>8}"
          f" {'scipy':>7} {'evid':>7}")
    for label, p in per_scenario.items():
        print(f"{label:<8} {p['ours_drifted']:>5} {p['evidently_ks_drifted']:>6} "
              f"{p['evidently_psi_drifted']:>7} {p['agreement_ks']:>9.3f} {p['agreement_psi']:>10.3f}"
              f" {p['ks_statistic_max_gap_vs_exact']:>7.4f}/{p['ks_bound_max']:<8.4f}"
              f" {p['ours_1_thread_seconds']:>8.2f} {p['ours_all_cores_seconds']:>8.2f}"
              f" {p['scipy_seconds']:>7.2f} {p['evidently_seconds']:>7.2f}")

    print(f"\nwindow: {args.window_batches} batches x {batch_rows:,} rows", flush=True)
    with threadpool_limits(limits=1):
        window = window_benchmark(profile, names, args.window_batches, batch_rows,
                                  (SMALL_SHIFT, args.shift), args.seed)
    print(f"false alarms without drift (drift_simulation.simulate, {cores} processes):",
          flush=True)
    sims = false_alarms(sim_pairs, sim_windows, args.seed, cores)
    alarms, no_floor = sims["default"], sims["no_effect_floor"]
    big_ours_1 = scenarios[big]["ours_1_thread_seconds"]
    preset_detail = {
        "scenario": big, "seconds": round(preset_s, 4),
        "speedup_vs_ours_1_thread": _ratio(preset_s, big_ours_1),
        "speedup_vs_ours_all_cores": _ratio(preset_s, scenarios[big]["ours_all_cores_seconds"]),
        "ks_p_max_abs_diff_vs_valuedrift": max(
            abs(preset["ks"][c] - scenarios[big]["evidently"]["ks"][c]) for c in names),
        "psi_max_abs_diff_vs_valuedrift": max(
            abs(preset["psi"][c] - scenarios[big]["evidently"]["psi"][c]) for c in names),
    }

    result: dict[str, Any] = {
        "speedup_vs_evidently": _ratio(ev_total, ours_1),
        "speedup_vs_scipy": _ratio(scipy_total, ours_1),
        "verdict_agreement": sum(p["agreement_ks"] * p["features"] for p in pooled)
        / sum(p["features"] for p in pooled),
        "verdict_agreement_small_shift": per_scenario[labels[1]]["agreement_ks"],
        "window_30x1m_seconds": round(window["worst_seconds"], 4),
        "false_alarm_rate_measured": alarms["pooled_rate"],
        "false_alarm_rate_no_effect_floor": no_floor["pooled_rate"],
        "speedup_vs_evidently_all_cores": _ratio(ev_total, ours_n),
        "speedup_vs_scipy_all_cores": _ratio(scipy_total, ours_n),
        "speedup_vs_evidently_incl_profile": _ratio(ev_total, ours_1 + profile_charge),
        "speedup_vs_evidently_all_cores_incl_profile": _ratio(ev_total, ours_n + profile_charge),
        "speedup_vs_scipy_incl_profile": _ratio(scipy_total, ours_1 + profile_charge),
        "mode": "quick" if quick else "full",
        "ref_rows": ref_rows, "cur_rows": cur_rows, "features": len(names),
        "shifted_features": len(shifted), "scenarios": labels,
        "threads": {"ours": [1, cores], "evidently": 1, "scipy": 1, "profile_build": 1,
                    "blas": "threadpool_limits(1) on every side"},
        "profile_seconds": round(profile_seconds, 4),
        "profile_charged_per_scenario_in_incl_profile": True,
        "seconds_total_over_scenarios": {k: round(v, 4) for k, v in totals.items()},
        "verdict_agreement_rule": (
            "per feature: ours column.drifted vs Evidently KS p <= 0.01; verdict_agreement "
            f"pools {labels[0]} and {big} ({sum(p['features'] for p in pooled)} verdicts), "
            f"verdict_agreement_small_shift is {labels[1]}"),
        "per_scenario": per_scenario,
        "window": window,
        "false_alarms": alarms,
        "false_alarms_no_effect_floor": no_floor,
        "evidently_data_drift_preset": preset_detail,
        "evidently_config": ("one Report: ValueDrift(method='ks', threshold=0.01) and "
                             "ValueDrift(method='psi', threshold=0.1) per column"),
        "cannot_match": [
            "PSI bins: Evidently uses equal-width Sturges bins over reference+current combined "
            "(its n_bins is not reachable from ValueDrift); ours 10 reference-quantile bins",
            "KS: ours at the full reference's 1000-quantile grid, below the exact statistic by "
            "at most ks_bound_max (measured gap in per_scenario); Evidently exact ks_2samp",
            "multiple testing: ours Holm across the columns plus an effect floor (D >= 0.1 or "
            "PSI >= 0.1); Evidently per column p <= 0.01, no correction, no floor",
            "Evidently's time includes per-column plot histograms and correlations it cannot "
            "skip; the scipy anchor is the test-only comparison",
        ],
        "cores": cores,
        "loadavg_1_5_15_start": [round(x, 2) for x in load_start],
        "loadavg_1_5_15_end": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
    }

    print(f"\n{'measure':<44} {'value':>10}  goal")
    for key, goal in (("speedup_vs_evidently", ">= 100 (1 thread vs 1)"),
                      ("speedup_vs_evidently_all_cores", f"ours {cores} threads"),
                      ("speedup_vs_evidently_incl_profile", "profile charged per window"),
                      ("speedup_vs_scipy", ">= 3 (1 thread vs 1)"),
                      ("speedup_vs_scipy_all_cores", f"ours {cores} threads"),
                      ("speedup_vs_scipy_incl_profile", "profile charged per window"),
                      ("verdict_agreement", f"{labels[0]} + {big}"),
                      ("verdict_agreement_small_shift", "~0.667 expected (effect floor)"),
                      ("window_30x1m_seconds", "<= 1 s (merge + decide, worst window)"),
                      ("false_alarm_rate_measured", "<= 0.01 promised"),
                      ("false_alarm_rate_no_effect_floor", "floors 0: p-values + Holm alone")):
        print(f"{key:<44} {result[key]:>10.4g}  {goal}")
    print(f"{'profile build seconds (once)':<44} {profile_seconds:>10.3f}")
    print(f"{'seconds over 3 scenarios: ours 1t | ' + str(cores) + 't':<44} "
          f"{ours_1:>10.2f} | {ours_n:.2f}")
    print(f"{'seconds over 3 scenarios: scipy | evidently':<44} {scipy_total:>10.2f} | "
          f"{ev_total:.2f}")
    print(f"{'window: per-batch count (median, not in figure)':<44} "
          f"{window['per_batch_count_seconds_median']:>10.3f} s ({cores} threads)")
    for label, w in window["windows"].items():
        print(f"{'window ' + label + ': merge | decide | drifted':<44} {w['merge_seconds']:>10.4f}"
              f" | {w['decide_seconds']:.4f} | {w['drifted_features']}")
    print(f"{'Evidently DataDriftPreset x2 at ' + big + ' | vs ours 1t':<44} "
          f"{preset_s:>10.2f} | {preset_detail['speedup_vs_ours_1_thread']}x")
    for name, fa in (("default", alarms), ("no effect floor", no_floor)):
        print(f"{'false alarms pooled, ' + name + ' (95 % upper)':<44} "
              f"{fa['alarms']:>5}/{fa['judged']:<4} ({fa['pooled_upper_95']:.4f})")
        for d in fa["per_size"]:
            print(f"  {d['n_reference']:>7} vs {d['n_current']:>7}: {d['alarms']}/{d['judged']} "
                  f"rate {d['rate']:.4f} (95 % upper {d['upper_95']:.4f})")

    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {RESULTS}")
    missed = [k for k, (op, bound) in TARGETS.items()
              if not (result[k] >= bound if op == ">=" else result[k] <= bound)]
    if missed:
        print(f"goals missed: {missed}")
    return result


if __name__ == "__main__":
    main()
