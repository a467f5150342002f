"""run_child_deployment: a child's failure becomes the parent's, with the child's message.

Runs against the session's real Prefect API. The child runs are created by ``run_deployment``
from real deployments; a stand-in worker thread moves them through Running to their final state
through the API (a real process worker running real flows is exercised in tests/e2e).
"""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import StateType
from prefect.states import Completed, Crashed, Failed, Running, State

from tasks.deployments import (
    ChildRunFailedError,
    ChildRunTimeoutError,
    raise_unless_completed,
    run_child_deployment,
)

CHILD_FLOW = "helper-child"


@pytest.fixture
def deployment() -> tuple[str, UUID]:
    """A fresh deployment of the (never executed) child flow: its full name and id."""
    name = f"d-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(CHILD_FLOW)
        deployment_id = client.create_deployment(flow_id=flow_id, name=name)
    return f"{CHILD_FLOW}/{name}", deployment_id


@pytest.fixture
def stand_in_worker() -> Iterator[Callable[[UUID, State], None]]:
    """Start a thread that takes the deployment's next run through Running to ``final``."""
    threads: list[threading.Thread] = []
    stop = threading.Event()

    def finish_runs(deployment_id: UUID, final: State) -> None:
        with get_client(sync_client=True) as client:
            while not stop.is_set():
                runs = client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
                )
                pending = [r for r in runs if r.state and r.state.type == StateType.SCHEDULED]
                for run in pending:
                    client.set_flow_run_state(run.id, Running(), force=True)
                    client.set_flow_run_state(run.id, final, force=True)
                if pending:
                    return
                time.sleep(0.2)

    def start(deployment_id: UUID, final: State) -> None:
        # the Prefect API URL lives in context variables; a plain thread would not see it
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(finish_runs, deployment_id, final),
                                  daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=10)


@flow(name="helper-parent")
def parent(deployment: str, timeout_s: float) -> dict:
    return run_child_deployment(deployment, {"x": 1}, timeout_s, poll_interval_s=0.2)


def test_completed_child_returns_its_record_and_is_linked_to_the_parent(deployment,
                                                                        stand_in_worker):
    name, deployment_id = deployment
    stand_in_worker(deployment_id, Completed(message="all good"))

    record = parent(name, 30.0)

    assert record["state"] == "COMPLETED"
    assert record["deployment"] == name
    with get_client(sync_client=True) as client:
        child = client.read_flow_run(UUID(record["flow_run_id"]))
    assert child.parameters == {"x": 1}
    assert child.parent_task_run_id is not None  # shown under the parent in the UI


def test_failed_child_fails_the_parent_with_the_childs_message(deployment, stand_in_worker):
    name, deployment_id = deployment
    stand_in_worker(deployment_id, Failed(message="validation rejected batch b7: column 'age'"))

    state = parent(name, 30.0, return_state=True)

    assert state.is_failed()
    with pytest.raises(ChildRunFailedError, match="rejected batch b7: column 'age'") as excinfo:
        state.result()
    assert name in str(excinfo.value)
    assert "Failed" in str(excinfo.value)


def test_crashed_child_fails_the_parent(deployment, stand_in_worker):
    name, deployment_id = deployment
    stand_in_worker(deployment_id, Crashed(message="worker process killed (SIGKILL)"))

    state = parent(name, 30.0, return_state=True)

    with pytest.raises(ChildRunFailedError, match=r"ended Crashed: worker process killed"):
        state.result()


def test_child_nobody_runs_times_out_and_is_cancelled(deployment):
    name, deployment_id = deployment

    state = parent(name, 1.0, return_state=True)

    with pytest.raises(ChildRunTimeoutError, match="still Scheduled after 1.0s"):
        state.result()
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
    assert [r.state.type for r in runs] == [StateType.CANCELLED]


def test_raise_unless_completed_accepts_only_completed(deployment):
    name, deployment_id = deployment
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(deployment_id)
        client.set_flow_run_state(run.id, Running(), force=True)
        client.set_flow_run_state(run.id, Completed(), force=True)
        done = client.read_flow_run(run.id)
    raise_unless_completed(name, done, 1.0)  # no error
    with pytest.raises(ChildRunFailedError, match="ended Cancelled"):
        raise_unless_completed(name, done.model_copy(update={"state": _cancelled()}), 1.0)


def _cancelled() -> State:
    from prefect.states import Cancelled

    return Cancelled(message="operator cancelled")
