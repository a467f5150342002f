"""The Prefect UI served by the e2e server renders what a data engineer opens (headless
Chromium, loopback only): a monitoring run and its drift report, the runs list, the model card
(with its holdout figure), the monitoring trend and a rejected batch's validation report.
`make test` installs Debian's chromium when it is missing and it runs as root with apt (a failed
install fails `make test`); elsewhere (no root, no apt) these tests are skipped. Screenshots go
to $MLOPS_E2E_SCREENSHOT_DIR (default: the test's tmp dir).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from mlops_onprem import keys
from mlops_onprem.store.parquet import put_dataframe
from mlops_onprem.synthetic import generate_batch

from .conftest import (
    DATASET,
    RUN_TIMEOUT_S,
    SPEC,
    PipelineRun,
    PrefectServer,
    fresh_start_row,
    require_deployment,
)

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


@pytest.fixture(scope="module")
def monitor(pipeline_run: PipelineRun, worker, deployed, e2e_store, prefect_server: PrefectServer):
    """A fresh inbox batch scored by whichever version is champion now (earlier e2e tests may
    have promoted a retrain), then one monitor-model/onprem run: both tests read its pages."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from mlops_onprem.store.s3 import S3Store

    require_deployment(deployed, "score-batch/onprem")
    require_deployment(deployed, "monitor-model/onprem")
    store = S3Store(e2e_store.admin_settings)
    put_dataframe(store, keys.scoring_inbox_key(DATASET, f"ui-{uuid.uuid4().hex[:6]}"),
                  generate_batch(SPEC, 300, seed=40, with_label=False, start_row=fresh_start_row()))
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        scored = run_deployment("score-batch/onprem", timeout=RUN_TIMEOUT_S, poll_interval=1)
        assert scored.state.is_completed(), f"{scored.state}\n{worker.tail()}"
        run = run_deployment("monitor-model/onprem", parameters={"retrain": False},
                             timeout=RUN_TIMEOUT_S, poll_interval=1)
    assert run.state.is_completed(), f"{run.state}\n{worker.tail()}"
    return run


def test_monitoring_run_page_renders_the_drift_report(
    monitor, prefect_server: PrefectServer, prefect_client_settings, tmp_path: Path,
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
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


def _latest_artifact(client, key: str | None = None, like: str | None = None,
                     containing: str | None = None):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]) if key
                                       else ArtifactFilterKey(like_=like)),
        sort=ArtifactSort.CREATED_DESC)
    found = [a for a in found if containing is None or containing in str(a.data)]
    assert found, (key or like, containing)
    return found[0]


def test_the_ui_renders_the_runs_list_model_card_trend_and_a_rejected_validation(
    monitor, prefect_server: PrefectServer, prefect_client_settings, tmp_path: Path,
):
    """What a data engineer opens after a day: the runs list (named runs), the model card
    (importance table, the holdout figure as an image), the monitoring trend and a rejected
    batch's validation report with its quarantine key, each rendered by the UI itself."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        pages = {
            "model card": (_latest_artifact(client, "model-card-demo"), "Feature importance"),
            "trend": (_latest_artifact(client, "monitoring-trend-demo"), "Monitoring trend"),
            "rejected batch": (_latest_artifact(client, like="validation-demo-%",
                                                containing="REJECTED"), "quarantine key"),
        }
    for i, (what, (artifact, text)) in enumerate(pages.items()):
        dom = chromium(f"{prefect_server.ui_url}/artifacts/artifact/{artifact.id}",
                       tmp_path / f"profile-{i}", "--dump-dom").stdout
        assert "Can't connect to Server API" not in dom, what
        assert text in dom, (what, dom[-2000:])
        if what == "model card":
            assert 'src="data:image/png;base64,' in dom, "the holdout figure is not rendered"
    shot_dir = Path(os.environ.get(SCREENSHOT_DIR_ENV) or tmp_path)
    shot = shot_dir / "runs-list.png"
    shot_dir.mkdir(parents=True, exist_ok=True)
    listing = chromium(f"{prefect_server.ui_url}/runs", tmp_path / "profile-runs",
                       f"--screenshot={shot}")
    runs_dom = chromium(f"{prefect_server.ui_url}/runs", tmp_path / "profile-runs-dom",
                        "--dump-dom").stdout
    assert listing.returncode == 0 and shot.stat().st_size > 10_000
    assert monitor.name in runs_dom, runs_dom[-2000:]
