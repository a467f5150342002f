"""The README tutorial ("add a new dataset and flow") runs as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from mlops_onprem.cli import main as mlops_main
from mlops_onprem.store.parquet import write_parquet_file
from mlops_onprem.synthetic import SyntheticSpec, generate_batch

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"```(\w+) tutorial\n(.*?)```", re.DOTALL)


def tutorial_blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_tutorial_runs_end_to_end(local_env, tmp_path, monkeypatch):
    blocks = tutorial_blocks()
    assert [lang for lang, _ in blocks] == ["bash", "python", "python", "yaml"]
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

    # steps 2 and 3: the Python, as written
    namespace: dict = {"history": history, "today": today}
    exec(compile(blocks[1][1], "README:step2", "exec"), namespace)
    exec(compile(blocks[2][1], "README:step3", "exec"), namespace)
    result = namespace["result"]
    assert result["version"] == 1 and result["promoted"] is True
    assert result["scored_rows"] == len(today)
    assert result["manifest"].startswith("predictions/churn/1/")

    # step 4: the deployment points at the flow the tutorial defined
    deployment = yaml.safe_load(blocks[3][1])["deployments"][0]
    module, function = deployment["entrypoint"].split(":")
    assert function == namespace["churn_nightly"].fn.__name__
    assert deployment["work_pool"]["name"] == "mlops-process"
