"""One training at a time however it starts: the global concurrency limit ``train_model`` holds.

Against the session's real Prefect API and the embedded local store. Every test uses a limit
name of its own, so slots and limits of other tests never interfere.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency

import tasks.registry
import tasks.training
from flows.train import train_model
from mlops_onprem import registry
from mlops_onprem.settings import get_settings
from mlops_onprem.store import open_store
from tasks.training_slot import TrainingSlotTimeoutError, ensure_training_limit, training_slot
from tests.fixtures.training import seed_validated

ROWS = 600  # the smallest training set the flow tests use is 800; logistic needs few rows
RENDEZVOUS_S = 3.0


@pytest.fixture
def limit_name(local_env, monkeypatch) -> str:
    """A fresh limit name (and limit 1) in the settings train_model reads."""
    name = f"test-training-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("MLOPS_TRAINING_CONCURRENCY_LIMIT_NAME", name)
    monkeypatch.setenv("MLOPS_TRAINING_CONCURRENCY_LIMIT", "1")
    get_settings.cache_clear()
    return name


def _set_timeout_minutes(monkeypatch, minutes: float) -> None:
    monkeypatch.setenv("MLOPS_TRAINING_SLOT_TIMEOUT_MINUTES", str(minutes))
    get_settings.cache_clear()


def _read_limit(name: str):
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name)


def test_the_limit_is_created_on_first_use_and_an_operators_value_is_kept(
        limit_name, monkeypatch, caplog):
    monkeypatch.setenv("MLOPS_TRAINING_CONCURRENCY_LIMIT", "2")
    get_settings.cache_clear()
    with get_client(sync_client=True) as client:
        assert limit_name not in {limit.name for limit in client.read_global_concurrency_limits(
            limit=200)}
    with training_slot("demo") as slot:
        assert (slot.name, slot.limit) == (limit_name, 2)
        created = _read_limit(limit_name)
        assert (created.limit, created.active, created.active_slots) == (2, True, 1)
    assert _read_limit(limit_name).active_slots == 0  # released on the way out

    # an operator resized it (UI / prefect gcl update): the setting does not fight back
    with get_client(sync_client=True) as client:
        other = f"{limit_name}-ops"
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=other, limit=3))
    caplog.set_level("INFO")
    assert ensure_training_limit(other, 1).limit == 3
    assert _read_limit(other).limit == 3
    assert "keeping the operator's value" in caplog.text


def test_a_held_slot_makes_training_wait_then_fail_clearly_and_register_nothing(
        limit_name, monkeypatch):
    store = open_store()
    seed_validated(store, rows=ROWS)
    ensure_training_limit(limit_name, 1)
    _set_timeout_minutes(monkeypatch, 0.02)  # 1.2 s
    with concurrency(limit_name, occupy=1, strict=True):  # someone else is training
        started = time.monotonic()
        with pytest.raises(TrainingSlotTimeoutError) as info:
            train_model(dataset="demo", model_name="demo", spec="logistic")
        assert time.monotonic() - started >= 1.0
    message = str(info.value)
    for part in (repr(limit_name), "limit 1", "1.2 s", "MLOPS_TRAINING_SLOT_TIMEOUT_MINUTES",
                 f"prefect gcl inspect {limit_name}", "nothing was trained or registered"):
        assert part in message
    assert registry.list_versions(store, "demo") == []

    # the other holder finishes after ~2 s while this training waits for it
    _set_timeout_minutes(monkeypatch, 1.0)
    holding = threading.Event()

    def other_training() -> None:
        with concurrency(limit_name, occupy=1, strict=True):
            holding.set()
            time.sleep(2.0)

    holder = threading.Thread(target=other_training)
    holder.start()
    assert holding.wait(30)
    result = train_model(dataset="demo", model_name="demo", spec="logistic")
    holder.join()
    assert result["version"] == 1 and result["promoted"] is True
    slot = result["training_slot"]
    assert (slot["name"], slot["limit"]) == (limit_name, 1)
    assert 1.0 <= slot["waited_seconds"] < 60  # most of the other's 2 s, plus polling
    assert [v.version for v in registry.list_versions(store, "demo")] == [1]


def test_two_trainings_started_together_never_overlap(limit_name, monkeypatch):
    """The held intervals (first training step to promotion decision) do not intersect.

    Each training, once in its body, waits up to RENDEZVOUS_S for the other to get there too:
    without the slot both would (they overlap and meet), with it the first waits alone.
    """
    store = open_store()
    seed_validated(store, rows=ROWS)
    intervals: dict[str, list[float]] = {}
    met: list[str] = []
    rendezvous = threading.Barrier(2, timeout=RENDEZVOUS_S)
    real_train, real_promote = tasks.training.train_candidate, tasks.registry.promote_if_better

    def spy_train(store, *, model_name, **kwargs):
        intervals[model_name] = [time.monotonic()]
        try:
            rendezvous.wait()
            met.append(model_name)
        except threading.BrokenBarrierError:  # alone in the body: the expected case
            pass
        return real_train(store, model_name=model_name, **kwargs)

    def spy_promote(store, model_name, *args, **kwargs):
        try:
            return real_promote(store, model_name, *args, **kwargs)
        finally:
            intervals[model_name].append(time.monotonic())

    monkeypatch.setattr(tasks.training, "train_candidate", spy_train)
    monkeypatch.setattr(tasks.registry, "promote_if_better", spy_promote)
    results: dict[str, dict] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(model_name: str) -> None:
        try:
            barrier.wait()
            results[model_name] = train_model(dataset="demo", model_name=model_name,
                                              spec="logistic")
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("alpha", "beta")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == [] and set(results) == {"alpha", "beta"}
    assert met == [], "both trainings were in their body at the same time"
    (first_start, first_end), (second_start, second_end) = sorted(intervals.values())
    assert first_end <= second_start, f"trainings overlapped: {intervals}"
    waits = sorted(result["training_slot"]["waited_seconds"] for result in results.values())
    # the second asked for the slot while the first held it, and got it only afterwards
    assert waits[0] < 5 and waits[1] > 0, waits
    assert second_start - waits[1] < first_end, (waits, intervals)
