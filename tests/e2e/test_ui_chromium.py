"""The Prefect UI served by the e2e server renders what a data engineer opens (headless
Chromium, loopback only): a monitoring run and its drift report, the runs list, the model card
(with its holdout figure), the monitoring trend and a rejected batch's validation report.
`make test` installs Debian's chromium when it is missing and it runs as root with apt (a failed
install fails `make test`); elsewhere (no root, no apt) these tests are skipped. Screenshots go
to $MLOPS_E2E_SCREENSHOT_DIR (default: the test's tmp dir).
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import subprocess
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
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


class UI:
    """The Prefect UI as a logged-in browser sees it. The server runs with basic auth, and the
    UI sends the password it keeps in localStorage (``prefect-password``, what its login page
    stores); a headless Chromium cannot type it, so this loopback proxy serves the UI's pages
    and one page that stores the password before it opens the page asked for. The UI calls the
    API itself directly, with that password."""

    def __init__(self, server: PrefectServer) -> None:
        token = base64.b64encode(server.auth_string.encode()).decode()
        login = ("<!doctype html><script>localStorage.setItem('prefect-password', "
                 f"{json.dumps(token)});"
                 "location.replace(new URLSearchParams(location.search).get('next'));"
                 "</script>").encode()
        upstream = ("127.0.0.1", server.port)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server interface
                if self.path.startswith("/__e2e_login"):
                    self._reply(200, [("Content-Type", "text/html")], login)
                    return
                connection = http.client.HTTPConnection(*upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("accept", "cookie", "user-agent")}
                connection.request("GET", self.path, headers=headers)
                response = connection.getresponse()
                body = response.read()
                keep = ("content-type", "location", "cache-control", "set-cookie")
                self._reply(response.status,
                            [(k, v) for k, v in response.getheaders() if k.lower() in keep], body)
                connection.close()

            def _reply(self, status: int, headers: list, body: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # quiet: nothing of it lands in a log
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        """Open ``path`` (e.g. /runs) logged in."""
        return f"{self.base}/__e2e_login?next={urllib.parse.quote(path)}"


@pytest.fixture(scope="module")
def ui(prefect_server: PrefectServer) -> Iterator[UI]:
    proxy = UI(prefect_server)
    try:
        yield proxy
    finally:
        proxy.httpd.shutdown()


@pytest.fixture(scope="module")
def monitor(pipeline_run: PipelineRun, worker, deployed, e2e_store, prefect_server: PrefectServer):
    """A fresh inbox batch scored by whichever version is champion now (earlier e2e tests may
    have promoted a retrain), then one monitor-model/onprem run: both tests read its pages."""
    from prefect.deployments import run_deployment
    from prefect.settings import temporary_settings

    from mlops_onprem.store.s3 import S3Store

    require_deployment(deployed, "score-batch/onprem")
    require_deployment(deployed, "monitor-model/onprem")
    store = S3Store(e2e_store.admin_settings)
    put_dataframe(store, keys.scoring_inbox_key(DATASET, f"ui-{uuid.uuid4().hex[:6]}"),
                  generate_batch(SPEC, 300, seed=40, with_label=False, start_row=fresh_start_row()))
    with temporary_settings(updates=prefect_server.client_settings()):
        scored = run_deployment("score-batch/onprem", timeout=RUN_TIMEOUT_S, poll_interval=1)
        assert scored.state.is_completed(), f"{scored.state}\n{worker.tail()}"
        run = run_deployment("monitor-model/onprem", parameters={"retrain": False},
                             timeout=RUN_TIMEOUT_S, poll_interval=1)
    assert run.state.is_completed(), f"{run.state}\n{worker.tail()}"
    return run


def test_monitoring_run_page_renders_the_drift_report(
    monitor, ui: UI, prefect_client_settings, tmp_path: Path,
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

    artifact_dom = chromium(ui.url(f"/artifacts/artifact/{report.id}"),
                            tmp_path / "profile-a", "--dump-dom")
    shot_dir = Path(os.environ.get(SCREENSHOT_DIR_ENV) or tmp_path)
    shot_dir.mkdir(parents=True, exist_ok=True)
    shot = shot_dir / "monitoring-flow-run.png"
    run_page = chromium(ui.url(f"/runs/flow-run/{monitor.id}"),
                        tmp_path / "profile-b", f"--screenshot={shot}")
    run_dom = chromium(ui.url(f"/runs/flow-run/{monitor.id}"),
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
    monitor, ui: UI, prefect_client_settings, tmp_path: Path,
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
        dom = chromium(ui.url(f"/artifacts/artifact/{artifact.id}"),
                       tmp_path / f"profile-{i}", "--dump-dom").stdout
        assert "Can't connect to Server API" not in dom, what
        assert text in dom, (what, dom[-2000:])
        if what == "model card":
            assert 'src="data:image/png;base64,' in dom, "the holdout figure is not rendered"
    shot_dir = Path(os.environ.get(SCREENSHOT_DIR_ENV) or tmp_path)
    shot = shot_dir / "runs-list.png"
    shot_dir.mkdir(parents=True, exist_ok=True)
    listing = chromium(ui.url("/runs"), tmp_path / "profile-runs",
                       f"--screenshot={shot}")
    runs_dom = chromium(ui.url("/runs"), tmp_path / "profile-runs-dom",
                        "--dump-dom").stdout
    assert listing.returncode == 0 and shot.stat().st_size > 10_000
    assert monitor.name in runs_dom, runs_dom[-2000:]
