"""Every ``mlops`` job command through ``mlops_onprem.cli.main`` against one embedded local store
per module: ingest -> train -> score run -> monitor -> a second version, then the registry's
history and diff, the pipeline, and the ``python -m flows.<job>`` entry points that delegate here.

Each flow runs once, in a module fixture that records its exit code and output; the tests then
assert on what a user would read."""

from __future__ import annotations

import json
import os
import runpy
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from io import StringIO

import pytest

from mlops_onprem import keys
from mlops_onprem.cli import main
from mlops_onprem.settings import get_settings
from mlops_onprem.store import open_store
from mlops_onprem.store.base import ObjectStore
from mlops_onprem.store.parquet import put_dataframe
from mlops_onprem.synthetic import SyntheticSpec, generate_batch

SPEC = SyntheticSpec(dataset="demo")  # matches data_contracts/demo.yaml


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def mlops(*argv: str) -> Ran:
    """Run ``mlops argv`` in this process; its exit code and what it printed."""
    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return Ran(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    """A fresh embedded store with labelled history landed in incoming/ and two unlabelled
    batches in the inbox (landed only: ``mlops ingest`` gates them)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("MLOPS_S3_"):
                patch.delenv(name)
        patch.setenv("MLOPS_DATA_DIR", str(tmp_path_factory.mktemp("cli") / "data"))
        get_settings.cache_clear()
        store = open_store()
        for i in range(2):
            put_dataframe(store, keys.incoming_key("demo", f"h{i:03d}"),
                          generate_batch(SPEC, 600, seed=10 + i, start_row=i * 600))
            put_dataframe(store, keys.scoring_inbox_key("demo", f"s{i:03d}"),
                          generate_batch(SPEC, 300, seed=20 + i, start_row=5_000 + i * 300,
                                         with_label=False))
        yield store
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def ingested(store: ObjectStore) -> Ran:
    return mlops("ingest", "--dataset", "demo")


@pytest.fixture(scope="module")
def trained(ingested: Ran) -> Ran:
    return mlops("train", "--dataset", "demo", "--model-name", "demo", "--spec", "logistic",
                 "--seed", "1")


@pytest.fixture(scope="module")
def scored(trained: Ran) -> Ran:
    return mlops("score", "run", "--dataset", "demo", "--model", "demo")


@pytest.fixture(scope="module")
def monitored(scored: Ran) -> Ran:
    return mlops("monitor", "--model-name", "demo", "--dataset", "demo", "--window-days", "none",
                 "--no-retrain")


@pytest.fixture(scope="module")
def second(monitored: Ran) -> Ran:
    """A second version (after scoring and monitoring used the first), as JSON."""
    return mlops("train", "--model", "demo", "--spec", "logistic", "--seed", "2",
                 "--promotion-margin", "0.5", "--json")


def test_ingest_gates_every_pending_batch_and_prints_one_line_each(ingested):
    assert ingested.code == 0, ingested.err
    lines = ingested.out.splitlines()
    assert lines[0].split() == ["verdict", "batch", "stage", "rows", "copy", "/", "quarantine"]
    assert sum(line.startswith("validated  incoming/demo/h00") for line in lines) == 2
    assert sum(line.startswith("validated  inbox/demo/s00") for line in lines) == 2
    assert lines[-1] == "demo: 4 batch version(s) validated, 0 rejected"
    assert "ingest-batch demo: started" in ingested.err  # then the flow's log, then the time


def test_ingest_exits_1_naming_a_rejected_batch_and_its_quarantine(ingested, store):
    bad = generate_batch(SPEC, 50, seed=99, start_row=90_000).drop(columns=["num_04"])
    put_dataframe(store, keys.incoming_key("demo", "narrow"), bad)
    ran = mlops("ingest", "--stage", "training", "--source-key", "incoming/demo/narrow")
    assert ran.code == 1
    assert "REJECTED  incoming/demo/narrow.parquet  training" in ran.out
    assert "quarantine/demo/" in ran.out and "num_04" in ran.out
    assert ran.out.splitlines()[-1] == "demo: 0 batch version(s) validated, 1 rejected"
    again = mlops("ingest", "--json")  # nothing pending any more: the full (empty) result
    assert again.code == 0 and json.loads(again.out) == {"dataset": "demo", "validated": [],
                                                         "rejected": []}


def test_train_prints_the_version_the_decision_and_the_metrics(trained):
    assert trained.code == 0, trained.err
    fields = dict(line.split(None, 1) for line in trained.out.splitlines()
                  if not line.startswith(("metric", "training")))
    assert fields["model"] == "demo v1" and fields["promoted"] == "yes"
    assert fields["decision"].startswith("promoted: ")
    assert fields["card"] == "models/demo/1/card.json"
    assert any(line.startswith("metric roc_auc") for line in trained.out.splitlines())
    assert "mlops-training (waited" in trained.out.splitlines()[-1]


def test_score_run_prints_the_batches_and_a_summary_table(scored):
    assert scored.code == 0, scored.err
    assert scored.out.splitlines()[0].split() == ["batch", "version", "landed", "key", "rows"]
    assert sorted(line.split()[1:] for line in scored.out.splitlines() if "inbox/demo/s" in line) == [
        ["inbox/demo/s000.parquet", "300"], ["inbox/demo/s001.parquet", "300"]], scored.out
    fields = dict(line.split(None, 1) for line in scored.out.split("\n\n", 1)[1].splitlines())
    assert fields["model"] == "demo v1" and fields["mode"] == "new"
    assert fields["status"] == "complete" and fields["rows"] == "600"
    assert fields["manifest"].startswith("predictions/demo/1/")
    assert "score-batch demo@champion on demo (new)" in scored.err
    again = mlops("score", "run", "--json")  # nothing new: the whole summary as JSON
    assert again.code == 0 and json.loads(again.out)["status"] == "nothing-new"


def test_score_runs_and_show_print_json_when_asked(scored):
    listed = mlops("score", "runs", "demo", "--json")
    assert listed.code == 0
    (run,) = json.loads(listed.out)
    assert run["status"] == "complete" and run["manifest_key"].startswith("predictions/demo/1/")
    shown = mlops("score", "show", run["manifest_key"], "--json")
    assert shown.code == 0 and json.loads(shown.out)["run_id"] == run["run_id"]
    table = mlops("score", "runs", "demo")
    assert table.code == 0 and run["manifest_key"] in table.out


def test_monitor_prints_the_decision_and_the_window(monitored):
    assert monitored.code == 0, monitored.err
    fields = dict(line.split(None, 1) for line in monitored.out.splitlines()
                  if not line.startswith("  - "))
    assert fields["model"] == "demo v1"
    assert fields["decision"] in {"no_drift", "drift", "insufficient_data"}
    assert fields["window"].endswith("(600 rows)")
    assert fields["report"].startswith("monitoring/demo/")


def test_monitor_of_an_unknown_model_is_a_clear_error(store):
    ran = mlops("monitor", "--model-name", "nope", "--json")
    assert ran.code == 2 and "'nope'" in ran.err


def test_train_json_prints_the_whole_result(second):
    assert second.code == 0, second.err
    result = json.loads(second.out)
    assert result["version"] == 2 and result["promoted"] is False
    assert result["decision"]["action"] == "rejected"


def test_models_list_json_marks_the_champion(second):
    ran = mlops("models", "list", "demo", "--json")
    assert ran.code == 0
    assert [(v["version"], v["champion"]) for v in json.loads(ran.out)] == [(1, True), (2, False)]
    assert mlops("models", "list", "nope", "--json").out.strip() == "[]"


def test_models_history_lists_each_decision(second):
    ran = mlops("models", "history", "demo")
    assert ran.code == 0
    lines = ran.out.splitlines()
    assert lines[0].split() == ["time", "(UTC)", "action", "versions", "metric", "reason"]
    assert lines[2].split()[2:4] == ["promoted", "v1"]
    assert lines[3].split()[2:6] == ["rejected", "v2", "vs", "v1"] and "roc_auc" in lines[3]
    events = json.loads(mlops("models", "history", "demo", "--json").out)
    assert [e["action"] for e in events] == ["promoted", "rejected"]


def test_models_history_of_an_unknown_model_exits_2_naming_it(store):
    ran = mlops("models", "history", "nope")
    assert ran.code == 2 and "model 'nope' has no versions" in ran.err


def test_models_diff_puts_two_cards_side_by_side(second):
    ran = mlops("models", "diff", "demo", "champion", "2")
    assert ran.code == 0
    assert ran.out.splitlines()[0] == "demo: v1 (A) vs v2 (B)"
    rows = {line.split("  ", 1)[0]: line for line in ran.out.splitlines()[3:]}
    assert "metric roc_auc (primary)" in rows
    assert rows["spec"].split()[1:] == ["logistic", "(linear)", "logistic", "(linear)", "-"]
    assert rows["spec.seed"].split()[1:3] == ["1", "2"]  # the one spec difference
    assert rows["data rows"].split()[2:4] == ["1,200", "1,200"]
    assert rows["contract"].split()[1:5] == ["demo", "1.0.0", "demo", "1.0.0"]
    assert rows["decision threshold"].split()[2:] == ["0.5", "(default)", "0.5", "(default)", "-"]
    diff = json.loads(mlops("models", "diff", "demo", "1", "2", "--json").out)
    assert diff["spec"]["differences"] == [{"field": "spec.seed", "a": 1, "b": 2}]
    assert diff["batch_versions"]["only_a"] == diff["batch_versions"]["only_b"] == []


def test_models_diff_of_an_unknown_version_exits_2_naming_it(second):
    ran = mlops("models", "diff", "demo", "1", "9")
    assert ran.code == 2 and "model 'demo' has no version 9" in ran.err
    assert ran.out == ""


def test_pipeline_runs_the_stages_asked_and_prints_a_summary(second):
    ran = mlops("pipeline", "--no-train")
    assert ran.code == 0, ran.err
    fields = dict(line.split("  ", 1) for line in ran.out.splitlines())
    assert fields["validated batches"].strip() == "0" and fields["trained"].strip() == "-"
    assert fields["scored"].strip().startswith("0 rows, nothing-new")


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")  # imported above
@pytest.mark.parametrize("module, option", [
    ("flows.ingest", "--revalidate"), ("flows.train", "--window-batches"),
    ("flows.monitor", "--training-deployment"), ("flows.score", "--batch-rows"),
    ("flows.pipeline", "--no-train"),
])
def test_python_m_flows_keeps_its_options_through_the_cli(module, option, monkeypatch):
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    out = StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        runpy.run_module(module, run_name="__main__")
    assert exit_.value.code == 0 and option in out.getvalue()
    assert "--json" in out.getvalue()


def test_doctor_json_lists_every_check_and_its_verdict(store):
    ran = mlops("doctor", "--probe-mib", "1", "--json")
    report = json.loads(ran.out)
    assert {"cpu cores", "python"} <= {check["name"] for check in report["checks"]}
    assert ran.code == (0 if report["passed"] else 1)


def test_every_command_is_documented_in_the_help():
    help_text = StringIO()
    with redirect_stdout(help_text), pytest.raises(SystemExit):
        main(["--help"])
    for command in ("ingest", "train", "monitor", "pipeline", "models", "score"):
        assert command in help_text.getvalue()
