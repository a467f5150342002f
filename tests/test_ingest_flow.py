"""The ingest-batch flow against the moto S3 server: valid -> validated/, invalid -> quarantine/."""

from __future__ import annotations

import numpy as np
import pytest
from prefect.artifacts import Artifact

from flows.ingest import ingest_batch
from mlops_onprem import keys
from mlops_onprem.store.parquet import dataframe_to_parquet_bytes, get_dataframe
from mlops_onprem.synthetic import SyntheticSpec, generate_batch, make_contract

pytestmark = pytest.mark.s3

SPEC = SyntheticSpec(dataset="shop", n_numeric=3, n_categorical=1)


@pytest.fixture
def contract_path(tmp_path):
    path = tmp_path / "shop.yaml"
    path.write_text(make_contract(SPEC).to_yaml(), encoding="utf-8")
    return str(path)


def land(store, batch_id: str, data: bytes) -> str:
    key = keys.incoming_key("shop", batch_id)
    store.put_bytes(key, data)
    return key


def test_valid_batch_is_published_in_contract_order(s3_env, s3_store, contract_path):
    batch = generate_batch(SPEC, 200, seed=1)
    source = land(s3_store, "b1", dataframe_to_parquet_bytes(batch[batch.columns[::-1]]))

    validated = ingest_batch("shop", source, contract_path=contract_path)

    assert validated == keys.validated_key("shop", "b1")
    published = get_dataframe(s3_store, validated)
    assert list(published.columns) == make_contract(SPEC).input_columns(with_label=True)
    assert len(published) == 200
    assert s3_store.get_json(keys.validation_result_key("shop", "b1"))["success"] is True
    assert not list(s3_store.list(keys.quarantine_prefix("shop", "b1")))
    artifact = Artifact.get("validation-shop")
    assert artifact is not None and "PASSED" in artifact.data


def test_invalid_batch_is_quarantined_and_the_run_fails_naming_rules(s3_env, s3_store, contract_path):
    batch = generate_batch(SPEC, 200, seed=2)
    batch.loc[5, "num_00"] = np.inf
    batch.loc[7, "cat_00"] = "zulu"
    original = dataframe_to_parquet_bytes(batch)
    source = land(s3_store, "b2", original)

    state = ingest_batch("shop", source, contract_path=contract_path, return_state=True)

    assert state.is_failed()
    assert "range:num_00" in state.message and "categories:cat_00" in state.message
    assert "'num_00'" in state.message and "'cat_00'" in state.message
    quarantined = s3_store.get_bytes(keys.quarantine_data_key("shop", "b2", "b2.parquet"))
    assert quarantined == original
    assert s3_store.get_bytes(source) == original  # the landed object is untouched
    record = s3_store.get_json(keys.quarantine_result_key("shop", "b2"))
    assert record["success"] is False and record["blocking_failure_count"] == 2
    assert not s3_store.exists(keys.validated_key("shop", "b2"))
    artifact = Artifact.get("validation-shop")
    assert "FAILED" in artifact.data and "range:num_00" in artifact.data
    assert keys.validation_result_key("shop", "b2") in artifact.data


def test_truncated_upload_is_quarantined_with_a_clear_message(s3_env, s3_store, contract_path):
    data = dataframe_to_parquet_bytes(generate_batch(SPEC, 50, seed=3))
    source = land(s3_store, "b3", data[: len(data) - 100])

    state = ingest_batch("shop", source, batch_id="b3", contract_path=contract_path, return_state=True)

    assert state.is_failed() and "truncated" in state.message
    assert s3_store.exists(keys.quarantine_data_key("shop", "b3", "b3.parquet"))
    assert s3_store.exists(keys.quarantine_result_key("shop", "b3"))


def test_scoring_stage_rejects_a_batch_that_carries_the_label(s3_env, s3_store, contract_path):
    source = land(s3_store, "b4", dataframe_to_parquet_bytes(generate_batch(SPEC, 50, seed=4)))

    state = ingest_batch("shop", source, contract_path=contract_path, stage="scoring", return_state=True)

    assert state.is_failed() and "label_absent:label" in state.message and "leakage" in state.message
    unlabeled = land(s3_store, "b5", dataframe_to_parquet_bytes(
        generate_batch(SPEC, 50, seed=5, with_label=False)))
    assert ingest_batch("shop", unlabeled, contract_path=contract_path, stage="scoring") == \
        keys.validated_scoring_key("shop", "b5")
    assert not s3_store.exists(keys.validated_key("shop", "b5"))  # training never sees it
