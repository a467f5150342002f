"""The end-to-end pipeline flow: rejections are quarantined and reported, other failures stop it."""

from __future__ import annotations

import pytest

from flows.pipeline import run_pipeline
from mlops_onprem import keys, ledger
from mlops_onprem.errors import ContractError
from mlops_onprem.landing import land_synthetic_batch
from mlops_onprem.store import open_store
from mlops_onprem.synthetic import SyntheticSpec
from mlops_onprem.validation import BatchRejectedError


def test_a_failure_that_is_not_a_verdict_stops_the_pipeline_instead_of_counting_as_quarantine(local_env):
    store = open_store()
    land_synthetic_batch(store, SyntheticSpec(dataset="nocontract"), batch_id="b1", rows=50,
                         seed=1, start_row=0)
    with pytest.raises(ContractError, match="nocontract"):
        run_pipeline(dataset="nocontract", model_name="nocontract", train=False, score=False)
    assert not list(store.list("quarantine/"))


def test_a_rejected_batch_is_quarantined_and_the_run_fails_after_the_good_ones(local_env):
    store = open_store()
    spec = SyntheticSpec(dataset="demo")
    good, _ = land_synthetic_batch(store, spec, batch_id="good", rows=200, seed=1, start_row=0)
    bad, _ = land_synthetic_batch(store, spec, batch_id="bad", rows=50, seed=2, start_row=200,
                                  corrupt=True)
    with pytest.raises(BatchRejectedError, match="incoming/demo/bad.parquet"):
        run_pipeline(dataset="demo", model_name="demo", train=False, score=False)
    index = ledger.read_index(store, "demo")
    assert store.exists(keys.validated_key("demo", ledger.version_for_key(index, good.key).id))
    rejected = ledger.version_for_key(index, bad.key)
    assert rejected.status == "rejected" and store.exists(rejected.validation["quarantine_key"])
