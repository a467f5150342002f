"""Benchmark: the GX contract gate vs a hand-written numpy check of the same rules.

Data: ``SyntheticSpec(n_numeric=30, n_categorical=2)`` -> row key, timestamp, 30 float features
(one nullable), 2 categorical string features, binary label; ``--rows`` rows (default 1M).
Both paths judge every rule of the contract (training stage) on a clean and on a corrupted
batch; ``same_verdicts`` is true when they agree on every rule for both batches.

    .venv/bin/python bench/validation.py [--rows 1000000] [--repeat 3] [--no-naive]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlops_onprem.contracts import Contract  # noqa: E402
from mlops_onprem.synthetic import UNSEEN_CATEGORY, SyntheticSpec, generate_batch, make_contract  # noqa: E402
from mlops_onprem.validation import (  # noqa: E402
    _dtype_ok,
    _pandas_kind,
    build_expectation_suite,
    contract_rules,
    validate_dataframe,
)

TARGET = 30.0
SPEC = SyntheticSpec(dataset="bench", n_numeric=30, n_categorical=2)


def corrupt(df: pd.DataFrame) -> pd.DataFrame:
    """A few bad rows of each kind: inf, out of range, NaN in a non-null column, unseen
    category, duplicated key, label outside its classes."""
    bad = df.copy()
    bad.loc[10, "num_02"] = np.inf
    bad.loc[11, "num_03"] = 1e9
    bad.loc[12, "num_04"] = np.nan
    bad.loc[13, "cat_01"] = UNSEEN_CATEGORY
    bad.loc[14, "row_id"] = bad.loc[15, "row_id"]
    bad.loc[16, "label"] = 7
    return bad


def numpy_verdicts(df: pd.DataFrame, contract: Contract, stage: str) -> dict[str, bool]:
    """Hand-written check of the contract's rules: rule id -> failed."""
    failed: dict[str, bool] = {}
    columns = list(df.columns)
    for rule in contract_rules(contract, stage):
        col = rule.column
        if rule.kind == "unique_columns":
            failed[rule.rule_id] = len(set(columns)) != len(columns)
        elif rule.kind == "row_count":
            failed[rule.rule_id] = not (max(1, contract.rows.min) <= len(df) <= (contract.rows.max or np.inf))
        elif rule.kind == "exists":
            failed[rule.rule_id] = col not in df.columns
        elif rule.kind == "dtype":
            failed[rule.rule_id] = not _dtype_ok(contract, col, _pandas_kind(df[col].dtype))[0]
        elif rule.kind == "extra_columns":
            failed[rule.rule_id] = bool(set(columns) - set(contract.input_columns(with_label=True)))
        elif rule.kind == "not_null":
            failed[rule.rule_id] = bool(df[col].isna().to_numpy().any())
        elif rule.kind == "range":
            values = df[col].to_numpy(dtype=np.float64)
            spec = rule.detail.kwargs
            with np.errstate(invalid="ignore"):
                outside = (values < spec["min_value"]) | (values > spec["max_value"])
            failed[rule.rule_id] = bool(outside.any())
        elif rule.kind in ("categories", "label_classes"):
            values = df[col].dropna()
            failed[rule.rule_id] = not bool(values.isin(rule.detail.kwargs["value_set"]).all())
        elif rule.kind == "unique":
            failed[rule.rule_id] = bool(df[col].dropna().duplicated().any())
        else:
            raise NotImplementedError(rule.kind)
    return failed


def gx_verdicts(df: pd.DataFrame, contract: Contract, stage: str) -> dict[str, bool]:
    return {r.rule_id: r.failed for r in validate_dataframe(df, contract, stage=stage).rules}


