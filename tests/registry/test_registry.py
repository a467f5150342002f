"""The model registry in the object store: versions, aliases, promotion gate, history, rollback."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlops_onprem import keys, registry
from mlops_onprem.cli import main as cli_main
from mlops_onprem.onnx_export import ParityError, ParityResult
from mlops_onprem.onnx_io import create_session, read_metadata
from mlops_onprem.reference_profile import ReferenceProfile
from mlops_onprem.registry import (
    ModelIntegrityError,
    ModelNotFoundError,
    PromotionConflictError,
    PromotionRejectedError,
)
from mlops_onprem.store import open_store
from mlops_onprem.training import train_candidate
from tests.fixtures.training import register_small, seed_validated, small_spec


class PauseOnAliasRead:
    """Delegates to a real store; the first read of the alias by each racer waits until all
    racers have read it, so concurrent promotions are guaranteed to start from the same champion."""

    def __init__(self, inner, alias_key: str, racers: int) -> None:
        self._inner, self._alias_key = inner, alias_key
        self._barrier = threading.Barrier(racers)
        self._paused = threading.local()

    def read_pointer(self, key):
        pointer = self._inner.read_pointer(key)
        if key == self._alias_key and not getattr(self._paused, "done", False):
            self._paused.done = True
            self._barrier.wait(timeout=60)
        return pointer

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_register_resolve_and_load_a_model_version(store):
    contract = seed_validated(store)
    mv = register_small(store, contract)
    assert mv.version == 1 and mv.onnx_key == keys.model_onnx_key("demo", 1)
    assert registry.resolve(store, "demo", 1).card == mv.card
    assert registry.resolve(store, "demo", "1").version == 1
    data = registry.load_onnx_bytes(store, mv)
    meta = read_metadata(create_session(data))
    assert meta.model_version == "1" and meta.feature_names == contract.feature_names
    card = mv.card
    assert card["lineage"]["seed"] == 42 and card["lineage"]["flow_run_id"] == "test-run"
    code = card["lineage"]["code_version"]
    assert code == "unknown" or re.fullmatch(r"[0-9a-f]{7,40}(-dirty)?", code), code
    assert "scikit-learn" in card["lineage"]["packages"]
    assert card["data"]["sha256"] == meta.training_data_sha256
    assert card["contract"]["version"] == contract.version
    assert card["parity"]["passed"] is True
    for role in ("onnx", "native", "contract", "eval", "reference_profile", "card_md"):
        assert store.exists(card["files"][role]["key"]), role
    profile = ReferenceProfile.from_dict(store.get_json(keys.reference_profile_key("demo", 1)))
    assert sorted(profile.feature_names) == sorted(contract.feature_names)
    assert profile.n_rows == card["data"]["rows"]  # every training row, train and holdout
    assert store.get_bytes(card["files"]["native"]["key"])  # skops / xgboost JSON, not pickle
    assert not list(store.list(keys.model_staging_prefix("demo", "run-1")))


def test_versions_only_grow_and_concurrent_allocations_never_collide(local_store):
    with ThreadPoolExecutor(max_workers=4) as pool:
        numbers = list(pool.map(lambda i: registry.allocate_version(local_store, "demo"), range(12)))
    assert sorted(numbers) == list(range(1, 13))
    contract = seed_validated(local_store)
    assert register_small(local_store, contract).version == 13


def test_registration_is_refused_when_parity_failed(local_store):
    contract = seed_validated(local_store)
    candidate = train_candidate(local_store, dataset="demo", contract=contract, spec=small_spec(),
                                model_name="demo", run_id="r")
    failed = ParityResult(False, 10, 0.1, 0.1, 1e-5, 0, 3, 0.0)
    with pytest.raises(ParityError, match="registration refused"):
        registry.register_candidate(local_store, candidate, contract, failed)
    assert registry.list_versions(local_store, "demo") == []


def test_resolve_without_champion_or_version_raises_a_clear_error(local_store):
    with pytest.raises(ModelNotFoundError, match="has no 'champion' alias"):
        registry.resolve(local_store, "demo")
    with pytest.raises(ModelNotFoundError, match="has no version 4"):
        registry.resolve(local_store, "demo", 4)


def test_tampered_onnx_file_is_refused_at_load(local_store):
    mv = register_small(local_store, seed_validated(local_store))
    local_store.put_bytes(mv.onnx_key, b"not the registered model")
    with pytest.raises(ModelIntegrityError, match="card.json records"):
        registry.load_onnx_bytes(local_store, mv)


def test_first_model_becomes_champion_and_a_worse_one_is_rejected_with_both_scores(local_store):
    contract = seed_validated(local_store)
    first = register_small(local_store, contract)
    decision = registry.promote_if_better(local_store, "demo", first.version)
    assert decision.promoted and decision.reason == "no champion yet"
    second = register_small(local_store, contract, run_id="run-2")
    with pytest.raises(PromotionRejectedError, match="is not above margin 0.5") as info:
        registry.promote_if_better(local_store, "demo", second.version, margin=0.5)
    rejected = info.value.decision
    # identical spec and data: both models score the same eval rows alike
    assert rejected.candidate_score == pytest.approx(rejected.champion_score)
    assert rejected.eval_rows == second.card["data"]["holdout_rows"]
    assert registry.champion_version(local_store, "demo") == 1
    events = registry.history(local_store, "demo")
    assert [e["action"] for e in events] == ["promoted", "rejected"]
    assert events[1]["champion_score"] is not None and events[1]["candidate_score"] is not None
    assert events[1]["interval"] is not None  # the paired interval of the difference


def test_a_candidate_below_its_floor_is_never_champion_the_first_one_included(local_store):
    contract = seed_validated(local_store)
    floored = small_spec("logistic", floors={"roc_auc": 0.999, "log_loss": 5.0})
    first = register_small(local_store, contract, spec=floored)
    with pytest.raises(PromotionRejectedError, match=r"quality floor.*roc_auc .* < floor 0.999"):
        registry.promote_if_better(local_store, "demo", first.version)
    assert registry.champion_version(local_store, "demo") is None
    assert registry.history(local_store, "demo")[0]["floors"] == {"roc_auc": 0.999, "log_loss": 5.0}
    passing = register_small(local_store, contract, run_id="run-2",
                             spec=small_spec("logistic", floors={"roc_auc": 0.6}))
    decision = registry.promote_if_better(local_store, "demo", passing.version)
    assert decision.promoted and decision.reason == "no champion yet (floors passed)"
    from mlops_onprem.model_spec import ModelSpecError
    with pytest.raises(ModelSpecError, match=r"floors.*unknown metrics \['auc'\]"):
        small_spec("logistic", floors={"auc": 0.5})


def test_with_promotion_alpha_only_a_significant_improvement_is_promoted(local_store):
    contract = seed_validated(local_store, rows=2000)
    weak = register_small(local_store, contract, spec=small_spec(
        "xgboost", params={"n_estimators": 1, "max_depth": 1, "n_jobs": 1}))
    registry.promote_if_better(local_store, "demo", weak.version)
    same = register_small(local_store, contract, run_id="run-2", spec=small_spec(
        "xgboost", params={"n_estimators": 1, "max_depth": 1, "n_jobs": 1}, promotion_alpha=0.05))
    with pytest.raises(PromotionRejectedError, match="not above margin|not significant"):
        registry.promote_if_better(local_store, "demo", same.version)
    strong = register_small(local_store, contract, run_id="run-3",
                            spec=small_spec("xgboost", promotion_alpha=0.05))
    decision = registry.promote_if_better(local_store, "demo", strong.version)
    assert decision.promoted and "significant at alpha 0.05" in decision.reason
    assert decision.interval[0] > 0 and decision.improvement > 0 and decision.alpha == 0.05


def test_a_candidate_under_a_changed_contract_is_refused_for_review_never_promoted_blind(local_store):
    contract = seed_validated(local_store)
    first = register_small(local_store, contract)
    registry.promote_if_better(local_store, "demo", first.version)
    narrower = contract.model_copy(update={
        "version": "2.0.0", "features": contract.features[1:]})  # a feature dropped
    candidate = register_small(local_store, narrower, run_id="run-2")
    with pytest.raises(PromotionRejectedError, match="refused for manual review") as info:
        registry.promote_if_better(local_store, "demo", candidate.version)
    assert "--force" in info.value.decision.reason
    assert registry.champion_version(local_store, "demo") == first.version
    forced = registry.promote_if_better(local_store, "demo", candidate.version, force=True)
    assert forced.promoted and forced.reason == "forced by operator"


def test_a_better_candidate_replaces_the_champion_on_the_same_eval_data(local_store):
    contract = seed_validated(local_store, rows=2000)
    weak = register_small(local_store, contract, spec=small_spec(
        "xgboost", params={"n_estimators": 1, "max_depth": 1, "n_jobs": 1}))
    registry.promote_if_better(local_store, "demo", weak.version)
    strong = register_small(local_store, contract, run_id="run-2")
    decision = registry.promote_if_better(local_store, "demo", strong.version, margin=0.01)
    assert decision.promoted and decision.candidate_score > decision.champion_score + 0.01
    assert registry.resolve(local_store, "demo").version == strong.version


@pytest.mark.parametrize("with_champion", [False, True], ids=["no-champion", "champion"])
def test_concurrent_promotions_have_exactly_one_winner(store, with_champion):
    contract = seed_validated(store)
    versions = [register_small(store, contract, run_id=f"run-{i}").version for i in range(3)]
    if with_champion:
        registry.promote_if_better(store, "demo", versions[0])
    racers = versions[1:]
    paused = PauseOnAliasRead(store, keys.alias_key("demo", "champion"), len(racers))

    def promote(version):
        try:
            return registry.promote_if_better(paused, "demo", version, force=with_champion)
        except PromotionConflictError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(racers)) as pool:
        outcomes = list(pool.map(promote, racers))
    winners = [o for o in outcomes if isinstance(o, registry.PromotionDecision) and o.promoted]
    losers = [o for o in outcomes if isinstance(o, PromotionConflictError)]
    assert len(winners) == 1 and len(losers) == 1
    assert "re-run" in str(losers[0])
    assert registry.champion_version(store, "demo") == winners[0].candidate_version
    actions = [e["action"] for e in registry.history(store, "demo")]
    assert actions.count("conflict") == 1


def test_rollback_restores_the_previous_champion_in_one_call(store):
    contract = seed_validated(store)
    v1 = register_small(store, contract).version
    v2 = register_small(store, contract, run_id="run-2").version
    registry.promote_if_better(store, "demo", v1)
    registry.promote_if_better(store, "demo", v2, force=True)
    decision = registry.rollback(store, "demo")
    assert decision.action == "rollback" and decision.champion_version == v2
    assert registry.resolve(store, "demo").version == v1
    registry.rollback(store, "demo", to_version=v2)
    assert registry.resolve(store, "demo").version == v2
    with pytest.raises(ModelNotFoundError, match="no version 9"):
        registry.rollback(store, "demo", to_version=9)
    assert [e["action"] for e in registry.history(store, "demo")] == [
        "promoted", "promoted", "rollback", "rollback"]


def test_rollback_without_a_champion_is_refused(local_store):
    with pytest.raises(ModelNotFoundError, match="nothing to roll back"):
        registry.rollback(local_store, "demo")


def test_history_events_are_never_rewritten(local_store):
    mv = register_small(local_store, seed_validated(local_store))
    decision = registry.promote_if_better(local_store, "demo", mv.version)
    from mlops_onprem.errors import PointerConflictError

    with pytest.raises(PointerConflictError):
        local_store.write_pointer(decision.event_key, {"forged": True}, expected_token=None)


def test_cli_lists_shows_promotes_and_rolls_back(local_env, capsys):
    store = open_store()
    contract = seed_validated(store)
    register_small(store, contract)
    register_small(store, contract, run_id="run-2")
    assert cli_main(["models", "promote", "demo", "1"]) == 0
    assert cli_main(["models", "promote", "demo", "2", "--margin", "0.5"]) == 1
    assert "rejected" in capsys.readouterr().out
    assert cli_main(["models", "promote", "demo", "2", "--force"]) == 0
    assert cli_main(["models", "list", "demo"]) == 0
    out = capsys.readouterr().out
    assert "*       2" in out and "roc_auc=" in out
    assert cli_main(["models", "rollback", "demo"]) == 0
    assert registry.resolve(store, "demo").version == 1
    assert cli_main(["models", "show", "demo"]) == 0
    assert "# Model card: demo v1" in capsys.readouterr().out
    assert cli_main(["models", "show", "nope"]) == 2


def test_the_comparison_leaves_out_rows_the_champion_was_fitted_on(local_store):
    from mlops_onprem.store.parquet import put_dataframe
    from mlops_onprem.synthetic import SyntheticSpec, generate_batch
    from tests.fixtures.training import gate_landed

    contract = seed_validated(local_store)
    champion = register_small(local_store, contract)
    registry.promote_if_better(local_store, "demo", champion.version)
    fresh = generate_batch(SyntheticSpec(dataset="demo"), 600, seed=9, start_row=50_000)
    put_dataframe(local_store, keys.incoming_key("demo", "batch-new"), fresh)
    gate_landed(local_store, contract)
    candidate = register_small(local_store, contract, run_id="run-2",
                               spec=small_spec("logistic", seed=7))  # another split
    decision = registry.promote_if_better(local_store, "demo", candidate.version, margin=-1.0,
                                          raise_on_reject=False)
    holdout = registry.load_eval_frame(local_store, candidate)
    fitted = registry.champion_training_keys(local_store, champion, contract.row_key)
    overlap = int(holdout[contract.row_key].isin(fitted).sum())
    assert overlap > 0 and decision.excluded_rows == overlap
    assert decision.eval_rows == len(holdout) - overlap and decision.promoted
