"""Progress of a long job, from the code doing the work to whoever shows it (``mlops score run``'s
progress bar). A flow running in this process calls :func:`start` and :func:`advance`; a caller
that wants them wraps the run in :func:`listening`. Nothing listening: both are no-ops.

Events may come from worker threads (the task runner's), so listeners are called under no lock of
ours but must be thread-safe themselves (rich's ``Progress`` is). A listener that raises is
ignored: showing progress never breaks the work. Tasks run in other processes (Dask) report
nothing; the work is the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """``start``: a stage of ``total`` steps begins; ``advance``: ``steps`` more of it are done
    (``detail`` names what, e.g. the partition's key)."""

    kind: str  # "start" | "advance"
    stage: str
    total: int | None = None
    steps: int = 1
    detail: str | None = None


Listener = Callable[[ProgressEvent], None]

_lock = threading.Lock()
_listeners: list[Listener] = []


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call ``listener`` with every event reported until the block exits."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def active() -> bool:
    """Whether anyone listens (lets a reporter skip setting up its hooks)."""
    with _lock:
        return bool(_listeners)


def _emit(event: ProgressEvent) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(event)
        except Exception:  # noqa: BLE001, S110 - a display problem must not fail the job
            pass


def start(stage: str, total: int | None) -> None:
    """A stage of ``total`` steps (None: unknown) begins."""
    _emit(ProgressEvent("start", stage, total=total, steps=0))


def advance(stage: str, steps: int = 1, detail: str | None = None) -> None:
    """``steps`` more steps of ``stage`` are done."""
    _emit(ProgressEvent("advance", stage, steps=steps, detail=detail))


def follow(stage: str, futures: Iterator | list, details: list[str] | None = None) -> None:
    """Start ``stage`` with one step per future and advance it as each one finishes (succeeded or
    failed); ``details`` names each step. Futures are anything with ``add_done_callback``
    (Prefect's task futures, ``concurrent.futures``). Nothing listening: not even the callbacks."""
    if not active():
        return
    futures = list(futures)
    start(stage, len(futures))
    for index, future in enumerate(futures):
        detail = details[index] if details else None
        future.add_done_callback(lambda _done, detail=detail: advance(stage, detail=detail))
