"""The ingest-batch flow against the moto S3 server and a real Prefect API: every pending batch
version through the contract, keyed by content, recorded in the ledger."""

from __future__ import annotations

import numpy as np
import pytest
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.client.schemas.sorting import ArtifactSort

from flows.ingest import ingest_batch
from mlops_onprem import keys, ledger
from mlops_onprem.store.parquet import dataframe_to_parquet_bytes, get_dataframe
from mlops_onprem.synthetic import SyntheticSpec, generate_batch, make_contract
from mlops_onprem.validation import BatchRejectedError, contract_rules

pytestmark = pytest.mark.s3

SPEC = SyntheticSpec(dataset="shop", n_numeric=3, n_categorical=1)


@pytest.fixture
def contract_path(tmp_path):
    path = tmp_path / "shop.yaml"
    path.write_text(make_contract(SPEC).to_yaml(), encoding="utf-8")
    return str(path)


def land(store, name: str, data: bytes, *, scoring: bool = False) -> str:
    key = (keys.scoring_inbox_prefix("shop") if scoring else keys.incoming_prefix("shop")) + name
    store.put_bytes(key, data)
    return key


def batch_bytes(rows: int, seed: int, start_row: int = 0, **kwargs) -> bytes:
    return dataframe_to_parquet_bytes(generate_batch(SPEC, rows, seed=seed, start_row=start_row, **kwargs))


def test_valid_batch_is_published_in_contract_order_and_recorded(s3_env, s3_store, contract_path):
    batch = generate_batch(SPEC, 200, seed=1)
    source = land(s3_store, "b1.parquet", dataframe_to_parquet_bytes(batch[batch.columns[::-1]]))

    summary = ingest_batch("shop", contract_path=contract_path)

    (verdict,) = summary["validated"]
    assert summary["rejected"] == [] and verdict["source_key"] == source
    assert verdict["routed_key"] == keys.validated_key("shop", verdict["version"])
    published = get_dataframe(s3_store, verdict["routed_key"])
    assert list(published.columns) == make_contract(SPEC).input_columns(with_label=True)
    assert len(published) == 200
    view = ledger.version_for_key(ledger.read_index(s3_store, "shop"), source)
    assert view.status == "validated" and view.validation["contract_version"] == make_contract(SPEC).version
    assert s3_store.get_json(view.validation["result_key"])["success"] is True
    artifact = Artifact.get(f"validation-shop-{verdict['version']}")
    assert artifact is not None and "PASSED" in artifact.data and source in artifact.data


def test_same_bytes_are_a_no_op_even_under_another_key(s3_env, s3_store, contract_path):
    source = land(s3_store, "b1.parquet", batch_bytes(100, seed=1))
    (first,) = ingest_batch("shop", contract_path=contract_path)["validated"]
    land(s3_store, "b1.parquet", batch_bytes(100, seed=1))  # re-upload, same bytes
    copy = land(s3_store, "copy/b1.parquet", batch_bytes(100, seed=1))  # same content, other key
    assert ingest_batch("shop", contract_path=contract_path) == {"dataset": "shop", "validated": [],
                                                                  "rejected": []}
    index = ledger.read_index(s3_store, "shop")
    assert ledger.version_for_key(index, copy).id == ledger.version_for_key(index, source).id
    assert [v.id for v in ledger.training_set(index)] == [first["version"]]  # trains once


def test_a_corrected_upload_under_the_same_key_is_a_new_version_that_replaces_the_old(
    s3_env, s3_store, contract_path
):
    land(s3_store, "b1.parquet", batch_bytes(100, seed=1))
    (first,) = ingest_batch("shop", contract_path=contract_path)["validated"]
    land(s3_store, "b1.parquet", batch_bytes(100, seed=2))  # corrected: same row keys, new values
    (second,) = ingest_batch("shop", contract_path=contract_path)["validated"]
    assert second["version"] != first["version"]
    index = ledger.read_index(s3_store, "shop")
    assert [v.id for v in ledger.training_set(index)] == [second["version"]]
    assert index["versions"][first["version"]]["validation"]["status"] == "validated"  # history kept


def test_a_reupload_that_fails_leaves_the_training_set(s3_env, s3_store, contract_path):
    land(s3_store, "b1.parquet", batch_bytes(100, seed=1))
    ingest_batch("shop", contract_path=contract_path)
    bad = generate_batch(SPEC, 100, seed=3)
    bad.loc[3, "num_00"] = np.inf
    land(s3_store, "b1.parquet", dataframe_to_parquet_bytes(bad))
    with pytest.raises(BatchRejectedError, match="b1.parquet"):
        ingest_batch("shop", contract_path=contract_path)
    assert ledger.training_set(ledger.read_index(s3_store, "shop")) == []


