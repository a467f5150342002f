"""The ``score-batch`` flow against the S3 fixture and a real Prefect API."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.score import score_batch
from mlops_onprem import keys, ledger
from mlops_onprem.contracts import Contract, find_contract
from mlops_onprem.manifest import (
    find_manifest,
    list_manifest_keys,
    read_manifest,
)
from mlops_onprem.onnx_io import FeatureMismatchError
from mlops_onprem.registry import ModelNotFoundError
from mlops_onprem.scoring import InputPartition, score_object
from mlops_onprem.scoring_plan import plan_run_id, select_versions
from mlops_onprem.store.base import ObjectStore, sha256_bytes
from mlops_onprem.store.parquet import dataframe_to_parquet_bytes, put_dataframe
from mlops_onprem.synthetic import generate_batch
from tests.fixtures.scoring import (
    contract_for,
    land_inbox,
    linear_onnx,
    register_handmade_champion,
    spec_for,
)

pytestmark = pytest.mark.s3

MANIFEST_FIELDS = {
    "model_name", "model_version", "run_id", "created_at", "inputs", "outputs", "timings",
    "contract_dataset", "contract_version", "failed_partitions", "status",
}


@pytest.fixture
def demo_contract() -> Contract:
    contract = find_contract("demo")
    assert contract.feature_names == contract_for().feature_names  # fixtures fit the repo contract
    return contract


def inbox_versions(store: ObjectStore, landed: list[str]) -> dict[str, str]:
    """landed key -> batch version (after a run gated them)."""
    index = ledger.read_index(store, "demo")
    return {key: ledger.version_for_key(index, key).id for key in landed}


def run_bytes(store: ObjectStore, run_prefix: str) -> dict[str, bytes]:
    return {info.key: store.get_bytes(info.key) for info in store.list(run_prefix)}


def test_flow_scores_every_new_batch_and_writes_the_manifest_last(s3_env, s3_store, demo_contract) -> None:
    model = register_handmade_champion(s3_store, linear_onnx(demo_contract))
    landed = land_inbox(s3_store)
    summary = score_batch(dataset="demo", model_name="demo", batch_rows=128)

    assert summary["status"] == "complete" and summary["rows"] == 1_200 and summary["rejected"] == []
    assert summary["partitions"] == 3 and summary["failed_partitions"] == []
    stored = s3_store.get_json(summary["manifest_key"])
    assert set(stored) == MANIFEST_FIELDS
    manifest = read_manifest(s3_store, summary["manifest_key"])
    versions = inbox_versions(s3_store, landed)
    assert sorted(i.source_key for i in manifest.inputs) == landed
    assert {i.version: i.key for i in manifest.inputs} == {
        v: keys.validated_scoring_key("demo", v) for v in versions.values()}  # the gated copies
    assert manifest.contract_dataset == "demo" and manifest.contract_version == demo_contract.version
    assert manifest.model_version == model.version
    assert list_manifest_keys(s3_store, "demo") == [summary["manifest_key"]]
    # manifest written last: no object under the run prefix is newer (S3 times are in seconds)
    listed = {i.key: i.last_modified for i in s3_store.list(keys.predictions_run_prefix(
        "demo", 1, summary["run_id"]))}
    assert max(listed.values()) == listed[summary["manifest_key"]]
    for output in manifest.outputs:
        assert s3_store.stat(output.key).sha256 == output.sha256
    part = pq.read_table(pa.BufferReader(s3_store.get_bytes(manifest.outputs[0].key)))
    assert part.num_rows == 400
    dist = summary["score_distribution"]
    assert dist["rows"] == 1_200 and 0 <= dist["p05"] <= dist["p50"] <= dist["p95"] <= 1
    index = ledger.read_index(s3_store, "demo")
    for version in versions.values():  # the ledger says who scored each version, and where
        scored = ledger.VersionView(index["versions"][version], True).scored_by("demo@1")
        assert scored["run_id"] == summary["run_id"] and scored["manifest_key"] == manifest.key


def test_the_nightly_run_scores_each_batch_once(s3_env, s3_store, demo_contract) -> None:
    register_handmade_champion(s3_store, linear_onnx(demo_contract))
    land_inbox(s3_store, n_batches=2)
    first = score_batch(dataset="demo", model_name="demo")
    again = score_batch(dataset="demo", model_name="demo")
    assert again["status"] == "nothing-new" and again["rows"] == 0
    frame = generate_batch(spec_for(), 50, seed=9, start_row=10_000, with_label=False)
    new_key = keys.scoring_inbox_key("demo", "b900")
    put_dataframe(s3_store, new_key, frame)
    second = score_batch(dataset="demo", model_name="demo")
    assert second["run_id"] != first["run_id"] and second["rows"] == 50  # only the new batch
    assert [i["source_key"] for i in second["inputs"]] == [new_key]
    assert len(list_manifest_keys(s3_store, "demo")) == 2


def test_backfill_rerun_is_a_no_op_and_a_forced_rescore_moves_the_pointer(s3_env, s3_store,
    demo_contract) -> None:
    register_handmade_champion(s3_store, linear_onnx(demo_contract))
    landed = land_inbox(s3_store, n_batches=2)
    first = score_batch(dataset="demo", model_name="demo")
    prefix = keys.predictions_run_prefix("demo", 1, first["run_id"])
    before = run_bytes(s3_store, prefix)
    backfill = score_batch(dataset="demo", model_name="demo", model_ref="1", mode="backfill")
    assert backfill["run_id"] == first["run_id"] and backfill["output_keys"] == first["output_keys"]
    assert run_bytes(s3_store, prefix) == before  # same keys, same bytes: nothing rewritten

    rescore = score_batch(dataset="demo", model_name="demo", mode="rescore")
    assert rescore["run_id"] != first["run_id"] and rescore["rows"] == first["rows"]
    assert run_bytes(s3_store, prefix) == before  # the complete run is immutable
    index = ledger.read_index(s3_store, "demo")
    for version in inbox_versions(s3_store, landed).values():
        view = ledger.VersionView(index["versions"][version], True)
        assert view.scored_by("demo@1")["run_id"] == rescore["run_id"]  # the pointer moved
        assert [s["run_id"] for s in view.state["scorings"]] == [first["run_id"], rescore["run_id"]]


def test_a_new_champion_scores_new_batches_only_unless_a_backfill_is_asked(s3_env, s3_store,
    demo_contract) -> None:
    register_handmade_champion(s3_store, linear_onnx(demo_contract))
    land_inbox(s3_store, n_batches=2)
    score_batch(dataset="demo", model_name="demo")
    model_bytes = linear_onnx(demo_contract)
    s3_store.put_bytes(keys.model_file_key("demo", 2, "model.onnx"), model_bytes)
    s3_store.put_json(keys.model_card_key("demo", 2), {"name": "demo", "version": 2, "files": {
        "onnx": {"key": keys.model_file_key("demo", 2, "model.onnx"), "sha256": sha256_bytes(model_bytes)}}})
    pointer = s3_store.read_pointer(keys.alias_key("demo", "champion"))
    s3_store.write_pointer(keys.alias_key("demo", "champion"), {"version": 2}, expected_token=pointer.token)
    new_key = keys.scoring_inbox_key("demo", "b500")
    put_dataframe(s3_store, new_key,
        generate_batch(spec_for(), 40, seed=5, start_row=9_000, with_label=False))
    nightly = score_batch(dataset="demo", model_name="demo")
    assert nightly["model_version"] == 2 and [i["source_key"] for i in nightly["inputs"]] == [new_key]
    backfill = score_batch(dataset="demo", model_name="demo", mode="backfill")
    assert backfill["model_version"] == 2 and backfill["rows"] == 2 * 400 + 40


def test_crash_then_rerun_completes_without_duplicates_or_orphans(s3_env, s3_store,
    demo_contract, tmp_path) -> None:
    from flows.ingest import ingest_batch

    model = register_handmade_champion(s3_store, linear_onnx(demo_contract))
    land_inbox(s3_store)
    ingest_batch("demo", stage="scoring")
    views = select_versions(ledger.read_index(s3_store, "demo"), "demo")
    run_id = plan_run_id("demo", 1, [v.id for v in views], mode="new")
    # what a run that crashed after its first partition leaves behind: one part, no manifest,
    # plus an orphan from an earlier aborted attempt under the same run id
    first = s3_store.stat(views[0].validated_key)
    score_object(s3_store, InputPartition(first.key, first.etag, first.size), model,
                 demo_contract, run_id=run_id, scratch_dir=tmp_path)
    orphan = keys.prediction_part_key("demo", 1, run_id, "part-orphan.parquet")
    s3_store.put_bytes(orphan, b"half-written")
    assert find_manifest(s3_store, "demo", 1, run_id) is None  # not complete
    assert list_manifest_keys(s3_store, "demo") == []

    summary = score_batch(dataset="demo", model_name="demo")
    assert summary["run_id"] == run_id and summary["pruned_keys"] == [orphan]
    listed = sorted(info.key for info in s3_store.list(keys.predictions_run_prefix("demo", 1, run_id)))
    assert listed == sorted([*summary["output_keys"], summary["manifest_key"]])
    assert len(summary["output_keys"]) == 3 and summary["rows"] == 1_200


def _bad_inputs(contract: Contract) -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, file name, what the run must say). Derived from a valid batch."""
    def frame(seed: int):
        return generate_batch(spec_for(), 60, seed=seed, start_row=50_000 + seed * 100, with_label=False)

    cases: dict[str, tuple[bytes, str, str]] = {}
    bad = frame(1)
    bad.loc[3, "num_00"] = np.inf
    cases["inf"] = (dataframe_to_parquet_bytes(bad), "inf.parquet", "range:num_00")
    bad = frame(2)
    bad.loc[4, "num_02"] = 1e6
    cases["out_of_range"] = (dataframe_to_parquet_bytes(bad), "range.parquet", "range:num_02")
    bad = frame(3)
    bad.loc[5, "num_03"] = np.nan
    cases["nan_in_non_nullable"] = (dataframe_to_parquet_bytes(bad), "nan.parquet", "not_null:num_03")
    bad = frame(4)
    bad.loc[6, "row_id"] = bad.loc[7, "row_id"]
    cases["duplicate_keys"] = (dataframe_to_parquet_bytes(bad), "dup.parquet", "row_id")
    cases["zero_rows"] = (dataframe_to_parquet_bytes(frame(5).iloc[0:0]), "empty.parquet", "row_count")
    cases["missing_column"] = (dataframe_to_parquet_bytes(frame(8).drop(columns=["num_04"])),
                               "narrow.parquet", "num_04")
    cases["csv"] = (frame(6).to_csv(index=False).encode(), "batch.csv", "accepts ['parquet']")
    data = dataframe_to_parquet_bytes(frame(7))
    cases["truncated"] = (data[: len(data) - 100], "cut.parquet", "truncated")
    return cases


