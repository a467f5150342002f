"""How ``mlops`` commands print: plain aligned tables for people, ``--json`` for scripts, and
what is running while a flow runs."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


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
    log lines (each task's start and finish) are the progress. A rich spinner was tried: Prefect's
    console handler writes to the stream it captured at start-up, so its lines landed on the
    spinner's line instead of above it."""
    started = time.monotonic()
    print(f"{message}: started (the flow's log follows)", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        print(f"{message}: {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
