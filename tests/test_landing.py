"""Which landed batches still wait for the gate: a batch is done only once it was routed."""

from __future__ import annotations

from mlops_onprem import keys
from mlops_onprem.landing import land_synthetic_batch, pending_batch_keys
from mlops_onprem.synthetic import LABEL, SyntheticSpec

SPEC = SyntheticSpec(dataset="demo")


def test_new_batches_are_pending_until_validated_or_quarantined(store):
    a, _ = land_synthetic_batch(store, SPEC, batch_id="a", rows=20, seed=1, start_row=0)
    b, _ = land_synthetic_batch(store, SPEC, batch_id="b", rows=20, seed=2, start_row=20)
    c, _ = land_synthetic_batch(store, SPEC, batch_id="c", rows=20, seed=3, start_row=40)
    assert pending_batch_keys(store, "demo") == [a.key, b.key, c.key]

    store.copy(a.key, keys.validated_key("demo", "a"))
    store.put_json(keys.quarantine_result_key("demo", "b"), {"success": False})
    assert pending_batch_keys(store, "demo") == [c.key]


def test_a_batch_whose_routing_was_interrupted_stays_pending(store):
    landed, _ = land_synthetic_batch(store, SPEC, batch_id="x", rows=20, seed=1, start_row=0)
    # the validation result exists but the run died before the data was routed
    store.put_json(keys.validation_result_key("demo", "x"), {"success": False})
    assert pending_batch_keys(store, "demo") == [landed.key]


def test_scoring_batches_land_unlabelled_in_the_inbox_with_labels_apart(store):
    batch, labels = land_synthetic_batch(store, SPEC, batch_id="s1", rows=30, seed=4,
                                         start_row=0, for_scoring=True)
    from mlops_onprem.store.parquet import get_dataframe

    assert batch.key == keys.scoring_inbox_key("demo", "s1")
    assert LABEL not in get_dataframe(store, batch.key).columns
    assert list(get_dataframe(store, labels.key).columns) == ["row_id", LABEL]
    assert pending_batch_keys(store, "demo") == []  # the inbox is not the training landing