@pytest.mark.parametrize("case", ["inf", "out_of_range", "nan_in_non_nullable", "duplicate_keys",
                                  "zero_rows", "missing_column", "csv", "truncated"])
def test_bad_scoring_input_is_never_published_and_is_named_in_the_result(
    s3_env, s3_store, demo_contract, case
) -> None:
    register_handmade_champion(s3_store, linear_onnx(demo_contract))
    landed = land_inbox(s3_store, n_batches=2)
    data, name, reason = _bad_inputs(demo_contract)[case]
    bad_key = keys.scoring_inbox_prefix("demo") + name
    s3_store.put_bytes(bad_key, data)

    state = score_batch(dataset="demo", model_name="demo", return_state=True)

    assert state.is_failed() and bad_key in state.message and reason in state.message
    (manifest_key,) = list_manifest_keys(s3_store, "demo")
    manifest = read_manifest(s3_store, manifest_key)  # the valid batches are scored and published
    assert manifest.status == "complete" and sorted(i.source_key for i in manifest.inputs) == landed
    assert bad_key not in {i.source_key for i in manifest.inputs}
    index = ledger.read_index(s3_store, "demo")
    rejected = ledger.version_for_key(index, bad_key)
    assert rejected.status == "rejected" and rejected.scored_by("demo@1") is None
    assert s3_store.get_bytes(rejected.validation["quarantine_key"]) == data
    assert s3_store.get_bytes(bad_key) == data  # the landed object is untouched
    summary = summary_without_failing(s3_store, demo_contract)
    assert summary["status"] == "nothing-new" and [r["source_key"] for r in summary["rejected"]] == []


