"""The Great Expectations engine: the only module that imports ``great_expectations``.

It holds one ephemeral GX context (created on first use, reused, with a process-wide patch that
stops GX fingerprinting every row of each batch), translates value rules into cached
``ExpectationSuite``s (:func:`build_expectation_suite`) and validates a pandas batch
(:func:`validate_dataframe`: schema rules first, then the value rules through GX).

Speed without changing a verdict: a range, category or uniqueness rule is first screened with a
GX *aggregate* expectation (column min/max, distinct values in set, proportion of unique
values), which cost a few ms per column where the row-wise ``ExpectColumnValuesTo...`` forms cost
~170 ms per column on 1M rows. A passing screen implies the row-wise expectation passes. Only
when a screen fails does the row-wise expectation run, for that column alone; its verdict is final
and it supplies the unexpected count and example values. GX never raises on a failing batch and
calls an empty suite a success: here zero evaluated rules raise :class:`NothingValidatedError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_onprem.contracts import Contract
from mlops_onprem.errors import ContractError
from mlops_onprem.validation.errors import NothingValidatedError
from mlops_onprem.validation.results import RuleResult, ValidationResult
from mlops_onprem.validation.rules import (
    EXAMPLE_COUNT,
    ExpectationSpec,
    Rule,
    RuleStatus,
    _referenced_columns,
    _stage,
    contract_rules,
)
from mlops_onprem.validation.schema import _pandas_kind, _schema_results

if TYPE_CHECKING:  # GX takes seconds to import: only the value checks pay for it
    import great_expectations as gx


class _GxRuntime:
    """One ephemeral GX context, data source and batch definition, created once and reused."""

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.expectations.registry import get_expectation_impl

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        # tqdm "Calculating Metrics" bars would flood task logs
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        source = self.context.data_sources.add_pandas("mlops_batches")
        asset = source.add_dataframe_asset("batch")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole_batch")
        self.expectation_class = get_expectation_impl
        self.lock = threading.Lock()  # the context is not documented as thread-safe
        _skip_batch_fingerprint()


def _skip_batch_fingerprint() -> None:
    """Stop GX hashing every row of each batch for a "pandas_data_fingerprint" batch marker.

    GX 1.24 computes ``pd.util.hash_pandas_object(df)`` for frames under 1 GB (its
    ``HASH_THRESHOLD``) on every ``get_batch``: ~0.7-1.4 s per call on 1M x 35 here, more than
    all the expectations together. The marker is metadata only (GX already skips it above
    1 GB); no expectation or verdict uses it.
    """
    from great_expectations.execution_engine import pandas_execution_engine

    if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        pandas_execution_engine.HASH_THRESHOLD = 0


_RUNTIME: _GxRuntime | None = None
_RUNTIME_LOCK = threading.Lock()


def _runtime() -> _GxRuntime:
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            _RUNTIME = _GxRuntime()
        return _RUNTIME


def _gx_expectation(spec: ExpectationSpec, rule_id: str, runtime: _GxRuntime) -> Any:
    try:
        cls = runtime.expectation_class(spec.type)
    except Exception as exc:  # GX raises its own ExpectationNotFoundError
        raise ContractError(f"rule {rule_id!r}: unknown Great Expectations type {spec.type!r}") from exc
    try:
        return cls(**dict(spec.kwargs), meta={"rule_id": rule_id})
    except Exception as exc:  # pydantic validation error inside GX
        raise ContractError(f"rule {rule_id!r}: invalid arguments for {spec.type}: {exc}") from exc


_SUITE_CACHE: dict[tuple[str, str, frozenset[str] | None, bool], Any] = {}
_SUITE_CACHE_SIZE = 64


def build_expectation_suite(
    contract: Contract, stage: str, *, rule_ids: Iterable[str] | None = None, detail: bool = False,
) -> gx.ExpectationSuite:
    """Translate a contract into a GX ``ExpectationSuite`` for ``stage``.

    Takes the contract, the stage, optionally the rule ids to include (default: all value rules),
    and ``detail``: False gives the cheap screening suite (aggregate expectations, plus
    not-null and extra expectations as declared); True gives the row-wise expectations of the
    rules that have one. Every expectation carries ``meta["rule_id"]``.
    Returns the suite (not saved in any context; built once per contract/stage/rules and
    reused). Raises :class:`ContractError` for an unknown expectation type or bad kwargs in
    ``extra_expectations``.
    """
    wanted = None if rule_ids is None else frozenset(rule_ids)
    cache_key = (contract.model_dump_json(), _stage(stage), wanted, detail)
    cached = _SUITE_CACHE.get(cache_key)
    if cached is not None:
        return cached
    runtime = _runtime()
    expectations = []
    for rule in contract_rules(contract, stage):
        if rule.is_schema or (wanted is not None and rule.rule_id not in wanted):
            continue
        specs = (rule.detail,) if detail and rule.detail else () if detail else rule.screen
        expectations += [_gx_expectation(spec, rule.rule_id, runtime) for spec in specs]
    # the constructor keeps every expectation; add_expectation() is O(n^2) and would merge
    # an extra expectation identical to a built-in rule into it, losing its rule id
    suite = runtime.gx.ExpectationSuite(
        name=f"{contract.dataset}-{contract.version}-{stage}" + ("-detail" if detail else ""),
        expectations=expectations,
    )
    if len(_SUITE_CACHE) >= _SUITE_CACHE_SIZE:
        _SUITE_CACHE.clear()
    _SUITE_CACHE[cache_key] = suite
    return suite


def _run_suite(runtime: _GxRuntime, batch: Any, suite: Any) -> list[Any]:
    n_expectations = len(suite.expectations)
    with runtime.lock:
        outcome = batch.validate(suite, result_format={
            "result_format": "SUMMARY", "partial_unexpected_count": EXAMPLE_COUNT})
    evaluated = outcome.statistics.get("evaluated_expectations", 0)
    if evaluated != n_expectations:
        raise NothingValidatedError(
            f"Great Expectations evaluated {evaluated} of {n_expectations} expectations "
            f"of suite {suite.name!r}")
    return list(outcome.results)


def _gx_error(result: Any) -> str | None:
    info = result.exception_info or {}
    if isinstance(info, dict) and info.get("raised_exception"):
        return str(info.get("exception_message") or "expectation raised")
    return None


def _observed_of(rule: Rule, screens: list[Any]) -> Any:
    observed = {r.expectation_config.type: r.result.get("observed_value") for r in screens}
    if rule.kind == "range":
        return {"min": observed.get("expect_column_min_to_be_between"),
                "max": observed.get("expect_column_max_to_be_between")}
    if len(screens) == 1:
        observed = screens[0].result.get("observed_value")
        if observed is None and rule.kind in ("categories", "label_classes"):
            # the distinct-values screen reports the unseen values themselves
            return {"unseen": list(screens[0].result.get("partial_unexpected_list") or [])}
        return observed
    return observed


def _apply_gx_results(rule: Rule, res: RuleResult, gx_results: list[Any], *, final: bool) -> None:
    """Fill ``res`` from the GX results of ``rule`` (screen or detail)."""
    errors = [e for e in (_gx_error(r) for r in gx_results) if e]
    ok = all(r.success for r in gx_results) and not errors
    if not final:
        res.observed = _observed_of(rule, gx_results)
    res.status = RuleStatus.PASSED if ok else RuleStatus.FAILED
    for r in gx_results:
        count = r.result.get("unexpected_count")
        if count is not None:
            res.unexpected_count = int(count)
            res.unexpected_examples = list(r.result.get("partial_unexpected_list") or [])[:EXAMPLE_COUNT]
    if errors:
        res.message = "; ".join(errors)


def validate_dataframe(
    df: pd.DataFrame, contract: Contract, *, stage: str, batch_id: str | None = None,
    source_key: str | None = None,
) -> ValidationResult:
    """Validate a pandas batch against ``contract`` at ``stage``.

    Takes the DataFrame, the contract, ``stage`` ("training": label required, "scoring": label
    must be absent) and optional batch id / source key recorded in the result.
    Returns a :class:`ValidationResult` (per rule: column, expectation, observed value,
    unexpected count and examples, status). Does not raise on a failing batch: call
    :func:`raise_for_result`. Raises :class:`NothingValidatedError` if no rule was evaluated,
    :class:`ContractError` for a contract GX cannot translate, ``ValueError`` for a bad stage.
    """
    started = time.perf_counter()
    rules = contract_rules(contract, stage)
    columns = [str(c) for c in df.columns]
    kinds = {c: _pandas_kind(t) for c, t in zip(columns, df.dtypes, strict=True)}
    types = {str(c): str(t) for c, t in zip(columns, df.dtypes, strict=True)}
    results, unusable, ignored = _schema_results(columns, kinds, types, rules, contract, stage)

    runnable: list[Rule] = []
    for rule in rules:
        if rule.is_schema:
            continue
        referenced = _referenced_columns(rule)
        blocked = sorted(c for c in referenced if c in unusable or c not in columns)
        if blocked:
            results[rule.rule_id] = RuleResult.of(
                rule, RuleStatus.SKIPPED,
                message=f"not evaluated: column(s) {blocked} missing or of the wrong dtype")
        else:
            runnable.append(rule)

    if runnable:
        runtime = _runtime()
        frame = df if not unusable else df.loc[:, [c for c in columns if c not in unusable]]
        ids = [r.rule_id for r in runnable]
        with runtime.lock:
            batch = runtime.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        screen = _run_suite(runtime, batch, build_expectation_suite(contract, stage, rule_ids=ids))
        by_rule: dict[str, list[Any]] = {}
        for r in screen:
            by_rule.setdefault(r.expectation_config.meta["rule_id"], []).append(r)
        needs_detail: list[Rule] = []
        for rule in runnable:
            res = RuleResult.of(rule, RuleStatus.PASSED)
            got = by_rule.get(rule.rule_id, [])
            if len(got) != len(rule.screen):
                raise NothingValidatedError(
                    f"rule {rule.rule_id!r}: Great Expectations returned {len(got)} of "
                    f"{len(rule.screen)} results; refusing to call it passed")
            _apply_gx_results(rule, res, got, final=False)
            results[rule.rule_id] = res
            if res.failed and rule.detail is not None:
                needs_detail.append(rule)
        if needs_detail:
            # the row-wise expectation decides and explains, for the failing columns only
            detail_suite = build_expectation_suite(
                contract, stage, rule_ids=[r.rule_id for r in needs_detail], detail=True)
            detail_by_rule: dict[str, list[Any]] = {}
            for r in _run_suite(runtime, batch, detail_suite):
                detail_by_rule.setdefault(r.expectation_config.meta["rule_id"], []).append(r)
            for rule in needs_detail:
                _apply_gx_results(rule, results[rule.rule_id], detail_by_rule[rule.rule_id], final=True)

    ordered = [results[r.rule_id] for r in rules]
    result = ValidationResult(
        dataset=contract.dataset, contract_version=contract.version, stage=stage,
        batch_id=batch_id, n_rows=len(df), n_columns=len(columns), rules=ordered,
        duration_s=time.perf_counter() - started, ignored_columns=ignored, source_key=source_key,
    )
    if result.evaluated_count == 0:
        raise NothingValidatedError(
            f"dataset {contract.dataset!r}: no rule of contract {contract.version} was evaluated "
            f"on batch {batch_id!r}; an empty validation must not pass a batch")
    return result

