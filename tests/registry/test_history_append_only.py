"""History is never rewritten: not by any registry operation, and not through any store write path.

The registry's history events and the batch ledger's events are append-only records: each is
written once with a create-only pointer write. Every registry decision below must only add
objects (earlier ones byte-identical), and every way a caller could write or delete such a key
(put, put_json, put_file, copy onto it, delete, a pointer update, a second create) is refused on
both stores, leaving the record as it was.
"""

from __future__ import annotations

import pytest

from mlops_onprem import challenger, keys, registry
from mlops_onprem.errors import ImmutableObjectError, PointerConflictError
from mlops_onprem.store.base import ObjectStore
from tests.fixtures.training import register_small, seed_validated, small_spec


def _records(store: ObjectStore, prefix: str) -> dict[str, bytes]:
    return {info.key: store.get_bytes(info.key) for info in store.list(prefix)}


def _ledger_events(store: ObjectStore) -> dict[str, bytes]:
    return _records(store, keys.ledger_events_prefix("demo"))


@pytest.mark.slow
def test_every_registry_decision_only_appends_to_the_history(local_store):
    store = local_store
    contract = seed_validated(store)
    ledger_before = _ledger_events(store)
    assert ledger_before  # the gate recorded landed/validated events
    v1 = register_small(store, contract)
    v2 = register_small(store, contract, run_id="run-2", spec=small_spec("logistic", seed=7))
    v3 = register_small(store, contract, run_id="run-3", spec=small_spec("logistic", seed=8))

    operations = [
        ("gate promotes v1", lambda: registry.promote_if_better(store, "demo", v1.version)),
        ("gate rejects v2", lambda: registry.promote_if_better(store, "demo", v2.version, margin=0.5,
                                                              raise_on_reject=False)),
        ("forced promotion of v2", lambda: registry.promote_if_better(store, "demo", v2.version,
                                                                     force=True)),
        ("rollback to v1", lambda: registry.rollback(store, "demo")),
        ("challenger v3 set", lambda: challenger.set_challenger(store, "demo", v3.version)),
        ("challenger v2 replaces it", lambda: challenger.set_challenger(store, "demo", v2.version)),
        ("challenger cleared", lambda: challenger.clear_challenger(store, "demo")),
        ("rollback to v2", lambda: registry.rollback(store, "demo", to_version=v2.version)),
    ]
    seen: dict[str, bytes] = {}
    for name, operation in operations:
        operation()
        now = _records(store, keys.history_prefix("demo"))
        assert len(now) == len(seen) + 1, f"{name}: one new history event"
        assert {k: now[k] for k in seen} == seen, f"{name} rewrote an earlier history event"
        seen = now
    assert [e["action"] for e in registry.history(store, "demo")] == [
        "promoted", "rejected", "promoted", "rollback", "challenger_set", "challenger_set",
        "challenger_cleared", "rollback"]
    after = _ledger_events(store)
    assert {k: after[k] for k in ledger_before} == ledger_before  # training read, never rewrote


@pytest.mark.s3
def test_no_store_write_path_can_change_an_append_only_record(store, tmp_path):
    history_key = keys.history_key("demo", "20261205T000000000000Z-abcdef12")
    event_key = keys.ledger_event_key("demo", "v-0001", "landed-1")
    elsewhere = "scratch/forged.json"
    store.put_json(elsewhere, {"forged": True})
    forged_file = tmp_path / "forged.json"
    forged_file.write_bytes(b'{"forged": true}')

    for key in (history_key, event_key):
        created = store.write_pointer(key, {"action": "promoted"}, expected_token=None)
        original = store.get_bytes(key)
        attempts = {
            "put_bytes": lambda key=key: store.put_bytes(key, b"{}"),
            "put_json": lambda key=key: store.put_json(key, {"forged": True}),
            "put_file": lambda key=key: store.put_file(key, forged_file),
            "copy onto": lambda key=key: store.copy(elsewhere, key),
            "delete": lambda key=key: store.delete(key),
            "pointer update": lambda key=key, token=created.token: store.write_pointer(
                key, {"forged": True}, expected_token=token),
        }
        for path, attempt in attempts.items():
            with pytest.raises(ImmutableObjectError, match=f"refused on {key}") as caught:
                attempt()
            assert "never rewritten or deleted" in str(caught.value), path
        with pytest.raises(PointerConflictError):  # the one write path: create-only, once
            store.write_pointer(key, {"forged": True}, expected_token=None)
        assert store.get_bytes(key) == original

    # everything else stays writable and deletable
    store.put_json(elsewhere, {"rewritten": True})
    store.delete(elsewhere)
    assert not store.exists(elsewhere)


def test_append_only_keys_are_exactly_history_and_ledger_events():
    assert keys.append_only_kind(keys.history_key("demo", "e1")) == "registry history event"
    assert keys.append_only_kind(keys.ledger_event_key("demo", "v1", "e1")) == "ledger event"
    for key in (keys.alias_key("demo", "champion"), keys.ledger_index_key("demo"),
                keys.model_card_key("demo", 1), keys.control_key("retrain", "demo.json")):
        assert keys.append_only_kind(key) is None, key