def summary_without_failing(store: ObjectStore, contract: Contract) -> dict:
    """A rerun does not re-gate a rejected version (it stays rejected until new bytes land)."""
    return score_batch(dataset="demo", model_name="demo", fail_on_rejected=False)


def test_a_rerun_killed_mid_way_never_touches_the_complete_run(s3_env, s3_store, demo_contract) -> None:
    """kill -9 a forced rescore mid-way: the complete run's manifest still matches every byte."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from prefect.settings import PREFECT_API_URL

    register_handmade_champion(s3_store, linear_onnx(demo_contract))
    land_inbox(s3_store, n_batches=12, rows=4_000)
    first = score_batch(dataset="demo", model_name="demo")
    prefix = keys.predictions_run_prefix("demo", 1, first["run_id"])
    before = run_bytes(s3_store, prefix)
    code = ("from flows.score import score_batch; "
            "score_batch(dataset='demo', model_name='demo', mode='rescore', batch_rows=256)")
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and child.poll() is None:
            runs = {info.key.split("/")[3] for info in s3_store.list(keys.predictions_model_prefix("demo"))}
            if runs - {first["run_id"]}:
                break  # the rescore is writing its parts
            time.sleep(0.05)
        assert child.poll() is None, "the rescore finished before it could be killed"
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert run_bytes(s3_store, prefix) == before
    manifest = read_manifest(s3_store, first["manifest_key"])
    for output in manifest.outputs:
        assert sha256_bytes(s3_store.get_bytes(output.key)) == output.sha256
    assert list_manifest_keys(s3_store, "demo") == [first["manifest_key"]]  # no half run published
    index = ledger.read_index(s3_store, "demo")
    assert {v.scored_by("demo@1")["run_id"] for v in ledger.versions(index, stage="scoring")} == \
        {first["run_id"]}


def test_missing_champion_fails_with_a_clear_model_not_found(s3_env, s3_store) -> None:
    land_inbox(s3_store, n_batches=1)
    with pytest.raises(ModelNotFoundError, match="'demo' has no 'champion' alias"):
        score_batch(dataset="demo", model_name="demo")
    assert list(s3_store.list("predictions/")) == []


def test_model_whose_features_differ_from_the_contract_fails_before_scoring(s3_env, s3_store,
    demo_contract) -> None:
    features = list(demo_contract.features)
    features[2], features[3] = features[3], features[2]
    swapped = demo_contract.model_copy(update={"features": tuple(features)})
    register_handmade_champion(s3_store, linear_onnx(swapped))
    land_inbox(s3_store, n_batches=1)
    with pytest.raises(FeatureMismatchError, match="position 2: model has 'num_03', contract has 'num_02'"):
        score_batch(dataset="demo", model_name="demo")
    assert list(s3_store.list("predictions/")) == []


def test_trained_champion_scores_end_to_end(s3_env, s3_store) -> None:
    from flows.ingest import ingest_batch
    from flows.train import train_model

    for i in range(2):  # labelled history for training, then the same feature rows to score
        put_dataframe(s3_store, keys.incoming_key("demo", f"h{i:03d}"),
                      generate_batch(spec_for(), 600, seed=100 + i, start_row=i * 600))
    ingest_batch("demo", stage="training")
    land_inbox(s3_store, n_batches=2, rows=600)
    trained = train_model(dataset="demo", model_name="demo", spec="logistic", seed=1)
    assert trained["promoted"]
    summary = score_batch(dataset="demo", model_name="demo")
    assert summary["status"] == "complete" and summary["rows"] == 1_200
    assert summary["model_version"] == trained["version"]


def test_cli_lists_and_shows_scoring_runs(s3_env, s3_store, demo_contract, capsys) -> None:
    from mlops_onprem.cli import main

    assert main(["score", "runs", "demo"]) == 1  # nothing scored yet
    register_handmade_champion(s3_store, linear_onnx(demo_contract))
    land_inbox(s3_store, n_batches=1)
    summary = score_batch(dataset="demo", model_name="demo")
    capsys.readouterr()
    assert main(["score", "runs", "demo"]) == 0
    assert summary["manifest_key"] in capsys.readouterr().out
    assert main(["score", "show", summary["manifest_key"]]) == 0
    assert f'"run_id": "{summary["run_id"]}"' in capsys.readouterr().out


def test_tasks_retry_only_transient_io_failures() -> None:
    """A real task with the scoring tasks' retry options: a transient store failure is retried
    (and then succeeds), bad data is not retried."""
    from prefect import task

    from mlops_onprem.errors import StoreUnavailableError
    from mlops_onprem.scoring import CorruptPartitionError
    from tasks.scoring import _IO_RETRIES

    calls: list[str] = []

    def fails_once(error: Exception) -> str:
        calls.append(type(error).__name__)
        if len(calls) == 1:
            raise error
        return "ok"

    options = {**_IO_RETRIES, "retry_delay_seconds": 0}
    assert task(fails_once, **options)(StoreUnavailableError("down")) == "ok"
    assert calls == ["StoreUnavailableError", "StoreUnavailableError"]
    for final in (CorruptPartitionError("bad"), ModelNotFoundError("none")):
        calls.clear()
        with pytest.raises(type(final)):
            task(fails_once, **options)(final)
        assert len(calls) == 1, (final, calls)


def test_a_pinned_run_id_never_rewrites_a_run_over_other_batches(s3_env, s3_store, demo_contract) -> None:
    from mlops_onprem.scoring_plan import ScoringPlanError

    register_handmade_champion(s3_store, linear_onnx(demo_contract))
    land_inbox(s3_store, n_batches=1)
    first = score_batch(dataset="demo", model_name="demo", run_id="nightly")
    before = run_bytes(s3_store, keys.predictions_run_prefix("demo", 1, "nightly"))
    put_dataframe(s3_store, keys.scoring_inbox_key("demo", "b901"),
                  generate_batch(spec_for(), 30, seed=7, start_row=20_000, with_label=False))
    with pytest.raises(ScoringPlanError, match="never rewritten"):
        score_batch(dataset="demo", model_name="demo", run_id="nightly")
    assert run_bytes(s3_store, keys.predictions_run_prefix("demo", 1, "nightly")) == before
    assert first["rows"] == 400
