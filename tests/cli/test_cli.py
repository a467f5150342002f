"""Every ``mlops`` command through ``mlops_onprem.cli.main`` against one embedded local store per
module: ingest -> train -> score run -> monitor -> a second version, then the registry's history
and diff, the pipeline, the score progress bar, the model commands that move aliases, retention,
lineage, contracts, and the ``python -m flows.<job>`` entry points that delegate here.

Each flow runs once, in a module fixture that records its exit code and output; the tests then
assert on what a user would read. ``test_every_command_has_a_test`` keeps the list of commands
and the tests that run them in step."""

from __future__ import annotations

import json
import os
import re
import runpy
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import pytest

from mlops_onprem import keys
from mlops_onprem.cli import build_command, main
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


class TerminalIO(StringIO):
    """A stderr that says it is a terminal (what ``mlops score run`` checks to draw its bar)."""

    def isatty(self) -> bool:
        return True


def mlops(*argv: str, stderr: StringIO | None = None) -> Ran:
    """Run ``mlops argv`` in this process; its exit code and what it printed."""
    out, err = StringIO(), stderr or StringIO()
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
    # stderr is not a terminal here: one plain line per partition scored instead of a bar
    steps = [line for line in scored.err.splitlines() if line.startswith("score-batch: score-partition")]
    assert [line.split(":")[1].split()[1] for line in steps] == ["1/2", "2/2"], scored.err
    assert all("validated-scoring/demo/" in line for line in steps)
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


def test_python_m_flows_demo_runs_through_the_same_typer_runner():
    from flows.demo import main as demo_main

    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert demo_main(["--help"]) == 0
        assert demo_main(["--rows", "many"]) == 2
    assert "--keep" in out.getvalue() and "--rows" in out.getvalue()
    assert err.getvalue().startswith("error: ") and "--rows" in err.getvalue()


def test_doctor_json_lists_every_check_and_its_verdict(store):
    ran = mlops("doctor", "--probe-mib", "1", "--json")
    report = json.loads(ran.out)
    assert {"cpu cores", "python"} <= {check["name"] for check in report["checks"]}
    assert ran.code == (0 if report["passed"] else 1)


def land_inbox(store: ObjectStore, *names: str, seed: int) -> None:
    for i, name in enumerate(names):
        put_dataframe(store, keys.scoring_inbox_key("demo", name),
                      generate_batch(SPEC, 200, seed=seed + i, start_row=20_000 + seed * 1_000 + i * 200,
                                     with_label=False))


def test_score_run_on_a_terminal_draws_a_bar_to_n_of_n_with_the_logs_above_it(second, store):
    from mlops_onprem.cli.output import _prefect_console_handlers

    land_inbox(store, "tty0", "tty1", seed=40)
    ran = mlops("score", "run", stderr=TerminalIO())
    assert ran.code == 0, ran.err
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", ran.err)  # the bar's colours and cursor moves
    assert re.search(r"score-partition .*\b2/2\b", plain), plain
    assert "0/2" in plain  # drawn when the partitions start, not only at the end
    assert "Finished in state Completed" in plain  # Prefect's log, sent through the bar's console
    fields = dict(line.split(None, 1) for line in ran.out.split("\n\n", 1)[1].splitlines())
    assert fields["rows"] == "400" and fields["partitions"] == "2"  # then the summary table
    handlers = _prefect_console_handlers()
    assert handlers and all(type(h.console).__name__ == "Console" for h in handlers)  # restored


def test_score_run_json_shows_no_progress_even_on_a_terminal(second, store):
    land_inbox(store, "tty2", seed=50)
    ran = mlops("score", "run", "--json", stderr=TerminalIO())
    assert ran.code == 0, ran.err
    assert json.loads(ran.out)["rows"] == 200
    assert "score-partition" not in ran.err


def test_models_show_prints_the_card_or_its_json(second):
    ran = mlops("models", "show", "demo")
    assert ran.code == 0 and ran.out.startswith("# Model card: demo v1")
    card = json.loads(mlops("models", "show", "demo", "2", "--json").out)
    assert card["version"] == 2 and card["name"] == "demo"
    missing = mlops("models", "show", "demo", "7")
    assert missing.code == 2 and missing.err.startswith("error: ") and "7" in missing.err


