"""The store contract: every behaviour holds on both backends (local directory, S3 on loopback)."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest

from mlops_onprem.errors import (
    IntegrityError,
    InvalidKeyError,
    ObjectNotFoundError,
    PointerConflictError,
)
from mlops_onprem.store.base import sha256_bytes
from mlops_onprem.store.parquet import get_dataframe, put_dataframe


def test_put_then_get_bytes_round_trips_and_records_sha256(store):
    info = store.put_bytes("a/b/c.bin", b"hello")
    assert info.sha256 == sha256_bytes(b"hello")
    assert store.get_bytes("a/b/c.bin") == b"hello"
    assert store.stat("a/b/c.bin").sha256 == sha256_bytes(b"hello")
    assert store.stat("a/b/c.bin").size == 5


def test_overwrite_replaces_content(store):
    store.put_bytes("k", b"one")
    store.put_bytes("k", b"two")
    assert store.get_bytes("k") == b"two"


def test_missing_object_raises_not_found_naming_the_key(store):
    with pytest.raises(ObjectNotFoundError, match="nope/missing.bin"):
        store.get_bytes("nope/missing.bin")
    with pytest.raises(ObjectNotFoundError, match="nope/missing.bin"):
        store.stat("nope/missing.bin")
    assert not store.exists("nope/missing.bin")


def test_exists_and_delete(store):
    store.put_bytes("x/y", b"1")
    assert store.exists("x/y")
    store.delete("x/y")
    assert not store.exists("x/y")
    store.delete("x/y")  # deleting a missing key is not an error


def test_list_by_prefix_is_recursive_sorted_and_exact(store):
    for key in ["p/b.txt", "p/a.txt", "p/sub/c.txt", "q/d.txt", "pp/e.txt"]:
        store.put_bytes(key, key.encode())
    assert [o.key for o in store.list("p/")] == ["p/a.txt", "p/b.txt", "p/sub/c.txt"]
    assert [o.key for o in store.list("p")] == ["p/a.txt", "p/b.txt", "p/sub/c.txt", "pp/e.txt"]
    assert [o.key for o in store.list("none/")] == []
    sizes = {o.key: o.size for o in store.list("q/")}
    assert sizes == {"q/d.txt": len(b"q/d.txt")}


@pytest.mark.parametrize("bad_key", [
    "", "/etc/passwd", "../escape", "a/../../b", "a//b", "a/./b", "a/", "tab\there", "nul\x00",
    "back\\slash", "C:/windows",
])
def test_invalid_keys_are_rejected_before_any_io(store, bad_key):
    with pytest.raises(InvalidKeyError):
        store.put_bytes(bad_key, b"x")
    with pytest.raises(InvalidKeyError):
        store.get_bytes(bad_key)


def test_local_backend_cannot_write_outside_its_root(local_store, tmp_path):
    with pytest.raises(InvalidKeyError):
        local_store.put_bytes("../../outside.txt", b"x")
    assert not (tmp_path / "outside.txt").exists()
    assert not any(p.name == "outside.txt" for p in tmp_path.rglob("*"))


def test_streaming_file_round_trip_verifies_sha256(store, tmp_path: Path):
    source = tmp_path / "big.bin"
    payload = bytes(range(256)) * (24 * 1024 * 4)  # 24 MiB: multipart on S3 (16 MiB parts)
    source.write_bytes(payload)
    info = store.put_file("files/big.bin", source)
    assert info.size == len(payload)
    assert store.stat("files/big.bin").sha256 == sha256_bytes(payload)
    target = tmp_path / "out" / "big.bin"
    store.get_file("files/big.bin", target)
    assert target.read_bytes() == payload


def test_dataframe_parquet_round_trip(store):
    df = pd.DataFrame({"id": [1, 2, 3], "x": [0.5, float("nan"), 2.0], "c": ["a", "b", None]})
    put_dataframe(store, "frames/df.parquet", df)
    back = get_dataframe(store, "frames/df.parquet")
    pd.testing.assert_frame_equal(back, df, check_dtype=False)


def test_tampered_local_object_fails_sha256_verification(local_store):
    local_store.put_bytes("t/obj", b"original")
    local_store.blob_path("t/obj").write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="t/obj"):
        local_store.get_bytes("t/obj")


def test_pointer_create_read_update(store):
    assert store.read_pointer("ptr/champion.json") is None
    created = store.write_pointer("ptr/champion.json", {"version": 1}, expected_token=None)
    read = store.read_pointer("ptr/champion.json")
    assert read.value == {"version": 1} and read.token == created.token
    updated = store.write_pointer("ptr/champion.json", {"version": 2}, expected_token=read.token)
    assert store.read_pointer("ptr/champion.json").value == {"version": 2}
    assert updated.token != created.token


def test_pointer_create_fails_when_it_already_exists(store):
    store.write_pointer("ptr/p.json", {"v": 1}, expected_token=None)
    with pytest.raises(PointerConflictError, match="ptr/p.json"):
        store.write_pointer("ptr/p.json", {"v": 2}, expected_token=None)
    assert store.read_pointer("ptr/p.json").value == {"v": 1}


def test_pointer_write_with_stale_token_is_refused(store):
    first = store.write_pointer("ptr/q.json", {"v": 1}, expected_token=None)
    store.write_pointer("ptr/q.json", {"v": 2}, expected_token=first.token)
    with pytest.raises(PointerConflictError, match="another writer won the race"):
        store.write_pointer("ptr/q.json", {"v": 3}, expected_token=first.token)
    assert store.read_pointer("ptr/q.json").value == {"v": 2}


def test_pointer_race_has_exactly_one_winner(store):
    base = store.write_pointer("ptr/race.json", {"v": 0}, expected_token=None)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def contender(i: int) -> None:
        barrier.wait()
        try:
            store.write_pointer("ptr/race.json", {"v": i}, expected_token=base.token)
            outcomes.append(f"won:{i}")
        except PointerConflictError:
            outcomes.append("lost")

    threads = [threading.Thread(target=contender, args=(i + 1,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1, outcomes
    assert store.read_pointer("ptr/race.json").value == {"v": int(winners[0].split(":")[1])}


def test_local_backend_keeps_the_old_object_when_a_write_dies_before_its_commit(local_store):
    local_store.put_bytes("c/obj", b"version one")
    # a writer that crashed after landing its blob but before the metadata rename (the commit)
    (local_store.root / "objects" / "c" / "obj~deadbeef").write_bytes(b"version two, half")
    assert local_store.get_bytes("c/obj") == b"version one"
    assert local_store.stat("c/obj").size == len(b"version one")


def test_a_key_and_a_longer_key_under_it_can_coexist_as_on_s3(store):
    store.put_bytes("a", b"short")
    store.put_bytes("a/b", b"long")
    assert store.get_bytes("a") == b"short" and store.get_bytes("a/b") == b"long"
    assert [o.key for o in store.list("a")] == ["a", "a/b"]


def test_overwrite_and_delete_leave_no_stale_blobs(local_store):
    local_store.put_bytes("d/obj", b"1")
    local_store.put_bytes("d/obj", b"2")
    blobs = [p for p in (local_store.root / "objects").rglob("*") if p.is_file()]
    assert [p.name.split("~")[0] for p in blobs] == ["obj"]
    local_store.delete("d/obj")
    assert [p for p in (local_store.root / "objects").rglob("*") if p.is_file()] == []
