"""Retrain debounce: one claim per cooldown, none while running, idempotent triggers, storms."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from mlops_onprem.retrain_control import (
    RetrainControlError,
    claim_retrain,
    finish_retrain,
    idempotency_key,
    read_retrain_state,
    retrain_pointer_key,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
COOLDOWN = 60.0


def test_pointer_lives_under_control_retrain():
    assert retrain_pointer_key("demo") == "control/retrain/demo.json"


def test_first_claim_is_granted_and_marks_the_model_running(local_store):
    claim = claim_retrain(local_store, "demo", champion_version=1, cooldown_minutes=COOLDOWN,
                          trigger={"report": "monitoring/demo/r1/report.json"}, now=T0)
    assert claim.granted and claim.claim_id
    state = read_retrain_state(local_store, "demo")
    assert state["state"] == "running" and state["idempotency_key"] == claim.idempotency_key
    assert state["trigger"] == {"report": "monitoring/demo/r1/report.json"}


def test_no_second_retrain_while_one_is_running_even_after_the_cooldown(local_store):
    claim_retrain(local_store, "demo", champion_version=1, cooldown_minutes=COOLDOWN, now=T0)
    later = claim_retrain(local_store, "demo", champion_version=1, cooldown_minutes=COOLDOWN,
                          now=T0 + timedelta(minutes=90))
    assert not later.granted and "already running" in later.reason


def test_a_stale_running_claim_does_not_block_forever(local_store):
    claim_retrain(local_store, "demo", champion_version=1, cooldown_minutes=COOLDOWN, now=T0)
    takeover = claim_retrain(local_store, "demo", champion_version=1, cooldown_minutes=COOLDOWN,
                             now=T0 + timedelta(hours=7), stale_after_minutes=360)
    assert takeover.granted


def test_cooldown_refuses_then_allows_after_the_window(local_store):
    first = claim_retrain(local_store, "demo", champion_version=1, cooldown_minutes=COOLDOWN, now=T0)
    finish_retrain(local_store, first, {"promoted": True, "version": 2}, now=T0 + timedelta(minutes=5))
    assert read_retrain_state(local_store, "demo")["state"] == "idle"
    early = claim_retrain(local_store, "demo", champion_version=2, cooldown_minutes=COOLDOWN,
                          now=T0 + timedelta(minutes=30))
    assert not early.granted and "cooldown" in early.reason
    late = claim_retrain(local_store, "demo", champion_version=2, cooldown_minutes=COOLDOWN,
                         now=T0 + timedelta(minutes=61))
    assert late.granted


def test_the_same_trigger_is_claimed_once_even_without_cooldown_guard(local_store):
    first = claim_retrain(local_store, "demo", champion_version=1, cooldown_minutes=COOLDOWN, now=T0)
    finish_retrain(local_store, first, {"promoted": False})
    # same model, same champion, same window: same idempotency key -> refused
    again = claim_retrain(local_store, "demo", champion_version=1, cooldown_minutes=COOLDOWN,
                          now=T0 + timedelta(seconds=1))
    assert not again.granted
    assert again.idempotency_key == first.idempotency_key


def test_idempotency_key_changes_with_champion_and_window_only():
    base = idempotency_key("demo", 1, T0, COOLDOWN)
    assert idempotency_key("demo", 1, T0 + timedelta(minutes=1), COOLDOWN) == base
    assert idempotency_key("demo", 2, T0, COOLDOWN) != base
    assert idempotency_key("demo", 1, T0 + timedelta(minutes=COOLDOWN), COOLDOWN) != base
    assert idempotency_key("other", 1, T0, COOLDOWN) != base


def test_finishing_a_refused_claim_is_an_error(local_store):
    claim_retrain(local_store, "demo", champion_version=1, cooldown_minutes=COOLDOWN, now=T0)
    refused = claim_retrain(local_store, "demo", champion_version=1, cooldown_minutes=COOLDOWN, now=T0)
    with pytest.raises(RetrainControlError, match="not granted"):
        finish_retrain(local_store, refused, {})


@pytest.mark.parametrize("n_threads", [16])
def test_storm_of_drifted_monitoring_runs_gives_exactly_one_retrain_per_cooldown(store, n_threads):
    """Many monitors decide "drift" at once, in two cooldown windows: one claim per window."""
    outcomes: list[tuple[int, bool]] = []
    lock = threading.Lock()

    def monitor_run(window: int, barrier: threading.Barrier) -> None:
        now = T0 + timedelta(minutes=window * (COOLDOWN + 1))
        barrier.wait()
        claim = claim_retrain(store, "demo", champion_version=1, cooldown_minutes=COOLDOWN, now=now)
        if claim.granted:
            finish_retrain(store, claim, {"promoted": False}, now=now + timedelta(minutes=1))
        with lock:
            outcomes.append((window, claim.granted))

    for window in (0, 1):
        barrier = threading.Barrier(n_threads)
        threads = [threading.Thread(target=monitor_run, args=(window, barrier))
                   for _ in range(n_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    granted = [w for w, ok in outcomes if ok]
    assert len(outcomes) == 2 * n_threads
    assert sorted(granted) == [0, 1]


def test_a_drift_episode_answered_by_a_retrain_does_not_retrain_again(local_store):
    trigger = {"rules_fired": ["feature_share"], "drifted_features": ["num_00", "num_01"],
               "report_key": "monitoring/demo/r1/report.json"}
    first = claim_retrain(local_store, "demo", champion_version=1, cooldown_minutes=COOLDOWN,
                          trigger=trigger, now=T0)
    finish_retrain(local_store, first, {"version": 2, "promoted": True}, now=T0)
    later = T0 + timedelta(days=1)  # long after the cooldown
    same = claim_retrain(local_store, "demo", champion_version=2, cooldown_minutes=COOLDOWN,
                         trigger={**trigger, "drifted_features": ["num_01"]}, now=later)
    assert not same.granted and "already answered" in same.reason and "version 2" in same.reason
    other = claim_retrain(local_store, "demo", champion_version=2, cooldown_minutes=COOLDOWN,
                          trigger={**trigger, "drifted_features": ["num_05"]}, now=later)
    assert other.granted  # drift on other features is a new episode
    finish_retrain(local_store, other, {"version": 3, "promoted": False}, now=later)
    quality = claim_retrain(local_store, "demo", champion_version=2, cooldown_minutes=COOLDOWN,
                            trigger={"rules_fired": ["feature_share", "quality_drop"],
                                     "drifted_features": ["num_05"]}, now=later + timedelta(days=1))
    assert quality.granted  # labels say the model got worse: retrain again


def test_a_clean_window_or_another_rule_starts_a_new_episode(local_store):
    from mlops_onprem.retrain_control import close_episode, episode_already_handled

    trigger = {"rules_fired": ["feature_share", "prediction_drift"], "drifted_features": ["num_00"]}
    first = claim_retrain(local_store, "demo", champion_version=1, cooldown_minutes=0,
                          trigger=trigger, now=T0)
    last = finish_retrain(local_store, first, {"version": 2, "promoted": True}, now=T0)
    assert episode_already_handled(last, {"rules_fired": ["prediction_drift"], "drifted_features": []})
    assert episode_already_handled(last, {"rules_fired": [], "drifted_features": []}) is None
    assert episode_already_handled(
        {**last, "trigger": {"rules_fired": ["feature_share"], "drifted_features": ["num_00"]}},
        {"rules_fired": ["prediction_drift"], "drifted_features": []}) is None  # a new rule
    assert close_episode(local_store, "demo", report_key="monitoring/demo/clean/report.json", now=T0)
    again = claim_retrain(local_store, "demo", champion_version=2, cooldown_minutes=0,
                          trigger=trigger, now=T0 + timedelta(days=2))
    assert again.granted  # the clean window in between ended the episode