def test_models_challenger_set_status_and_clear(second):
    ran = mlops("models", "challenger", "set", "demo", "2", "--reason", "cli test")
    assert ran.code == 0, ran.err
    assert ran.out.startswith("challenger of demo: v2 shadows champion v1")
    assert "~ = shadow challenger" in mlops("models", "list", "demo").out
    status = mlops("models", "challenger", "status", "demo", "--json")
    assert status.code == 0 and json.loads(status.out)["challenger_version"] == 2
    text = mlops("models", "challenger", "status", "demo", "--min-rows", "10")
    assert text.code == 0 and text.out.startswith("challenger v2 vs champion v1")
    cleared = mlops("models", "challenger", "clear", "demo")
    assert cleared.code == 0 and cleared.out.startswith("challenger v2 of demo cleared")
    again = mlops("models", "challenger", "clear", "demo")
    assert again.code == 0 and again.out.strip() == "model 'demo' has no challenger"


def test_models_promote_and_rollback_move_the_champion_and_say_why(second):
    refused = mlops("models", "promote", "demo", "2", "--margin", "0.5")
    assert refused.code == 1 and refused.out.startswith("rejected: ")
    forced = mlops("models", "promote", "demo", "2", "--force")
    assert forced.code == 0 and forced.out.startswith("promoted: ") and "history: " in forced.out
    assert [v["champion"] for v in json.loads(mlops("models", "list", "demo", "--json").out)] == [False, True]
    back = mlops("models", "rollback", "demo", "--to", "1")
    assert back.code == 0 and "history: " in back.out
    assert [v["champion"] for v in json.loads(mlops("models", "list", "demo", "--json").out)] == [True, False]


def test_gc_plans_a_dry_run_and_refuses_apply_with_dry_run(second):
    ran = mlops("gc", "--dry-run", "--dataset", "demo")
    assert ran.code == 0 and "would remove" in ran.out
    plan = json.loads(mlops("gc", "--json", "--model", "demo").out)
    assert plan["applied"] is False
    both = mlops("gc", "--apply", "--dry-run")
    assert both.code == 2 and both.out == ""
    assert both.err.count("\n") == 1 and "--dry-run and --apply" in both.err  # one line, no traceback
    bad = mlops("gc", "--policy", '{"quarantine_days": "soon"}')
    assert bad.code == 2 and "--policy" in bad.err and "quarantine_days" in bad.err


def test_lineage_traces_a_model_version_to_its_training_batches(second):
    ran = mlops("lineage", "demo@1")
    assert ran.code == 0 and "incoming/demo/h000.parquet" in ran.out, ran.out
    chain = json.loads(mlops("lineage", "demo@1", "--json").out)
    assert "incoming/demo/h001.parquet" in json.dumps(chain)


def test_contract_draft_and_diff(tmp_path: Path):
    from mlops_onprem.store.parquet import write_parquet_file

    source = tmp_path / "ref.parquet"
    write_parquet_file(generate_batch(SPEC, 200, seed=3), source)
    out = tmp_path / "ref.yaml"
    drafted = mlops("contract", "draft", "--from", str(source), "--dataset", "ref", "--out", str(out))
    assert drafted.code == 0 and out.is_file() and "wrote draft contract" in drafted.err
    refused = mlops("contract", "draft", "--from", str(source), "--out", str(out))
    assert refused.code == 2 and "--force" in refused.err
    same = mlops("contract", "diff", str(out), str(out), "--json")
    assert same.code == 0 and json.loads(same.out)["changes"] == []
    text = mlops("contract", "diff", str(out), str(out))
    assert text.code == 0 and "0 change(s), needs no bump" in text.out


def test_usage_errors_are_one_line_naming_the_option_and_exit_2(store):
    for argv, named in ((["score", "run", "--mode", "sometimes"], "--mode"),
                        (["monitor", "--window-days", "a week"], "--window-days"),
                        (["models", "promote", "demo", "two"], "version"),
                        (["score", "rerun"], "rerun")):
        ran = mlops(*argv)
        assert ran.code == 2 and ran.out == "", argv
        assert ran.err.startswith("error: ") and ran.err.count("\n") == 1 and named in ran.err, ran.err
    bare = mlops("models")  # a group alone: its help, exit 2 (as argparse did)
    assert bare.code == 2 and "challenger" in bare.out


