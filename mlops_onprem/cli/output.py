"""How ``mlops`` commands print: plain aligned tables for people, ``--json`` for scripts, and
what is running while a flow runs."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any

from mlops_onprem import progress as progress_events

JSON_HELP = "print {} as JSON"  # the --json option's help, with what it prints
PROGRESS_ENV = "MLOPS_PROGRESS"  # "bar", "lines" or "off": overrides the TTY test below


def print_json(value: Any) -> None:
    """The full result, indented, with anything not JSON-native as its string."""
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def cell(value: Any, digits: int = 6) -> str:
    """One table cell: floats to ``digits`` significant digits, None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell (numbers right-aligned), a dashed rule under the
    header; plain text, so it reads the same in a terminal, a log file and a test."""
    text = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(isinstance(r[i], int | float) and not isinstance(r[i], bool)
                                  or r[i] is None for r in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in text])


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    print(render_table(headers, rows))


def print_fields(fields: Sequence[tuple[str, Any]]) -> None:
    """A two-column summary of one result: name, value (no header)."""
    width = max((len(name) for name, _ in fields), default=0)
    for name, value in fields:
        print(f"{name:<{width}}  {cell(value)}")


@contextmanager
def progress(message: str) -> Iterator[None]:
    """Say on stderr what started and, at the end, how long it took; in between the flow's own
    log lines (each task's start and finish) are the progress (``mlops score run`` adds a bar:
    :func:`step_progress`)."""
    started = time.monotonic()
    print(f"{message}: started (the flow's log follows)", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        print(f"{message}: {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)


def progress_style(json_output: bool) -> str:
    """How to show a job's steps: ``bar`` (rich, on stderr) when stderr is a terminal, ``lines``
    (one plain line per step) when it is not, ``off`` with ``--json``; ``MLOPS_PROGRESS`` forces
    one of the three."""
    forced = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if forced in ("bar", "lines", "off"):
        return forced
    if json_output:
        return "off"
    isatty = getattr(sys.stderr, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"


def _prefect_console_handlers() -> list[logging.Handler]:
    """Prefect's console log handlers (one instance, shared by its loggers, in the default config)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger()] + [logger for logger in logging.Logger.manager.loggerDict.values()
                                       if isinstance(logger, logging.Logger)]
    found: dict[int, logging.Handler] = {}
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler):
                found[id(handler)] = handler
    return list(found.values())


class _LogAboveBar:
    """Stands in for a ``PrefectConsoleHandler``'s console while a bar is live: its log lines go
    through the bar's console, which prints them above the bar (Prefect's own console writes to
    the stream it captured at start-up, straight over the bar). Messages are printed as they are
    (no rich markup: a log line may hold brackets)."""

    def __init__(self, console: Any) -> None:
        self._console = console

    def print(self, *objects: Any, **options: Any) -> None:
        self._console.print(*objects, markup=False, highlight=False, **options)


@contextmanager
def _prefect_logs_above(console: Any) -> Iterator[None]:
    handlers = _prefect_console_handlers()
    saved = [handler.console for handler in handlers]  # type: ignore[attr-defined]
    for handler in handlers:
        handler.console = _LogAboveBar(console)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for handler, console_ in zip(handlers, saved, strict=True):
            handler.console = console_  # type: ignore[attr-defined]


@contextmanager
def step_progress(style: str, label: str) -> Iterator[None]:
    """Show the steps a job reports through :mod:`mlops_onprem.progress` on stderr: a rich bar
    per stage (``bar``: done/total, elapsed, the last step's name; Prefect's log lines print
    above it), one line per step, prefixed with ``label`` (``lines``), or nothing (``off``)."""
    if style == "off":
        yield
        return
    if style == "lines":
        counts: dict[str, tuple[int, int | None]] = {}  # stage -> (done, total)
        lock = threading.Lock()  # steps finish on the task runner's threads

        def line(event: progress_events.ProgressEvent) -> None:
            with lock:
                done, total = counts.get(event.stage, (0, None))
                if event.kind == "start":
                    counts[event.stage] = (0, event.total)
                    return
                counts[event.stage] = (done := done + event.steps, total)
                of = f"/{total}" if total is not None else ""
                detail = f": {event.detail}" if event.detail else ""
                print(f"{label}: {event.stage} {done}{of}{detail}", file=sys.stderr, flush=True)

        with progress_events.listening(line):
            yield
        return

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr, force_terminal=True)  # MLOPS_PROGRESS=bar: also off a TTY
    bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("{task.fields[detail]}"), console=console,
                   redirect_stdout=False)  # stdout stays the command's output alone
    tasks: dict[str, Any] = {}

    def update(event: progress_events.ProgressEvent) -> None:
        if event.kind == "start" or event.stage not in tasks:
            tasks[event.stage] = bar.add_task(event.stage, total=event.total, detail="")
        if event.kind == "advance":  # the step's name, short enough for the line: key -> file stem
            detail = PurePosixPath(event.detail).stem[:24] if event.detail else ""
            bar.update(tasks[event.stage], advance=event.steps, detail=detail)
        bar.refresh()  # each step drawn, not only on the next tick

    with bar, _prefect_logs_above(console), progress_events.listening(update):
        yield