def timed(fn, repeat: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-naive", action="store_true", help="skip the row-wise GX baseline")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "validation.json"))
    args = parser.parse_args()

    contract = make_contract(SPEC)
    stage = "training"
    clean = generate_batch(SPEC, args.rows, seed=1)
    bad = corrupt(clean)
    n_rules = len(contract_rules(contract, stage))

    start = time.perf_counter()
    validate_dataframe(clean.head(100), contract, stage=stage)  # GX import + context, once
    first_call = time.perf_counter() - start

    gx_s, gx_clean = timed(lambda: gx_verdicts(clean, contract, stage), args.repeat)
    gx_bad_s, gx_bad = timed(lambda: gx_verdicts(bad, contract, stage), args.repeat)
    np_s, np_clean = timed(lambda: numpy_verdicts(clean, contract, stage), args.repeat)
    np_bad_s, np_bad = timed(lambda: numpy_verdicts(bad, contract, stage), args.repeat)
    same = gx_clean == np_clean and gx_bad == np_bad
    if not same:
        diff = {k for k in gx_bad if gx_bad[k] != np_bad.get(k)} | {
            k for k in gx_clean if gx_clean[k] != np_clean.get(k)}
        print(f"verdicts differ on: {sorted(diff)}")
    expected_bad = {"range:num_02", "range:num_03", "not_null:num_04", "categories:cat_01",
                    "unique:row_id", "categories:label"}
    found_bad = {k for k, v in gx_bad.items() if v}

    naive_s = None
    if not args.no_naive:
        # the naive translation: every range/category/unique rule as a row-wise expectation
        import great_expectations as gx

        suite = build_expectation_suite(contract, stage, detail=True)
        not_null = build_expectation_suite(contract, stage, rule_ids=[
            r.rule_id for r in contract_rules(contract, stage) if r.kind == "not_null"])
        for expectation in not_null.expectations:
            suite.add_expectation(expectation)
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = context.data_sources.add_pandas("naive").add_dataframe_asset("b")
        definition = asset.add_batch_definition_whole_dataframe("w")
        start = time.perf_counter()
        definition.get_batch(batch_parameters={"dataframe": clean}).validate(suite)
        naive_s = time.perf_counter() - start

    ratio = gx_s / np_s
    rows = [
        ("rows x columns", f"{args.rows} x {clean.shape[1]} ({SPEC.n_numeric} float, "
                           f"{SPEC.n_categorical} categorical, key, timestamp, label)"),
        ("contract rules", str(n_rules)),
        ("GX first call (import + context)", f"{first_call:.2f} s"),
        ("GX gate, clean batch (median)", f"{gx_s:.3f} s"),
        ("GX gate, corrupted batch (median)", f"{gx_bad_s:.3f} s"),
        ("numpy, clean batch (median)", f"{np_s:.3f} s"),
        ("numpy, corrupted batch (median)", f"{np_bad_s:.3f} s"),
        ("GX naive row-wise suite, clean", "skipped" if naive_s is None else f"{naive_s:.2f} s"),
        ("same verdicts (clean + corrupted)", str(same)),
        ("corrupted rules found", f"{sorted(found_bad)} (expected {len(expected_bad)})"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")

    result = {
        "gx_seconds": round(gx_s, 4), "numpy_seconds": round(np_s, 4),
        "gx_over_numpy": round(ratio, 2), "same_verdicts": same, "cores": os.cpu_count(),
        "rows": args.rows, "columns": int(clean.shape[1]), "rules": n_rules,
        "gx_corrupted_seconds": round(gx_bad_s, 4), "numpy_corrupted_seconds": round(np_bad_s, 4),
        "gx_first_call_seconds": round(first_call, 2),
        "gx_naive_rowwise_seconds": None if naive_s is None else round(naive_s, 3),
        "corrupted_rules_found": sorted(found_bad), "corrupted_rules_expected": sorted(expected_bad),
        "spec": {"n_numeric": SPEC.n_numeric, "n_categorical": SPEC.n_categorical},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"gx_over_numpy = {ratio:.1f} (target <= {TARGET:g}); same_verdicts = {same}")


if __name__ == "__main__":
    main()
