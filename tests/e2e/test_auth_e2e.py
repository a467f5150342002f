"""Basic auth on the e2e Prefect server: what has no credentials is refused, what the kit runs
authenticates (the CLI that deployed prefect.yaml, the workers, the flow-run processes).

First e2e module on purpose: it starts the zombie scenario (``zombie_run``), whose automation
takes a while to act; test_zombie_runs_e2e.py (the last module) checks the outcome.
"""

from __future__ import annotations

import pytest

from .conftest import WORK_POOL, Deployed, PrefectServer, ZombieRun

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]


def test_the_server_refuses_requests_without_or_with_wrong_credentials(
    prefect_server: PrefectServer, deployed: Deployed
):
    user, _ = prefect_server.auth_string.split(":", 1)
    wrong = PrefectServer(port=prefect_server.port, home=prefect_server.home,
                          auth_string=f"{user}:not-the-password")
    for method, path, body in [("POST", "/deployments/filter", {}), ("POST", "/flow_runs/filter", {}),
                               ("GET", f"/work_pools/{WORK_POOL}", None),
                               ("POST", "/events/filter", {})]:
        assert prefect_server.request(method, path, body, authenticated=False)[0] == 401, path
        assert wrong.request(method, path, body)[0] == 401, path
        assert prefect_server.request(method, path, body)[0] == 200, path
    # liveness probes stay open (systemd/compose health checks carry no credentials)
    assert prefect_server.request("GET", "/health", authenticated=False)[0] == 200
    # and the deployments the authenticated CLI registered are there
    status, found = prefect_server.request("POST", "/deployments/filter", {})
    assert {d["name"] for d in found} >= {"onprem"}, found


def test_workers_and_flow_runs_authenticate_and_send_heartbeats(
    prefect_server: PrefectServer, worker, zombie_run: ZombieRun
):
    """Every session worker is online (its heartbeats are authenticated API calls); a worker
    picked up a deployment run, whose process sent a heartbeat event over the authenticated
    events socket before it was killed."""
    status, workers = prefect_server.request("POST", f"/work_pools/{WORK_POOL}/workers/filter", {})
    assert status == 200
    online = {w["name"] for w in workers if w["status"] == "ONLINE"}
    assert {f"e2e-{queue}" for queue in worker.procs} <= online, workers
    assert zombie_run.heartbeats >= 1 and zombie_run.killed_pids