def test_every_pending_batch_is_gated_in_one_run_and_the_run_fails_naming_the_rejected(
    s3_env, s3_store, contract_path
):
    # the rejected batch is gated first, the passing one after it (data date order)
    batch = generate_batch(SPEC, 200, seed=2, start_row=1000)
    batch.loc[5, "num_00"] = np.inf
    batch.loc[7, "cat_00"] = "zulu"
    original = dataframe_to_parquet_bytes(batch)
    bad = land(s3_store, "dt=2026-11-01/a.parquet", original)
    good = land(s3_store, "dt=2026-11-02/a.parquet", batch_bytes(100, seed=1))  # same file name

    state = ingest_batch("shop", contract_path=contract_path, return_state=True)

    assert state.is_failed()
    assert bad in state.message and good not in state.message
    assert "range:num_00" in state.message and "categories:cat_00" in state.message
    index = ledger.read_index(s3_store, "shop")
    rejected = ledger.version_for_key(index, bad)
    assert rejected.status == "rejected" and ledger.version_for_key(index, good).status == "validated"
    quarantined = rejected.validation["quarantine_key"]
    assert quarantined in state.message and s3_store.get_bytes(quarantined) == original
    assert s3_store.get_bytes(bad) == original  # the landed object is untouched
    assert not s3_store.exists(keys.validated_key("shop", rejected.id))
    with get_client(sync_client=True) as client:  # what the runs list and artifacts show
        run = client.read_flow_run(state.state_details.flow_run_id)
        published = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])),
            sort=ArtifactSort.CREATED_DESC)
    reports = {}
    for artifact in reversed(published):  # oldest first: a key's later report wins
        if (artifact.key or "").startswith("validation-"):
            reports[artifact.key] = artifact.data
    bad_key = f"validation-shop-{rejected.id}"
    good_key = f"validation-shop-{ledger.version_for_key(index, good).id}"
    assert set(reports) == {"validation-shop", bad_key, good_key}  # one per dataset, one per batch
    assert "PASSED" in reports["validation-shop"]  # the later pass is the dataset's latest ...
    assert "REJECTED" in reports[bad_key] and quarantined in reports[bad_key]  # ... never hiding this
    expected = {r.rule_id: r.description for r in contract_rules(make_contract(SPEC), "training")}
    for rule_id in ("range:num_00", "categories:cat_00"):  # bounds and allowed values shown
        assert f"| `{rule_id}` | {expected[rule_id]} |" in reports[bad_key]
    assert "PASSED" in reports[good_key] and quarantined not in reports[good_key]
    assert run.name == "ingest shop - 1 rejected"
    assert {"dataset:shop", "rejected"} <= set(run.tags)


def test_truncated_upload_is_quarantined_with_a_clear_message(s3_env, s3_store, contract_path):
    data = batch_bytes(50, seed=3)
    land(s3_store, "b3.parquet", data[: len(data) - 100])
    state = ingest_batch("shop", contract_path=contract_path, return_state=True)
    assert state.is_failed() and "truncated" in state.message


def test_start_end_limit_hive_partitions_and_scoring_batches_never_reach_training(
    s3_env, s3_store, contract_path
):
    land(s3_store, "dt=2026-11-01/a.parquet", batch_bytes(50, seed=1))
    land(s3_store, "dt=2026-11-05/a.parquet", batch_bytes(50, seed=2, start_row=100))
    summary = ingest_batch("shop", stage="training", start="2026-11-04", contract_path=contract_path)
    assert [v["source_key"].split("/")[-2] for v in summary["validated"]] == ["dt=2026-11-05"]

    labelled = land(s3_store, "s1.parquet", batch_bytes(50, seed=4, start_row=500), scoring=True)
    state = ingest_batch("shop", stage="scoring", contract_path=contract_path, return_state=True)
    assert state.is_failed() and labelled in state.message and "label_absent:label" in state.message
    land(s3_store, "s2.parquet", batch_bytes(50, seed=5, start_row=600, with_label=False), scoring=True)
    (verdict,) = ingest_batch("shop", stage="scoring", contract_path=contract_path)["validated"]
    assert verdict["routed_key"] == keys.validated_scoring_key("shop", verdict["version"])
    index = ledger.read_index(s3_store, "shop")
    assert verdict["version"] not in {v.id for v in ledger.training_set(index)}


def test_revalidate_gates_again_under_a_new_contract_version_and_a_failure_leaves_training(
    s3_env, s3_store, contract_path, tmp_path
):
    land(s3_store, "b1.parquet", batch_bytes(100, seed=1))
    (first,) = ingest_batch("shop", contract_path=contract_path)["validated"]
    assert ingest_batch("shop", contract_path=contract_path, revalidate=True)["validated"] == []
    stricter = make_contract(SPEC)
    features = list(stricter.features)
    features[0] = features[0].model_copy(update={"min": 1000.0, "max": 2000.0})  # nothing passes
    stricter = stricter.model_copy(update={"version": "2.0.0", "features": tuple(features)})
    path = tmp_path / "shop-v2.yaml"
    path.write_text(stricter.to_yaml(), encoding="utf-8")

    state = ingest_batch("shop", contract_path=str(path), revalidate=True, return_state=True)

    assert state.is_failed() and "range:num_00" in state.message
    index = ledger.read_index(s3_store, "shop")
    view = ledger.VersionView(index["versions"][first["version"]], True)
    assert view.status == "rejected" and view.validation["contract_version"] == "2.0.0"
    assert ledger.training_set(index) == []  # nothing deleted, but it no longer trains
    assert s3_store.exists(first["routed_key"])
