"""One training at a time, however training starts: a Prefect global concurrency limit.

The ``train-model`` deployment's own ``concurrency_limit`` only counts runs of that deployment.
``run-pipeline``, ``monitor-model`` without ``training_deployment`` and ``python -m flows.train``
run ``train_model`` in-process (embedded, as a subflow), outside it; two such trainings of a
model race for its next version and its champion alias. So ``train_model`` holds one slot of a
Prefect **global concurrency limit** for its whole body (train, parity, register, promote),
whichever way it started. The limit lives in the Prefect API the run talks to (the server, or
the embedded API without ``PREFECT_API_URL``) and shows on the UI's Concurrency page.

- :func:`ensure_training_limit` creates the limit on first use
  (``MLOPS_TRAINING_CONCURRENCY_LIMIT_NAME``, ``MLOPS_TRAINING_CONCURRENCY_LIMIT``). A limit
  that exists is the operator's: a different value set in the UI or with ``prefect gcl update``
  is kept and logged, never reset.
- :func:`training_slot` waits up to ``MLOPS_TRAINING_SLOT_TIMEOUT_MINUTES`` for a slot
  (``strict``: a missing limit is an error, never a silent run without one), then raises
  :class:`TrainingSlotTimeoutError` before anything was trained or registered.
- The slot is a lease. Prefect renews it in the background while training runs, however long;
  a renewal that fails is logged and training goes on (the registry's compare-and-swap writes
  still refuse a conflicting version or promotion). A training that fails releases its slot on
  the way out; a holder that dies without releasing (killed worker) loses it when its lease
  expires (5 minutes) on a Prefect server. Embedded, the lease lives in the memory of the
  process's own temporary API, which dies with it: a killed embedded training's slot stays
  taken until ``prefect gcl update <name> --active-slots 0``. ``prefect gcl inspect <name>``
  shows the limit and its active slots.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from mlops_onprem.errors import ModelError
from mlops_onprem.settings import get_settings

#: seconds a slot's lease lasts without renewal (Prefect renews it at 3/4 of this)
LEASE_SECONDS = 300.0


class TrainingSlotError(ModelError):
    """No slot of the training concurrency limit could be held."""


class TrainingSlotTimeoutError(TrainingSlotError):
    """Every slot stayed taken for the whole ``MLOPS_TRAINING_SLOT_TIMEOUT_MINUTES``.

    Not a TimeoutError: Prefect would name the failed run "TimedOut" as if the flow's own
    timeout had expired.
    """


@dataclass(frozen=True)
class TrainingSlot:
    """The slot a training holds: the limit's name and size, and how long it waited for it."""

    name: str
    limit: int
    waited_seconds: float

    def record(self) -> dict[str, object]:
        return asdict(self)


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except Exception:  # outside a flow or task run
        return logging.getLogger(__name__)


def ensure_training_limit(name: str, limit: int) -> GlobalConcurrencyLimitResponse:
    """The global concurrency limit ``name``, created active with ``limit`` slots if missing.

    An existing limit is returned as it is (its value logged when it is not ``limit``);
    a concurrent creation (409) is read back. Raises TrainingSlotError for a limit of 0 slots,
    which no training could ever hold.
    """
    with get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=limit, active=True))
                _logger().info("created the global concurrency limit %r (limit %d)", name, limit)
            except ObjectAlreadyExists:  # another training created it first
                pass
            current = client.read_global_concurrency_limit_by_name(name)
    if current.limit != limit:
        _logger().info(
            "global concurrency limit %r has limit %d (MLOPS_TRAINING_CONCURRENCY_LIMIT=%d is "
            "only used to create it): keeping the operator's value", name, current.limit, limit)
    if not current.active:
        _logger().warning("global concurrency limit %r is disabled: trainings are not limited "
                          "(prefect gcl enable %s)", name, name)
    elif current.limit < 1:
        raise TrainingSlotError(
            f"the global concurrency limit {name!r} has limit 0: no training can run. "
            f"Set it with `prefect gcl update {name} --limit 1` (or the UI's Concurrency page)")
    return current


def _holder() -> ConcurrencyLeaseHolder | None:
    run_id = flow_run.get_id()
    return ConcurrencyLeaseHolder(type="flow_run", id=UUID(run_id)) if run_id else None


@contextmanager
def training_slot(model_name: str) -> Iterator[TrainingSlot]:
    """Hold one slot of the training limit (settings ``training_*``) while the block runs.

    Yields the :class:`TrainingSlot`. Raises TrainingSlotTimeoutError when no slot freed within
    ``training_slot_timeout_minutes`` (nothing in the block ran), TrainingSlotError for a limit
    no training can hold.
    """
    settings = get_settings()
    name = settings.training_concurrency_limit_name
    limit = ensure_training_limit(name, settings.training_concurrency_limit).limit
    timeout_s = settings.training_slot_timeout_minutes * 60
    log = _logger()
    log.info("training %s: taking a slot of %r (limit %d, waiting up to %.1f s)",
             model_name, name, limit, timeout_s)
    started = time.monotonic()
    with ExitStack() as stack:
        try:
            # renewal failures are logged, not fatal: a Prefect API blip must not kill a
            # training of hours (strict=True alone would cancel it)
            stack.enter_context(concurrency(
                name, occupy=1, timeout_seconds=timeout_s, lease_duration=LEASE_SECONDS,
                strict=True, holder=_holder(), raise_on_lease_renewal_failure=False))
        except TimeoutError as exc:
            raise TrainingSlotTimeoutError(
                f"training {model_name}: no free slot of the Prefect global concurrency limit "
                f"{name!r} (limit {limit}) within {timeout_s:.1f} s "
                f"(MLOPS_TRAINING_SLOT_TIMEOUT_MINUTES={settings.training_slot_timeout_minutes:g}); "
                f"nothing was trained or registered. Other trainings hold it: see "
                f"`prefect gcl inspect {name}` (active_slots) or the UI's Concurrency page. On "
                f"a Prefect server a killed holder's slot frees when its lease expires "
                f"({LEASE_SECONDS:.0f} s); if no training is running (or an embedded one was "
                f"killed), `prefect gcl update {name} --active-slots 0` frees it") from exc
        slot = TrainingSlot(name=name, limit=limit,
                            waited_seconds=round(time.monotonic() - started, 3))
        log.info("waited %.1f s for the training slot %r (limit %d)",
                 slot.waited_seconds, name, limit)
        yield slot
