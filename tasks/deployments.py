"""Run a child deployment and make its outcome the parent's: a failed child fails the parent.

``prefect.deployments.run_deployment`` returns the child flow run whatever its final state, so a
parent that does not look at that state reports success over a failed child. The task here
waits for the child, checks the final state and raises :class:`ChildRunFailedError` carrying the
child's own state message (and its run id, to find it in the UI).
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from prefect import task
from prefect.cache_policies import NONE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.exceptions import MissingResult
from prefect.logging import get_run_logger
from prefect.states import Cancelled, Cancelling

from mlops_onprem.errors import MlopsError


class ChildRunError(MlopsError):
    """A child deployment run did not complete."""


class ChildRunFailedError(ChildRunError):
    """The child run ended in a non-completed final state (failed, crashed, cancelled)."""


class ChildRunTimeoutError(ChildRunError):
    """The child run was not finished when the parent stopped waiting."""


def child_run_record(deployment: str, flow_run: FlowRun) -> dict[str, Any]:
    """A small, JSON-able summary of a child run (passed between tasks instead of the run)."""
    state = flow_run.state
    return {
        "deployment": deployment,
        "flow_run_id": str(flow_run.id),
        "flow_run_name": flow_run.name,
        "state": state.type.value if state else None,
        "state_name": state.name if state else None,
        "message": state.message if state else None,
    }


def raise_unless_completed(deployment: str, flow_run: FlowRun, timeout_s: float | None) -> None:
    """Raise the matching :class:`ChildRunError` unless ``flow_run`` completed.

    Takes the deployment name (for the message), the child run as returned by
    ``run_deployment`` and the timeout it was given. Returns None when the child completed.
    Raises ChildRunTimeoutError when it is not in a final state yet, ChildRunFailedError when
    it ended failed, crashed or cancelled; both messages quote the child's state message.
    """
    state = flow_run.state
    where = f"child deployment {deployment!r} run {flow_run.name!r} ({flow_run.id})"
    if state is None or not state.is_final():
        current = state.name if state else "no state"
        raise ChildRunTimeoutError(
            f"{where} was still {current} after {timeout_s}s: the parent stopped waiting"
        )
    if state.type != StateType.COMPLETED:
        message = state.message or "no message"
        raise ChildRunFailedError(f"{where} ended {state.name}: {message}")


def cancel_child(flow_run_id: UUID) -> None:
    """Stop a child the parent gave up on, so it cannot start (or keep running) unobserved.

    A run no worker has picked up yet is cancelled directly; a running one is asked to cancel.
    """
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(flow_run_id)
        if current.state is not None and current.state.is_final():
            return
        started = current.state is not None and current.state.type == StateType.RUNNING
        new_state = Cancelling(message="parent stopped waiting") if started else Cancelled(
            message="parent stopped waiting before the run started"
        )
        client.set_flow_run_state(flow_run_id, new_state, force=True)


@task(name="run-child-deployment", cache_policy=NONE, task_run_name="run {deployment}")
def run_child_deployment(
    deployment: str,
    parameters: dict[str, Any] | None = None,
    timeout_s: float = 3600.0,
    *,
    poll_interval_s: float = 2.0,
    cancel_on_timeout: bool = True,
    fetch_result: bool = False,
    idempotency_key: str | None = None,
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """Run ``deployment`` ("flow-name/deployment-name") as a linked child and wait for it.

    Takes the child's parameters (merged over the deployment's defaults), how long to wait,
    the polling interval, whether to cancel the child when the wait times out, whether to load
    the child's return value (needs result persistence on the child's flow) and an optional
    idempotency key (a retried parent then reuses the same child run instead of starting a
    second one). Returns :func:`child_run_record` (plus ``"result"`` with ``fetch_result``).
    Raises ChildRunFailedError with the child's state message when the child did not
    complete, ChildRunTimeoutError when it was not finished after ``timeout_s``.

    Not retried by design: a retry would start a second child run.
    """
    logger = get_run_logger()
    started = time.monotonic()
    flow_run = run_deployment(
        name=deployment, parameters=parameters or {}, timeout=timeout_s,
        poll_interval=poll_interval_s, idempotency_key=idempotency_key, tags=tags,
        as_subflow=True,
    )
    record = child_run_record(deployment, flow_run)
    record["seconds"] = round(time.monotonic() - started, 3)
    logger.info("child %s run %s ended %s after %.1fs", deployment, flow_run.name,
                record["state_name"], record["seconds"])
    try:
        raise_unless_completed(deployment, flow_run, timeout_s)
    except ChildRunTimeoutError:
        if cancel_on_timeout:
            cancel_child(flow_run.id)
            logger.warning("cancelled child run %s (%s)", flow_run.name, flow_run.id)
        raise
    if fetch_result:
        try:
            record["result"] = flow_run.state.result(raise_on_failure=True)
        except MissingResult as exc:
            raise ChildRunError(
                f"child deployment {deployment!r} run {flow_run.name!r} completed but its "
                f"result was not persisted ({exc}): set persist_result=True on that flow"
            ) from None
    return record
