"""The Prefect UI served by the e2e server shows a monitoring run's drift report (headless
Chromium, loopback only). Skipped where /usr/bin/chromium is absent (`make test-ui` installs it).
The screenshot of the run page goes to $MLOPS_E2E_SCREENSHOT_DIR (default: the test's tmp dir).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import RUN_TIMEOUT_S, PipelineRun, PrefectServer, require_deployment

CHROMIUM = Path("/usr/bin/chromium")
# where the screenshot is kept (e.g. set by `make test-ui`); else the test's temporary directory
SCREENSHOT_DIR_ENV = "MLOPS_E2E_SCREENSHOT_DIR"

pytestmark = [
    pytest.mark.e2e, pytest.mark.ui, pytest.mark.slow, pytest.mark.timeout(900),
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="/usr/bin/chromium is not installed (make test-ui installs it)"),
]


def chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    """Headless Chromium on ``url`` with everything that phones out switched off."""
    args = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--no-first-run", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        "--virtual-time-budget=15000", "--window-size=1400,1800", *extra, url,
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=120,
                          start_new_session=True, env={**os.environ, "HOME": str(profile)})


def test_monitoring_run_page_renders_the_drift_report(
    pipeline_run: PipelineRun, worker, deployed, prefect_server: PrefectServer,
    prefect_client_settings, tmp_path: Path,
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment

    require_deployment(deployed, "monitor-model/onprem")
    monitor = run_deployment("monitor-model/onprem", parameters={"retrain": False},
                             timeout=RUN_TIMEOUT_S, poll_interval=1)
    assert monitor.state.is_completed(), f"{monitor.state}\n{worker.tail()}"
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[monitor.id])))
    report = next(a for a in artifacts if a.key and a.key.startswith("drift-report"))
    # a line of the report's own markdown that the rendered page must show as text
    heading = next(line.lstrip("# ").strip() for line in str(report.data).splitlines()
                   if line.startswith("#"))

    artifact_dom = chromium(f"{prefect_server.ui_url}/artifacts/artifact/{report.id}",
                            tmp_path / "profile-a", "--dump-dom")
    shot_dir = Path(os.environ.get(SCREENSHOT_DIR_ENV) or tmp_path)
    shot_dir.mkdir(parents=True, exist_ok=True)
    shot = shot_dir / "monitoring-flow-run.png"
    run_page = chromium(f"{prefect_server.ui_url}/runs/flow-run/{monitor.id}",
                        tmp_path / "profile-b", f"--screenshot={shot}")
    run_dom = chromium(f"{prefect_server.ui_url}/runs/flow-run/{monitor.id}",
                       tmp_path / "profile-c", "--dump-dom")

    assert "Can't connect to Server API" not in artifact_dom.stdout
    assert heading in artifact_dom.stdout, artifact_dom.stdout[-3000:]
    assert monitor.name in run_dom.stdout, run_dom.stdout[-3000:]
    assert run_page.returncode == 0, run_page.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000
