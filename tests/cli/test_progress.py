"""The progress hook between a flow and ``mlops score run``: listeners, futures, the plain-line
display and Prefect's console handler handed to the bar and back."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr
from io import StringIO

import pytest

from mlops_onprem import progress
from mlops_onprem.cli import output


def test_nothing_listening_costs_nothing_not_even_a_callback():
    class Untouchable:
        def add_done_callback(self, fn):
            raise AssertionError("no listener: no callback")

    assert not progress.active()
    progress.start("stage", 3)
    progress.advance("stage")
    progress.follow("stage", [Untouchable()])


def test_follow_reports_one_step_per_future_from_the_worker_threads():
    events: list[progress.ProgressEvent] = []
    with progress.listening(events.append), ThreadPoolExecutor(4) as pool:
        assert progress.active()
        futures = [pool.submit(pow, 2, n) for n in range(5)]
        progress.follow("squares", futures, [f"n={n}" for n in range(5)])
    assert not progress.active()
    assert events[0] == progress.ProgressEvent("start", "squares", total=5, steps=0)
    advances = [e for e in events[1:] if e.kind == "advance"]
    assert sorted(e.detail for e in advances) == [f"n={n}" for n in range(5)]


def test_a_failing_listener_never_breaks_the_work():
    seen = []

    def broken(event):
        raise RuntimeError("display gone")

    with progress.listening(broken), progress.listening(seen.append):
        progress.advance("stage", 2)
    assert [e.steps for e in seen] == [2]


@pytest.mark.parametrize("env, json_output, tty, style", [
    (None, False, True, "bar"), (None, False, False, "lines"), (None, True, True, "off"),
    ("lines", False, True, "lines"), ("bar", False, False, "bar"), ("off", False, True, "off"),
])
def test_progress_style_follows_the_terminal_json_and_the_override(monkeypatch, env, json_output, tty,
                                                                   style):
    class Err(StringIO):
        def isatty(self):
            return tty

    if env is None:
        monkeypatch.delenv(output.PROGRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(output.PROGRESS_ENV, env)
    monkeypatch.setattr(sys, "stderr", Err())
    assert output.progress_style(json_output) == style


def test_plain_lines_count_each_stage_to_its_total():
    err = StringIO()
    with redirect_stderr(err), output.step_progress("lines", "job"):
        progress.start("parts", 2)
        progress.advance("parts", detail="a")
        progress.advance("parts", detail="b")
        progress.advance("other")
    assert err.getvalue().splitlines() == ["job: parts 1/2: a", "job: parts 2/2: b", "job: other 1"]


def test_the_bar_takes_prefect_s_console_handlers_and_gives_them_back():
    import prefect.main  # noqa: F401  (sets up Prefect's logging, as importing a flow does)

    handlers = output._prefect_console_handlers()
    assert handlers
    before = [h.console for h in handlers]
    err = StringIO()
    with redirect_stderr(err), output.step_progress("bar", "job"):
        assert all(isinstance(h.console, output._LogAboveBar) for h in handlers)
        progress.start("parts", 1)
        handlers[0].console.print("[a log line with brackets]")
        progress.advance("parts")
    assert [h.console for h in handlers] == before
    assert "[a log line with brackets]" in err.getvalue() and "1/1" in err.getvalue()
