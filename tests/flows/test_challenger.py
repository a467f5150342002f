"""A shadow challenger through the deployed flows (parameters from ``prefect.yaml``), day by day.

Champion v1 was trained before a concept shift, v2 after it. v2 is set as the shadow
challenger: each nightly ``score-batch`` scores the new batch with both (only v1's predictions
are delivered), labels arrive a day late (registered by the nightly ``ingest-batch``), and
``monitor-model`` promotes v2 at the first run with enough labelled rows both scored. Then the
old v1 challenges v2 and is retired, the champion untouched. What a user would check is
asserted: each batch delivered once by the champion of its day, shadow predictions apart, one
decision each, all in the history.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from flows.ingest import ingest_batch
from flows.monitor import monitor_model
from flows.score import score_batch
from mlops_onprem import challenger, keys, ledger, registry
from mlops_onprem.cli import main as mlops_main
from mlops_onprem.gc import plan_gc
from mlops_onprem.monitoring import MonitoringPolicy
from mlops_onprem.store import open_store
from mlops_onprem.store.parquet import get_dataframe, put_dataframe
from mlops_onprem.synthetic import SyntheticSpec, generate_batch, make_contract
from tests.fixtures.deployments import deployment_parameters
from tests.fixtures.training import CONCEPT_SHIFT, train_and_register

SPEC = SyntheticSpec(dataset="demo")
SCORE_ROWS = 350  # one day's labels are enough for the policy's default minimum (300)
START = date(2026, 3, 1)


def _land_training(store, name: str, seed: int, start_row: int, concept: float) -> None:
    frame = generate_batch(SPEC, 1500, seed=seed, start_row=start_row, concept_shift=concept,
                           start_time=pd.Timestamp("2026-01-01") + pd.Timedelta(hours=seed))
    put_dataframe(store, keys.incoming_key("demo", name), frame)


def _day(store, n: int, labels: dict[int, pd.DataFrame]) -> None:
    """Land day ``n``'s scoring batch (post-shift) and the labels of day ``n - 1``'s."""
    day = (START + timedelta(days=n)).isoformat()
    frame = generate_batch(SPEC, SCORE_ROWS, seed=500 + n, start_row=1_000_000 + n * 10_000,
                           concept_shift=CONCEPT_SHIFT, start_time=pd.Timestamp(day))
    put_dataframe(store, f"inbox/demo/dt={day}/batch.parquet", frame.drop(columns=["label"]))
    labels[n] = frame[["row_id", "label"]]
    if n - 1 in labels:
        put_dataframe(store, keys.labels_key("demo", f"day-{n - 1}"), labels[n - 1])


@pytest.mark.slow
def test_a_shadow_challenger_is_promoted_when_better_and_retired_when_worse(local_env, capsys):
    from tests.fixtures.training import gate_landed

    params = deployment_parameters()
    ingest, score = params["ingest_batch"], params["score_batch"]
    monitor = {**params["monitor_model"], "training_deployment": None}
    assert monitor.get("policy") is None  # the documented defaults are the deployed policy
    policy = MonitoringPolicy()
    store = open_store()
    contract = make_contract(SPEC)
    for i in range(2):
        _land_training(store, f"pre-{i}", seed=i, start_row=i * 10_000, concept=0.0)
    gate_landed(store, contract)
    v1 = train_and_register(store, contract, "run-v1")
    assert registry.promote_if_better(store, "demo", v1.version).promoted
    for i in range(2):
        _land_training(store, f"post-{i}", seed=10 + i, start_row=100_000 + i * 10_000, concept=CONCEPT_SHIFT)
    gate_landed(store, contract)
    v2 = train_and_register(store, contract, "run-v2")  # registered, not promoted

    with pytest.raises(challenger.ChallengerError, match="is the champion"):
        challenger.set_challenger(store, "demo", v1.version)
    assert mlops_main(["models", "challenger", "set", "demo", str(v2.version)]) == 0
    assert challenger.challenger_version(store, "demo") == v2.version

    labels: dict[int, pd.DataFrame] = {}
    runs = {}
    for n in (1, 2):
        _day(store, n, labels)
        ingest_batch(**ingest)  # the nightly order: ingest (registers labels), score, monitor
        runs[n] = (score_batch(**score), monitor_model(**monitor))
    first, second = runs[1][1]["challenger"], runs[2][1]["challenger"]
    assert first["status"] == "collecting" and first["labelled_rows"] == 0, first
    assert second["status"] == "promoted", second
    assert second["labelled_rows"] == SCORE_ROWS >= policy.challenger_min_labelled_rows
    assert second["interval"][0] > 0 and second["challenger_score"] > second["champion_score"]
    assert registry.champion_version(store, "demo") == v2.version
    assert challenger.challenger_version(store, "demo") is None
    # the run that promoted it saw the old champion's quality drop; no retrain on top of it
    if runs[2][1]["drift"] and runs[2][1]["retrain"]["status"] != "not_requested":
        assert runs[2][1]["retrain"]["status"] == "skipped", runs[2][1]["retrain"]

    # delivered: only the champion's predictions, each batch once; the shadow apart
    for n in (1, 2):
        summary = runs[n][0]
        assert summary["model_version"] == v1.version and summary["shadow"]["status"] == "scored"
        for key in summary["output_keys"]:
            assert set(get_dataframe(store, key)["model_version"]) == {v1.version}
        shadow = store.get_json(summary["shadow"]["manifest_key"])
        assert shadow["rows"] == SCORE_ROWS and shadow["outputs"][0]["key"].startswith(
            keys.shadow_model_prefix("demo", v2.version))
    index = ledger.read_index(store, "demo")
    for view in ledger.versions(index, stage="scoring"):
        assert len(view.state["scorings"]) == 1, view.state["scorings"]

    # the old model now challenges the new champion and loses
    assert mlops_main(["models", "challenger", "set", "demo", str(v1.version)]) == 0
    for n in (3, 4):
        _day(store, n, labels)
        ingest_batch(**ingest)  # the nightly order: ingest (registers labels), score, monitor
        runs[n] = (score_batch(**score), monitor_model(**monitor))
    assert runs[3][0]["model_version"] == v2.version
    verdict = runs[4][1]["challenger"]
    assert verdict["status"] == "retired", verdict
    assert verdict["challenger_score"] < verdict["champion_score"]
    assert registry.champion_version(store, "demo") == v2.version

    actions = [(e["action"], e["candidate_version"]) for e in registry.history(store, "demo")]
    assert actions == [("promoted", v1.version), ("challenger_set", v2.version),
                       ("promoted", v2.version), ("challenger_promoted", v2.version),
                       ("challenger_set", v1.version), ("challenger_retired", v1.version)]
    capsys.readouterr()
    assert mlops_main(["models", "challenger", "status", "demo"]) == 0
    assert "no challenger" in capsys.readouterr().out

    # the card shows the registry's decisions on the version: both metrics on the same rows
    assert mlops_main(["models", "show", "demo", str(v2.version)]) == 0
    card = capsys.readouterr().out
    assert "## Promotion decisions" in card and "| challenger_set |" in card
    promoted = next(line for line in card.splitlines() if line.startswith("| ") and "| promoted |" in line)
    assert f"| {SCORE_ROWS} |" in promoted and "[" in promoted, promoted

    # retention: decided challengers' shadow runs age out; the current challenger's are kept
    assert mlops_main(["models", "challenger", "set", "demo", str(v1.version)]) == 0
    capsys.readouterr()
    assert mlops_main(["models", "list", "demo"]) == 0
    listing = capsys.readouterr().out
    assert f"~ {v1.version:>7}" in listing and f"* {v2.version:>7}" in listing, listing
    plan = plan_gc(store, now=datetime.now(UTC) + timedelta(days=365))
    targets = {r.target for r in plan.removals}
    assert any(t.startswith(keys.shadow_model_prefix("demo", v2.version)) for t in targets)
    assert not any(t.startswith(keys.shadow_model_prefix("demo", v1.version)) for t in targets)
