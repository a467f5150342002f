"""A model card worth reading: which features the model needs (permutation importance on the
holdout), how it errs (curves, confusion matrix or residuals, stored as card.png and inlined),
the training time range, and the registry's decisions on the version."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from mlops_onprem import registry
from mlops_onprem.contracts import Task
from mlops_onprem.model_card import render_card_markdown
from mlops_onprem.model_insights import holdout_figure, permutation_importance
from tests.fixtures.training import register_small, seed_validated

PNG = b"\x89PNG"


def test_permutation_importance_finds_the_signal_and_not_the_noise():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"signal": rng.normal(size=800), "noise": rng.normal(size=800)})
    y = (frame["signal"] + rng.normal(0, 0.5, 800) > 0).astype(int).to_numpy()
    model = LogisticRegression().fit(frame, y)

    def predict(x):
        p = model.predict_proba(x)
        return p[:, 1], p

    importance = {i["feature"]: i for i in permutation_importance(
        predict, frame, y, Task.BINARY, "roc_auc")}
    assert importance["signal"]["importance"] > 0.2
    assert abs(importance["noise"]["importance"]) < 0.02


def test_holdout_figures_for_every_task():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    p = rng.dirichlet(np.ones(3), 200)
    assert holdout_figure(Task.MULTICLASS, y, p.max(axis=1), p, classes=["a", "b", "c"]).startswith(PNG)
    values = rng.normal(size=200)
    assert holdout_figure(Task.REGRESSION, values, values + rng.normal(0, .1, 200), None).startswith(PNG)
    assert holdout_figure(Task.REGRESSION, np.array([]), np.array([]), None) is None


def test_a_registered_card_has_importance_figure_time_range_and_decisions(local_store):
    contract = seed_validated(local_store, rows=1200)
    mv = register_small(local_store, contract)
    card = mv.card
    importance = card["feature_importance"]
    assert {i["feature"] for i in importance} == set(contract.feature_names)
    assert importance[0]["importance"] > 0 and importance == sorted(
        importance, key=lambda i: -i["importance"])
    figure = registry.load_card_figure(local_store, mv)
    assert figure.startswith(PNG)
    assert card["data"]["time_range"][0] < card["data"]["time_range"][1]
    stored = local_store.get_bytes(card["files"]["card_md"]["key"]).decode()
    assert "## Feature importance" in stored and "data:image/png;base64," in stored
    assert "- time range: " in stored

    registry.promote_if_better(local_store, "demo", mv.version)
    text = render_card_markdown(card, registry.decisions_about(local_store, "demo", mv.version))
    assert "**Status (at its last decision):** champion" in text and "| promoted |" in text
