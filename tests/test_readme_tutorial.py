"""The README tutorial ("add a new dataset and flow") runs as written."""

from __future__ import annotations

import shlex

import yaml

from mlops_onprem.cli import main as mlops_main
from mlops_onprem.store.parquet import write_parquet_file
from mlops_onprem.synthetic import SyntheticSpec, generate_batch
from tests.fixtures.readme import tutorial_blocks


def test_readme_tutorial_runs_end_to_end(local_env, tmp_path, monkeypatch, capsys):
    blocks = tutorial_blocks()
    assert [lang for lang, _ in blocks] == ["bash", "python", "python", "python", "python",
                                            "bash", "yaml", "bash"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data_contracts").mkdir()
    spec = SyntheticSpec(dataset="churn", n_numeric=5, n_categorical=1)
    history = generate_batch(spec, 3000, seed=1)
    today = generate_batch(spec, 800, seed=2, start_row=3000)
    write_parquet_file(history, tmp_path / "churn_reference.parquet")

    # step 1: the shell command, through the same entry point as the `mlops` script
    argv = shlex.split(blocks[0][1])
    assert argv[0] == "mlops"
    assert mlops_main(argv[1:]) == 0
    assert (tmp_path / "data_contracts" / "churn.yaml").is_file()

    # steps 2 to 5: the Python, as written, in one namespace
    namespace: dict = {"history": history, "today": today}
    for step in (1, 2, 3, 4):
        exec(compile(blocks[step][1], f"README:step{step + 1}", "exec"), namespace)
    result = namespace["result"]
    assert result["version"] == 1 and result["promoted"] is True
    assert result["scored_rows"] == len(today) and result["validated"] == 2
    assert result["manifest"].startswith("predictions/churn/1/")
    monitoring = namespace["monitoring"]
    assert monitoring["decision"] == "no_drift", monitoring["reasons"]
    assert monitoring["quality"]["labelled_rows"] == len(today)
    assert monitoring["window"]["data_dates"] == ["2026-11-26", "2026-11-26"]
    backfill = namespace["backfill"]
    assert backfill["run_id"] == result["run_id"] and backfill["rows"] == len(today)

    # step 6: retention and lineage from the command line
    capsys.readouterr()
    for line in blocks[5][1].strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "mlops" and mlops_main(argv[1:]) == 0, line
    printed = capsys.readouterr().out
    assert "would remove 0 object(s)" in printed
    assert "incoming/churn/dt=2026-11-25/history.parquet" in printed  # model -> training batch
    assert '"row_key": 3005' in printed and "inbox/churn/dt=2026-11-26/today.parquet" in printed

    # step 7: the deployment points at the flow the tutorial defined (step 8 runs in tests/e2e)
    deployment = yaml.safe_load(blocks[6][1])["deployments"][0]
    path, function = deployment["entrypoint"].split(":")
    assert path == "pipelines/churn.py" and function == namespace["churn_nightly"].fn.__name__
    assert deployment["work_pool"]["name"] == "mlops-process"
