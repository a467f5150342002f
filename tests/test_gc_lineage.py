"""Retention (``mlops gc``, the ``gc`` flow) and lineage (``mlops lineage``) on a store the
flows filled: ingest, train, score, rescore, monitor."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from flows.gc import collect_garbage
from flows.ingest import ingest_batch
from flows.monitor import monitor_model
from flows.score import score_batch
from flows.train import train_model
from mlops_onprem import keys, ledger
from mlops_onprem.cli import main
from mlops_onprem.gc import RetentionPolicy, apply_gc, plan_gc
from mlops_onprem.landing import land_synthetic_batch
from mlops_onprem.lineage import model_lineage, prediction_lineage, row_lineage
from mlops_onprem.store import open_store
from mlops_onprem.synthetic import SyntheticSpec

pytestmark = pytest.mark.slow
SPEC = SyntheticSpec(dataset="demo")
NEVER_REMOVED = ("incoming/", "inbox/", "validated/", "validated-scoring/", "labels/", "ledger/")


@pytest.fixture
def lived_in_store(local_env):
    """Two training batches, a model, two scoring batches scored, one rescored, a monitoring run,
    one rejected batch, a failed training's staging leftover and a half-registered version."""
    store = open_store()
    for i in range(2):
        land_synthetic_batch(store, SPEC, batch_id=f"t{i}", rows=800, seed=i, start_row=i * 800)
    land_synthetic_batch(store, SPEC, batch_id="t-bad", rows=100, seed=9, start_row=5_000, corrupt=True)
    ingest_batch("demo", stage="training", fail_on_rejected=False)
    trained = train_model(dataset="demo", model_name="demo", spec="logistic", seed=1)
    for i in range(2):
        land_synthetic_batch(store, SPEC, batch_id=f"s{i}", rows=600, seed=20 + i,
                             start_row=10_000 + i * 600, for_scoring=True)
    first = score_batch(dataset="demo", model_name="demo")
    rescored = score_batch(dataset="demo", model_name="demo", mode="rescore")
    monitor_model(model_name="demo", dataset="demo", window_days=7, retrain=False)
    store.put_bytes(keys.model_staging_key("demo", "run-dead", "model.onnx"), b"half a model")
    store.put_json(keys.model_version_marker_key("demo", 9), {"version": 9})
    return store, trained, first, rescored


def test_gc_dry_run_lists_only_what_may_go_and_apply_removes_exactly_that(lived_in_store):
    store, trained, first, rescored = lived_in_store
    before = {info.key for info in store.list("")}
    later = datetime.now(UTC) + timedelta(days=400)
    plan = plan_gc(store, now=later)
    targets = {r.target for r in plan.removals}
    reasons = plan.by_reason()

    assert all(key.startswith(keys.predictions_run_prefix("demo", 1, first["run_id"]))
               for key in targets if key.startswith("predictions/"))  # the superseded run only
    assert first["manifest_key"] in targets and rescored["manifest_key"] not in targets
    assert "scoring run superseded by a rescore" in reasons
    assert keys.model_staging_key("demo", "run-dead", "model.onnx") in targets
    assert keys.model_version_marker_key("demo", 9) in targets
    assert any(t.startswith("quarantine/demo/") for t in targets)  # the rejected batch, old now
    assert not any(t.startswith(NEVER_REMOVED) for t in targets)
    champion = keys.model_version_prefix("demo", trained["version"])
    assert not any(t.startswith(champion) for t in targets)  # a kept model version, whole
    # the rescored run and the monitoring report of the open window stay however old
    assert not any(t.startswith(keys.predictions_run_prefix("demo", 1, rescored["run_id"])) for t in targets)
    assert not any(t.startswith("monitoring/") for t in targets)
    # ... with the window counts monitoring cached for that run
    cached = [k for k in before if k.startswith("monitoring/demo/profiles/")]
    assert cached and all(k.endswith(f"/{rescored['run_id']}.json") for k in cached)
    assert {info.key for info in store.list("")} == before  # a dry run deletes nothing

    freed = apply_gc(store, plan)
    after = {info.key for info in store.list("")}
    assert freed == plan.bytes and after == before - targets
    assert plan_gc(store, now=later).removals == []  # nothing left to remove: idempotent
    assert score_batch(dataset="demo", model_name="demo")["status"] == "nothing-new"  # still works


def test_gc_with_todays_clock_removes_nothing_young(lived_in_store):
    store, *_ = lived_in_store
    plan = plan_gc(store, policy=RetentionPolicy())
    assert plan.removals == []
    result = collect_garbage(dry_run=True)
    assert result["applied"] is False and result["removals"] == []


def test_lineage_traces_a_prediction_a_row_and_a_model_version(lived_in_store, capsys):
    store, trained, _first, rescored = lived_in_store
    part = rescored["output_keys"][0]
    chain = prediction_lineage(store, part)
    batch = chain["input_batch"]
    assert batch["landed_keys"][0].startswith("inbox/demo/s") and batch["status"] == "validated"
    assert store.get_json(batch["validation_result"])["success"] is True
    assert chain["scoring_run"]["run_id"] == rescored["run_id"]
    assert chain["model"]["version"] == trained["version"]
    training = chain["training_batches"]
    assert sorted(b["landed_keys"][0] for b in training) == ["incoming/demo/t0.parquet",
                                                             "incoming/demo/t1.parquet"]
    assert all(len(b["content_sha256"]) == 64 for b in training)

    row = row_lineage(store, "demo", "demo", 10_005)
    assert [p["prediction"]["part"] for p in row["predictions"]] == [
        next(o for o in rescored["output_keys"] if o in
             {p["prediction"]["part"] for p in row["predictions"]})]
    model = model_lineage(store, "demo", trained["version"])
    assert {r["run_id"] for r in model["scoring_runs"]} == {rescored["run_id"]}  # the pointers

    assert main(["lineage", part, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_batch"]["version"] == batch["version"]
    assert main(["lineage", "10005"]) == 0
    assert "incoming/demo/t0.parquet" in capsys.readouterr().out
    assert main(["lineage", f"demo@{trained['version']}"]) == 0
    assert main(["gc"]) == 0
    assert "would remove 0 object(s)" in capsys.readouterr().out
    assert main(["lineage", "predictions/demo/1/run-nope/part-x.parquet"]) == 2  # named, not a crash
    assert "run-nope" in capsys.readouterr().err
    index = ledger.read_index(store, "demo")
    assert all(v.status != "pending" for v in ledger.versions(index))
