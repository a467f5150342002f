"""The scoring manifest: deterministic names, stored format, stale-part pruning, the gate."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mlops_onprem import keys
from mlops_onprem.manifest import (
    FailedPartition,
    ManifestError,
    ManifestInput,
    ManifestOutput,
    ScoringManifest,
    ScoringRunFailedError,
    build_manifest,
    derive_run_id,
    find_manifest,
    list_manifest_keys,
    manifest_from_results,
    part_name_for,
    prune_stale_parts,
    raise_if_failed,
    read_manifest,
    write_manifest,
)
from mlops_onprem.scoring import CorruptPartitionError


def test_run_id_is_deterministic_order_independent_and_tracks_input_and_model() -> None:
    listing = [("validated/demo/a.parquet", "e1"), ("validated/demo/b.parquet", "e2")]
    run_id = derive_run_id("demo", 1, listing)
    assert run_id == derive_run_id("demo", 1, list(reversed(listing)))
    assert keys.validate_name(run_id, "run id") == run_id
    assert derive_run_id("demo", 2, listing) != run_id
    assert derive_run_id("demo", 1, [listing[0], ("validated/demo/b.parquet", "e3")]) != run_id
    assert derive_run_id("demo", 1, listing[:1]) != run_id


def test_part_name_depends_on_input_key_and_etag_only() -> None:
    name = part_name_for("validated/demo/a.parquet", "e1")
    assert name == part_name_for("validated/demo/a.parquet", "e1")
    assert name != part_name_for("validated/demo/a.parquet", "e2")
    assert name != part_name_for("validated/demo/b.parquet", "e1")
    assert name.endswith(".parquet") and keys.validate_name(name) == name


def _manifest(outputs: list[ManifestOutput], failed: list[FailedPartition] | None = None) -> ScoringManifest:
    return build_manifest(
        model_name="demo", model_version=2, run_id="run-x",
        inputs=[ManifestInput(o.input_key, "etag", "sha", o.rows) for o in outputs],
        outputs=outputs, failed_partitions=failed or [], timings={"wall_s": 1.5},
        contract_dataset="demo", contract_version="1.0.0",
        created_at=datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
    )


def _output(store, name: str, rows: int = 10) -> ManifestOutput:
    key = keys.prediction_part_key("demo", 2, "run-x", name)
    info = store.put_bytes(key, b"rows")
    return ManifestOutput(key=key, rows=rows, sha256=info.sha256, input_key=f"validated/demo/{name}")


def test_manifest_round_trips_in_the_documented_format(store) -> None:
    manifest = _manifest([_output(store, "p2.parquet"), _output(store, "p1.parquet", 5)])
    key = write_manifest(store, manifest)
    assert key == keys.scoring_manifest_key("demo", 2, "run-x")
    raw = store.get_json(key)
    assert raw["created_at"] == "2026-11-01T12:00:00Z"
    assert raw["status"] == "complete"
    assert set(raw["inputs"][0]) == {"key", "etag", "sha256", "rows", "version", "source_key"}
    assert set(raw["outputs"][0]) == {"key", "rows", "sha256", "input_key"}
    assert [o["input_key"] for o in raw["outputs"]] == ["validated/demo/p1.parquet",
                                                        "validated/demo/p2.parquet"]
    assert read_manifest(store, key) == manifest
    assert find_manifest(store, "demo", 2, "run-x") == manifest
    assert list_manifest_keys(store, "demo") == [key]


def test_a_complete_manifest_is_immutable_and_a_partial_one_is_replaced(store) -> None:
    part = _output(store, "p1.parquet")
    partial = _manifest([part], failed=[FailedPartition("validated/demo/p2.parquet", "boom")])
    write_manifest(store, partial)
    complete = _manifest([part])
    key = write_manifest(store, complete)  # a retry of the failed partition completes the run
    assert read_manifest(store, key) == complete
    before = store.get_bytes(key)
    with pytest.raises(ManifestError, match="already complete"):
        write_manifest(store, _manifest([part, _output(store, "p3.parquet")]))
    assert store.get_bytes(key) == before


def test_manifest_is_not_written_when_an_output_is_missing(store) -> None:
    ghost = ManifestOutput(keys.prediction_part_key("demo", 2, "run-x", "ghost.parquet"), 1, None,
                           "validated/demo/ghost.parquet")
    with pytest.raises(ManifestError, match="ghost.parquet"):
        write_manifest(store, _manifest([ghost]))
    assert find_manifest(store, "demo", 2, "run-x") is None


def test_prune_removes_unlisted_objects_under_the_run_prefix_only(store) -> None:
    kept = _output(store, "kept.parquet")
    stale = _output(store, "stale.parquet")
    elsewhere = keys.prediction_part_key("demo", 2, "run-other", "stale.parquet")
    store.put_bytes(elsewhere, b"x")
    assert prune_stale_parts(store, _manifest([kept])) == [stale.key]
    assert store.exists(kept.key) and not store.exists(stale.key) and store.exists(elsewhere)


def test_results_with_exceptions_become_failed_partitions_and_the_gate_raises() -> None:
    partitions = [{"key": "validated/demo/a.parquet", "etag": "e1", "size": 1},
                  {"key": "validated/demo/b.parquet", "etag": "e2", "size": 1}]
    results = [
        {"rows": 3, "output_key": "predictions/demo/1/run-x/part-a.parquet",
         "input_sha256": "s1", "output_sha256": "o1"},
        CorruptPartitionError("input partition 'validated/demo/b.parquet' is not readable"),
    ]
    manifest = manifest_from_results(
        model_name="demo", model_version=1, run_id="run-x", partitions=partitions,
        results=results, contract_dataset="demo", contract_version="1.0.0", timings={},
    )
    assert manifest.status == "partial" and manifest.rows == 3
    assert manifest.failed_partitions == [FailedPartition(
        "validated/demo/b.parquet",
        "CorruptPartitionError: input partition 'validated/demo/b.parquet' is not readable", "e2",
    )]
    with pytest.raises(ScoringRunFailedError, match="1 partition\\(s\\) failed.*b.parquet"):
        raise_if_failed(manifest)
    raise_if_failed(_manifest([]))  # nothing failed: the gate passes


def test_malformed_manifest_is_reported_not_half_parsed() -> None:
    with pytest.raises(ManifestError, match="malformed"):
        ScoringManifest.from_json({"model_name": "demo"})
