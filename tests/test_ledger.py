"""The batch ledger (pure fold, CAS record on both backends) and the ledger-driven ingest gate."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_onprem import batch_gate, keys, ledger
from mlops_onprem.store.parquet import dataframe_to_parquet_bytes
from mlops_onprem.synthetic import SyntheticSpec, generate_batch, make_contract

SPEC = SyntheticSpec(dataset="shop", n_numeric=3, n_categorical=1)
SHA_A, SHA_B = "a" * 64, "b" * 64


def landed(key: str, etag: str, sha: str, stage: str = "scoring", at: str = "2026-01-01T00:00:00Z"):
    return ledger.landed_event(stage, key=key, etag=etag, sha256=sha, size=10,
                               partition_day=ledger.partition_date(key), at=at)


def test_same_bytes_under_two_keys_are_one_version_and_new_bytes_supersede_the_old():
    index = ledger.fold(ledger.empty_index("shop"), [
        landed("inbox/shop/a.parquet", "e1", SHA_A),
        landed("inbox/shop/sub/a.parquet", "e2", SHA_A),
    ])
    assert len(index["versions"]) == 1
    assert [v.id for v in ledger.pending(index, "scoring")] == [ledger.version_id("scoring", SHA_A)]
    index = ledger.fold(index, [landed("inbox/shop/a.parquet", "e3", SHA_B)])
    views = {v.id: v for v in ledger.versions(index)}
    assert views[ledger.version_id("scoring", SHA_A)].current  # still under sub/a.parquet
    index = ledger.fold(index, [landed("inbox/shop/sub/a.parquet", "e4", SHA_B)])
    views = {v.id: v for v in ledger.versions(index)}
    assert not views[ledger.version_id("scoring", SHA_A)].current
    assert views[ledger.version_id("scoring", SHA_B)].current


def test_applying_an_event_twice_changes_nothing():
    event = landed("inbox/shop/a.parquet", "e1", SHA_A)
    once = ledger.fold(ledger.empty_index("shop"), [event])
    assert ledger.fold(once, [event]) == once


def test_an_event_for_a_version_that_never_landed_is_refused():
    event = ledger.make_event("scored", "s-unknown", identity=("x",), model_name="m",
                              model_version=1, run_id="r", manifest_key="k", output_key="o",
                              rows=1, mode="new")
    with pytest.raises(ledger.LedgerError, match="unknown version s-unknown"):
        ledger.fold(ledger.empty_index("shop"), [event])


def test_scored_window_holds_each_version_once_and_respects_days():
    events = []
    for day in range(1, 6):
        sha = str(day) * 64
        key = f"inbox/shop/dt=2026-01-0{day}/b.parquet"
        vid = ledger.version_id("scoring", sha)
        events += [landed(key, f"e{day}", sha), ledger.make_event(
            "validated", vid, identity=("scoring", "1"), stage="scoring", contract_version="1",
            validated_key=f"validated-scoring/shop/{vid}.parquet", result_key="r")]
        for run in ("run-1", "run-2"):  # a forced rescore: the pointer moves, the window does not double
            events.append(ledger.make_event(
                "scored", vid, identity=("m", 1, run), model_name="m", model_version=1, run_id=run,
                manifest_key=f"{run}/m", output_key=f"{run}/{day}", rows=5, mode="new"))
    index = ledger.fold(ledger.empty_index("shop"), events)
    window = ledger.scored_window(index, "m@1", as_of="2026-01-04", last_days=3)
    assert [v.data_date for v in window] == ["2026-01-02", "2026-01-03", "2026-01-04"]
    assert all(v.scored_by("m@1")["run_id"] == "run-2" for v in window)
    assert len(ledger.scored_window(index, "m@1", last_batches=2)) == 2
    assert ledger.scored_window(index, "m@2") == []


def test_record_keeps_every_writer_and_rebuild_gives_the_same_index(store):
    first = [landed("inbox/shop/a.parquet", "e1", SHA_A)]
    second = [landed("inbox/shop/b.parquet", "e2", SHA_B)]
    ledger.record(store, "shop", first)
    index = ledger.record(store, "shop", second)
    assert len(index["versions"]) == 2
    assert ledger.record(store, "shop", second) == ledger.read_index(store, "shop")  # no-op
    rebuilt = ledger.rebuild_index(store, "shop")
    assert rebuilt["versions"] == index["versions"] and rebuilt["keys"] == index["keys"]


def test_record_survives_a_concurrent_writer(local_store):
    import threading

    def write(i: int) -> None:
        ledger.record(local_store, "shop", [landed(f"inbox/shop/{i}.parquet", f"e{i}", str(i) * 64)])

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ledger.read_index(local_store, "shop")["versions"]) == 8


def _gate_all(store, contract, stage="scoring"):
    index = ledger.read_index(store, "shop")
    index = ledger.record(store, "shop", batch_gate.discover_landings(store, "shop", stage, index))
    verdicts = []
    for view in ledger.pending(index, stage):
        verdict, _result, event = batch_gate.gate_version(store, contract, index, view)
        index = ledger.record(store, "shop", [event])
        verdicts.append(verdict)
    return index, {v.source_key: v for v in verdicts}


def test_scoring_gate_rejects_bad_values_formats_and_overlaps_and_validates_good_batches(store):
    contract = make_contract(SPEC)
    good = generate_batch(SPEC, 100, seed=1, start_row=0).drop(columns=["label"])
    bad = good.copy()
    bad.loc[3, "num_00"] = np.inf
    overlapping = generate_batch(SPEC, 50, seed=2, start_row=90).drop(columns=["label"])
    store.put_bytes("inbox/shop/dt=2026-01-01/good.parquet", dataframe_to_parquet_bytes(good))
    store.put_bytes("inbox/shop/dt=2026-01-01/copy.parquet", dataframe_to_parquet_bytes(good))
    store.put_bytes("inbox/shop/dt=2026-01-02/bad.parquet", dataframe_to_parquet_bytes(bad))
    store.put_bytes("inbox/shop/dt=2026-01-02/good.csv", good.to_csv(index=False).encode())
    index, verdicts = _gate_all(store, contract)

    assert len(verdicts) == 3  # good.parquet and copy.parquet are one version
    good_verdict = next(v for k, v in verdicts.items() if k.endswith(("good.parquet", "copy.parquet")))
    assert good_verdict.success and good_verdict.routed_key.startswith("validated-scoring/shop/")
    assert not verdicts["inbox/shop/dt=2026-01-02/bad.parquet"].success
    assert "range:num_00" in verdicts["inbox/shop/dt=2026-01-02/bad.parquet"].message
    csv = verdicts["inbox/shop/dt=2026-01-02/good.csv"]
    assert not csv.success and "format" in csv.message and "parquet" in csv.message
    assert store.exists(csv.routed_key)  # quarantined, not skipped

    store.put_bytes("inbox/shop/dt=2026-01-03/late.parquet", dataframe_to_parquet_bytes(overlapping))
    index, verdicts = _gate_all(store, contract)
    late = verdicts["inbox/shop/dt=2026-01-03/late.parquet"]
    assert not late.success and "row_key_overlap" in late.message and "10 row key(s)" in late.message
    # a second run finds nothing new: every version was decided once
    assert _gate_all(store, contract)[1] == {}
    assert ledger.pending(index, "scoring") == []


def test_a_malformed_partition_date_still_lands_dated_by_its_content(local_store):
    contract = make_contract(SPEC)
    batch = generate_batch(SPEC, 40, seed=4).drop(columns=["label"])
    local_store.put_bytes("inbox/shop/dt=2026-13-45/a.parquet", dataframe_to_parquet_bytes(batch))
    index, verdicts = _gate_all(local_store, contract)
    assert verdicts["inbox/shop/dt=2026-13-45/a.parquet"].success
    view = ledger.version_for_key(index, "inbox/shop/dt=2026-13-45/a.parquet")
    assert view.data_date == str(batch["event_time"].max())[:10]


def test_overlap_policy_keep_latest_validates_with_a_warning(local_store):
    contract = make_contract(SPEC).model_copy(update={"row_key_overlap": "keep_latest"})
    first = generate_batch(SPEC, 100, seed=1, start_row=0).drop(columns=["label"])
    second = generate_batch(SPEC, 50, seed=2, start_row=90).drop(columns=["label"])
    local_store.put_bytes("inbox/shop/a.parquet", dataframe_to_parquet_bytes(first))
    _gate_all(local_store, contract)
    local_store.put_bytes("inbox/shop/b.parquet", dataframe_to_parquet_bytes(second))
    _index, verdicts = _gate_all(local_store, contract)
    verdict = verdicts["inbox/shop/b.parquet"]
    assert verdict.success and any("row_key_overlap" in w for w in verdict.warnings)


def test_a_crash_before_the_verdict_event_leaves_the_version_pending(local_store):
    contract = make_contract(SPEC)
    batch = generate_batch(SPEC, 60, seed=3).drop(columns=["label"])
    local_store.put_bytes("inbox/shop/a.parquet", dataframe_to_parquet_bytes(batch))
    index = ledger.record(local_store, "shop",
                          batch_gate.discover_landings(local_store, "shop", "scoring",
                                                       ledger.read_index(local_store, "shop")))
    view = ledger.pending(index, "scoring")[0]
    batch_gate.gate_version(local_store, contract, index, view)  # routed, event never recorded
    assert [v.id for v in ledger.pending(ledger.read_index(local_store, "shop"), "scoring")] == [view.id]
    _index, verdicts = _gate_all(local_store, contract)
    assert verdicts["inbox/shop/a.parquet"].routed_key == keys.validated_scoring_key("shop", view.id)


def test_a_late_recorded_older_run_never_moves_the_pointer_back():
    index = ledger.empty_index("shop")
    landed = ledger.landed_event("scoring", key="inbox/shop/a.parquet", etag="e", sha256="a" * 64,
                                 size=1, partition_day=None, at="2026-01-01T00:00:00Z")
    vid = landed["version"]

    def scored(run: str, at: str) -> dict:
        return ledger.make_event("scored", vid, identity=("m", 1, run), at=at, model_name="m",
                                 model_version=1, run_id=run, manifest_key=f"{run}/m",
                                 output_key=f"{run}/p", rows=1, mode="new")

    index = ledger.fold(index, [landed, scored("new-run", "2026-01-03T00:00:00Z"),
                                scored("old-run", "2026-01-02T00:00:00Z")])
    view = ledger.VersionView(index["versions"][vid], True)
    assert view.scored_by("m@1")["run_id"] == "new-run"
    assert [s["run_id"] for s in view.state["scorings"]] == ["new-run", "old-run"]
