"""The README tutorial's deploy step, as written, against the e2e Prefect server (PostgreSQL)."""

from __future__ import annotations

import shlex
import subprocess

import pytest
import yaml

from tests.fixtures.readme import tutorial_blocks

from .conftest import VENV_BIN, WORK_POOL

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]


def test_the_readme_deploy_step_registers_the_tutorial_flow(
    prefect_server, deployed, prefect_client_settings, tmp_path
):
    from prefect.client.orchestration import get_client

    blocks = tutorial_blocks()
    flow_source, deployment_file, deploy = blocks[1][1], blocks[6][1], blocks[7][1]
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "churn.py").write_text(flow_source, encoding="utf-8")
    (tmp_path / "prefect.yaml").write_text(deployment_file, encoding="utf-8")
    env = prefect_server.client_env()
    for line in deploy.strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "prefect", line
        done = subprocess.run([str(VENV_BIN / "prefect"), *argv[1:]], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"

    expected = yaml.safe_load(deployment_file)["deployments"][0]
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("churn-nightly/nightly")
        pool = client.read_work_pool(WORK_POOL)
    assert deployment.work_pool_name == WORK_POOL and pool.type == "process"
    assert deployment.parameters == expected["parameters"]
    assert [s.schedule.cron for s in deployment.schedules] == [expected["schedules"][0]["cron"]]
    assert deployment.entrypoint == expected["entrypoint"]