# every command, with its options and defaults: the argparse CLI's, kept by the typer port
COMMANDS = {
    "doctor": "--json=False --probe-mib=64",
    "contract draft": "--dataset=None --force=False --from=None --label=None --margin=0.1 "
                      "--max-categories=50 --out=None --row-key=None --timestamp=None",
    "contract diff": "--json=False <NEW> <OLD>",
    "ingest": "--contract-path=None --dataset='demo' --end=None --json=False --revalidate=False "
              "--source-key=None --stage=None --start=None",
    "train": "--contract-path=None --dataset='demo' --json=False --model/--model-name='demo' "
             "--promotion-margin=0.0 --seed=None --spec='xgboost' --window-batches=None --window-days=None",
    "monitor": "--as-of=None --dataset='demo' --json=False --model/--model-name='demo' --no-retrain=False "
               "--policy=None --training-deployment=None --window-batches=None --window-days=7",
    "pipeline": "--dataset='demo' --json=False --model/--model-name='demo' --no-score=False "
                "--no-train=False --promotion-margin=0.0 --spec='xgboost'",
    "gc": "--apply=False --dataset=None --dry-run=False --json=False --model=None --policy=None",
    "lineage": "--dataset='demo' --json=False --model='demo' <ref>",
    "models list": "--json=False <name>",
    "models show": "--json=False <name> <ref>='champion'",
    "models history": "--json=False <name>",
    "models diff": "--json=False <a> <b> <name>",
    "models promote": "--force=False --margin=0.0 --metric=None <name> <version>",
    "models rollback": "--to=None <name>",
    "models challenger set": "--reason='' <name> <version>",
    "models challenger clear": "--reason='cleared by operator' <name>",
    "models challenger status": "--alpha=0.05 --dataset=None --json=False --min-rows=300 <name>",
    "score run": "--batch-rows=20000 --contract-path=None --dataset='demo' --end=None --input-prefix=None "
                 "--json=False --mode='new' --model='demo' --ort-threads=1 --ref='champion' --run-id=None "
                 "--start=None",
    "score runs": "--json=False <model>",
    "score show": "--json=False <manifest_key>",
}


def command_tree() -> dict[str, object]:
    """Every leaf command of the app by its path ("models challenger set")."""
    leaves: dict[str, object] = {}

    def walk(command, path: list[str]) -> None:
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, [*path, name])
        if not getattr(command, "commands", None):
            leaves[" ".join(path)] = command

    walk(build_command(), [])
    return leaves


def signature(command) -> str:
    parts = []
    for param in command.params:
        if param.name == "help":
            continue
        if param.opts[0].startswith("-"):
            parts.append("/".join(sorted(param.opts)) + f"={param.default!r}")
        else:
            parts.append(f"<{param.metavar or param.name}>"
                         + ("" if param.required else f"={param.default!r}"))
    return " ".join(sorted(parts))


def test_the_commands_options_and_defaults_are_the_argparse_cli_s():
    assert {path: signature(command) for path, command in command_tree().items()} == COMMANDS


def test_every_command_and_option_has_help():
    for path, command in command_tree().items():
        assert command.help and len(command.help) > 20, path
        for param in command.params:
            assert getattr(param, "help", None), f"mlops {path} {param.opts[0]}"
    help_text = StringIO()
    with redirect_stdout(help_text):
        assert main(["--help"]) == 0
    for command in ("doctor", "contract", "ingest", "train", "monitor", "pipeline", "gc", "lineage",
                    "models", "score"):
        assert re.search(rf"^\W*{command}\s", help_text.getvalue(), re.MULTILINE), command


def test_every_command_has_a_test():
    """Each command appears as ``mlops("<its words>"`` in this module (or is exercised by a
    fixture above); a new command without a test fails here."""
    source = Path(__file__).read_text(encoding="utf-8")
    untested = [path for path in COMMANDS
                if not re.search(r'mlops\("' + '", "'.join(path.split()) + '"', source)]
    assert untested == []
