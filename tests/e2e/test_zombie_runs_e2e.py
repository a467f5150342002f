"""The last e2e module: what a session leaves behind.

- Zombie runs: the run ``zombie_run`` killed together with its worker (test_auth_e2e.py started
  it, early, so the automation's wait overlapped the other tests) is marked Crashed by the
  automation of deployments/automations/crash-zombie-flow-runs.yaml, with that file's message:
  nothing else was left to report it.
- The server's basic-auth string appears in no log (server, workers, flow runs), artifact or
  event of the whole session, neither as written nor as the Basic header's base64.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import yaml

from .conftest import HEARTBEAT_EVENT, REPO, PrefectServer, ZombieRun, flow_run_events

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]
AUTOMATION = REPO / "deployments" / "automations" / "crash-zombie-flow-runs.yaml"


def test_a_flow_run_whose_process_died_is_marked_crashed_by_the_automation(
    zombie_run: ZombieRun, prefect_server: PrefectServer, prefect_client_settings
):
    from prefect.client.orchestration import get_client

    spec = yaml.safe_load(AUTOMATION.read_text(encoding="utf-8"))
    within = float(spec["trigger"]["within"])
    # the trigger expects a heartbeat within `within` s of the last one; it is evaluated every 5 s
    deadline = zombie_run.killed_at + within + 60
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(zombie_run.flow_run_id).state
            if state.is_final() or time.monotonic() > deadline:
                break
            time.sleep(2)
    waited = time.monotonic() - zombie_run.killed_at
    assert state.type.value == "CRASHED", (
        f"{state} {waited:.0f} s after the kill\n"
        f"{zombie_run.worker_log.read_text(errors='replace')[-2000:]}")
    assert state.message == spec["actions"][0]["message"], state.message  # not the worker's
    heartbeats = flow_run_events(prefect_server, zombie_run.flow_run_id, [HEARTBEAT_EVENT])
    assert len(heartbeats) == zombie_run.heartbeats  # none after the kill: it really died


def _server_pages(server: PrefectServer, path: str, key: str | None = None) -> list:
    """Every object a filter endpoint returns, page by page."""
    found, offset = [], 0
    while True:
        status, page = server.request("POST", path, {"limit": 200, "offset": offset})
        assert status == 200, (path, page)
        items = page[key] if key else page
        found += items
        if len(items) < 200:
            return found
        offset += 200


def test_the_auth_string_appears_in_no_log_artifact_or_event(prefect_server: PrefectServer):
    password = prefect_server.auth_string.split(":", 1)[1]
    forms = {password, base64.b64encode(prefect_server.auth_string.encode()).decode()}
    texts = {str(path): path.read_text(errors="replace")
             for path in Path(prefect_server.home).glob("*.log")}
    assert any("worker" in name for name in texts), sorted(texts)
    texts["flow and task run logs"] = json.dumps(_server_pages(prefect_server, "/logs/filter"))
    texts["artifacts"] = json.dumps(_server_pages(prefect_server, "/artifacts/filter"))
    status, events = prefect_server.request("POST", "/events/filter", {"limit": 50})
    assert status == 200
    pages = [events]
    while pages[-1].get("next_page") and len(pages) < 400:
        url = pages[-1]["next_page"].split("/api", 1)[1]
        status, page = prefect_server.request("GET", url)
        assert status == 200
        pages.append(page)
    texts["events"] = json.dumps(pages)
    assert len(texts["flow and task run logs"]) > 10_000  # the session's runs did log
    leaks = sorted(name for name, text in texts.items() if any(form in text for form in forms))
    assert not leaks, f"the auth string appears in: {leaks}"
