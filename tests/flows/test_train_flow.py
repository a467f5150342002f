"""The ``train-model`` flow end to end on the S3 server (moto on loopback) and a real Prefect API."""

from __future__ import annotations

import pytest

from flows.train import train_model
from mlops_onprem import keys, registry
from mlops_onprem.onnx_export import ParityError
from mlops_onprem.store import open_store
from tests.fixtures.training import seed_validated


def _spec_file(tmp_path, name: str, extra: str = "") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nkind: xgboost\nparams:\n  n_estimators: 10\n  max_depth: 3\n  n_jobs: 1\n"
        + extra
    )
    return str(path)


@pytest.mark.s3
def test_train_flow_registers_promotes_and_then_keeps_the_champion(s3_env, tmp_path):
    store = open_store()
    seed_validated(store, rows=1500)
    first = train_model(dataset="demo", model_name="demo", spec=_spec_file(tmp_path, "small"), seed=3)
    assert first["version"] == 1 and first["promoted"] is True
    assert first["decision"]["reason"] == "no champion yet"
    assert first["card_key"] == keys.model_card_key("demo", 1)
    assert set(first["metrics"]) == {"roc_auc", "log_loss", "f1", "accuracy"}
    card = store.get_json(first["card_key"])
    assert card["lineage"]["flow_run_id"]  # the Prefect flow run id
    assert card["lineage"]["seed"] == 3
    assert store.exists(card["reference_profile_key"])

    second = train_model(dataset="demo", model_name="demo", spec="logistic", promotion_margin=0.5)
    assert second["version"] == 2 and second["promoted"] is False
    assert second["decision"]["action"] == "rejected"
    assert second["decision"]["champion_score"] is not None
    assert registry.resolve(store, "demo").version == 1


@pytest.mark.s3
def test_train_flow_refuses_registration_when_parity_fails(s3_env, tmp_path):
    store = open_store()
    seed_validated(store, rows=800)
    strict = _spec_file(tmp_path, "strict", "parity_tolerance: 0.0\n")
    # XGBoost probabilities computed in float32 by onnxruntime differ from native by ~1e-7
    with pytest.raises(ParityError, match="registration refused"):
        train_model(dataset="demo", model_name="demo", spec=strict)
    assert registry.list_versions(store, "demo") == []
