"""Landing synthetic batches as an upstream system would (what is pending is the ledger's call:
tests/test_ledger.py)."""

from __future__ import annotations

from mlops_onprem import keys
from mlops_onprem.landing import land_synthetic_batch
from mlops_onprem.synthetic import LABEL, SyntheticSpec

SPEC = SyntheticSpec(dataset="demo")


def test_scoring_batches_land_unlabelled_in_the_inbox_with_labels_apart(store):
    batch, labels = land_synthetic_batch(store, SPEC, batch_id="s1", rows=30, seed=4,
                                         start_row=0, for_scoring=True)
    from mlops_onprem.store.parquet import get_dataframe

    assert batch.key == keys.scoring_inbox_key("demo", "s1")
    assert LABEL not in get_dataframe(store, batch.key).columns
    assert list(get_dataframe(store, labels.key).columns) == ["row_id", LABEL]
