"""The ``score-batch`` flow against the S3 fixture and a real Prefect API."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scoring_fixtures import contract_for, linear_onnx, spec_for

from flows.score import score_batch
from mlops_onprem import keys
from mlops_onprem.contracts import Contract, find_contract
from mlops_onprem.manifest import (
    ScoringRunFailedError,
    derive_run_id,
    find_manifest,
    list_manifest_keys,
    read_manifest,
)
from mlops_onprem.onnx_io import FeatureMismatchError
from mlops_onprem.registry import ModelNotFoundError
from mlops_onprem.scoring import InputPartition, ModelRef, score_object
from mlops_onprem.store.base import ObjectStore, sha256_bytes
from mlops_onprem.store.parquet import put_dataframe
from mlops_onprem.synthetic import generate_batch

pytestmark = pytest.mark.s3

MANIFEST_FIELDS = {
    "model_name", "model_version", "run_id", "created_at", "inputs", "outputs", "timings",
    "contract_dataset", "contract_version", "failed_partitions", "status",
}


def register_handmade_champion(store: ObjectStore, model_bytes: bytes, name: str = "demo",
                               version: int = 1) -> ModelRef:
    """Commit a model in the registry's stored layout (card.json + champion pointer).

    Lets the flow tests use a tiny exact model (and a deliberately wrong one) without
    training; ``test_trained_champion_scores_end_to_end`` covers a real trained one.
    """
    onnx_key = keys.model_file_key(name, version, "model.onnx")
    store.put_bytes(onnx_key, model_bytes)
    sha = sha256_bytes(model_bytes)
    store.put_json(keys.model_card_key(name, version), {
        "name": name, "version": version,
        "files": {"onnx": {"key": onnx_key, "sha256": sha}},
    })
    store.write_pointer(keys.alias_key(name, "champion"), {"version": version}, expected_token=None)
    return ModelRef(name, version, onnx_key, sha)


def land_inbox(store: ObjectStore, n_batches: int = 3, rows: int = 400) -> list[str]:
    """Unlabelled demo batches in the scoring inbox (the flow's default input)."""
    landed = []
    for i in range(n_batches):
        frame = generate_batch(spec_for(), rows, seed=100 + i, start_row=i * rows, with_label=False)
        key = keys.scoring_inbox_key("demo", f"b{i:03d}")
        put_dataframe(store, key, frame)
        landed.append(key)
    return landed


@pytest.fixture
def demo_contract() -> Contract:
    contract = find_contract("demo")
    assert contract.feature_names == contract_for().feature_names  # fixtures fit the repo contract
    return contract


def test_flow_scores_every_partition_and_writes_the_manifest_last(s3_env, s3_store, demo_contract) -> None:
    model = register_handmade_champion(s3_store, linear_onnx(demo_contract))
    landed = land_inbox(s3_store)
    summary = score_batch(dataset="demo", model_name="demo", batch_rows=128)

    assert summary["status"] == "complete" and summary["rows"] == 1_200
    assert summary["partitions"] == 3 and summary["failed_partitions"] == []
    stored = s3_store.get_json(summary["manifest_key"])
    assert set(stored) == MANIFEST_FIELDS
    manifest = read_manifest(s3_store, summary["manifest_key"])
    assert [i.key for i in manifest.inputs] == landed
    assert [o.input_key for o in manifest.outputs] == landed
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
    assert set(part.column("input_key").to_pylist()) == {landed[0]}
    dist = summary["score_distribution"]
    assert dist["rows"] == 1_200 and 0 <= dist["p05"] <= dist["p50"] <= dist["p95"] <= 1


def test_rerun_over_the_same_input_and_model_rewrites_the_same_keys_and_bytes(s3_env, s3_store, demo_contract) -> None:
    register_handmade_champion(s3_store, linear_onnx(demo_contract))
    land_inbox(s3_store, n_batches=2)
    first = score_batch(dataset="demo", model_name="demo")
    prefix = keys.predictions_run_prefix("demo", 1, first["run_id"])
    before = {info.key: s3_store.stat(info.key).sha256 for info in s3_store.list(prefix)}
    second = score_batch(dataset="demo", model_name="demo")
    after = {info.key: s3_store.stat(info.key).sha256 for info in s3_store.list(prefix)}
    assert second["run_id"] == first["run_id"]
    assert second["output_keys"] == first["output_keys"]
    parts = {k: v for k, v in after.items() if not k.endswith("_manifest.json")}
    assert parts == {k: v for k, v in before.items() if not k.endswith("_manifest.json")}
    assert len(parts) == 2  # no duplicates
    assert list_manifest_keys(s3_store, "demo") == [first["manifest_key"]]


def test_new_input_gets_a_new_run_id(s3_env, s3_store, demo_contract) -> None:
    register_handmade_champion(s3_store, linear_onnx(demo_contract))
    land_inbox(s3_store, n_batches=1)
    first = score_batch(dataset="demo", model_name="demo")
    put_dataframe(s3_store, keys.scoring_inbox_key("demo", "b900"), generate_batch(spec_for(), 50, seed=9))
    second = score_batch(dataset="demo", model_name="demo")
    assert second["run_id"] != first["run_id"] and second["rows"] == first["rows"] + 50


def test_crash_then_rerun_completes_without_duplicates_or_orphans(s3_env, s3_store, demo_contract, tmp_path) -> None:
    model = register_handmade_champion(s3_store, linear_onnx(demo_contract))
    landed = land_inbox(s3_store)
    infos = [s3_store.stat(key) for key in landed]
    run_id = derive_run_id("demo", 1, [(i.key, i.etag) for i in infos])
    # what a run that crashed after its first partition leaves behind: one part, no manifest,
    # plus an orphan from an earlier aborted attempt under the same (pinned) run id
    score_object(s3_store, InputPartition(infos[0].key, infos[0].etag, infos[0].size), model,
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


def test_corrupt_partition_is_quarantined_others_complete_and_the_run_fails_naming_it(
    s3_env, s3_store, demo_contract
) -> None:
    register_handmade_champion(s3_store, linear_onnx(demo_contract))
    landed = land_inbox(s3_store)
    bad_key = keys.scoring_inbox_key("demo", "b001")
    s3_store.put_bytes(bad_key, b"PAR1 definitely not a parquet file")
    with pytest.raises(ScoringRunFailedError, match="inbox/demo/b001.parquet"):
        score_batch(dataset="demo", model_name="demo")

    (manifest_key,) = list_manifest_keys(s3_store, "demo")
    manifest = read_manifest(s3_store, manifest_key)
    assert manifest.status == "partial"
    assert [f.key for f in manifest.failed_partitions] == [bad_key]
    assert "CorruptPartitionError" in manifest.failed_partitions[0].error
    assert [o.input_key for o in manifest.outputs] == [landed[0], landed[2]]
    run = manifest.run_id
    quarantined = keys.scoring_quarantine_key("demo", run, "b001", "b001.parquet")
    assert s3_store.get_bytes(quarantined) == b"PAR1 definitely not a parquet file"
    reason = s3_store.get_json(keys.scoring_quarantine_key("demo", run, "b001", "scoring_error.json"))
    assert reason["input_key"] == bad_key and reason["stage"] == "scoring"


def test_partition_breaking_the_contract_is_quarantined_naming_the_column(s3_env, s3_store, demo_contract) -> None:
    register_handmade_champion(s3_store, linear_onnx(demo_contract))
    land_inbox(s3_store, n_batches=1)
    frame = generate_batch(spec_for(), 30, seed=5).drop(columns=["num_04"])
    put_dataframe(s3_store, keys.scoring_inbox_key("demo", "b777"), frame)
    with pytest.raises(ScoringRunFailedError, match="num_04"):
        score_batch(dataset="demo", model_name="demo")
    (manifest_key,) = list_manifest_keys(s3_store, "demo")
    run = read_manifest(s3_store, manifest_key).run_id
    assert s3_store.exists(keys.scoring_quarantine_key("demo", run, "b777", "b777.parquet"))


def test_missing_champion_fails_with_a_clear_model_not_found(s3_env, s3_store) -> None:
    land_inbox(s3_store, n_batches=1)
    with pytest.raises(ModelNotFoundError, match="'demo' has no 'champion' alias"):
        score_batch(dataset="demo", model_name="demo")
    assert list(s3_store.list("predictions/")) == []


def test_model_whose_features_differ_from_the_contract_fails_before_scoring(s3_env, s3_store, demo_contract) -> None:
    features = list(demo_contract.features)
    features[2], features[3] = features[3], features[2]
    swapped = demo_contract.model_copy(update={"features": tuple(features)})
    register_handmade_champion(s3_store, linear_onnx(swapped))
    land_inbox(s3_store, n_batches=1)
    with pytest.raises(FeatureMismatchError, match="position 2: model has 'num_03', contract has 'num_02'"):
        score_batch(dataset="demo", model_name="demo")
    assert list(s3_store.list("predictions/")) == []


def test_trained_champion_scores_end_to_end(s3_env, s3_store) -> None:
    from flows.train import train_model

    for i in range(2):  # labelled history for training, then the same rows to score
        put_dataframe(s3_store, keys.validated_key("demo", f"h{i:03d}"),
                      generate_batch(spec_for(), 600, seed=100 + i, start_row=i * 600))
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
    from prefect.states import Failed

    from mlops_onprem.errors import StoreUnavailableError
    from mlops_onprem.scoring import CorruptPartitionError
    from tasks.scoring import retry_on_transient_io

    assert retry_on_transient_io(None, None, Failed(data=StoreUnavailableError("down")))
    assert not retry_on_transient_io(None, None, Failed(data=CorruptPartitionError("bad")))
    assert not retry_on_transient_io(None, None, Failed(data=ModelNotFoundError("none")))
