"""The ``mlops`` command line: one typer app, a sub-app or command per group. Each group lives in its
own module exposing ``register(app)``.

``main(argv)`` runs it in this process and returns the exit code (the ``mlops`` script and
``python -m flows.<job>`` pass it to ``sys.exit``): 0 done, 1 a verdict the command reports
(a rejected batch, a failed check, a breaking change), 2 a usage error or an ``MlopsError``,
printed as one ``error: ...`` line on stderr without a traceback."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable
from typing import Any

import typer
from typer._click.exceptions import NoArgsIsHelpError  # typer's vendored click: no public name

from mlops_onprem.errors import MlopsError

# subcommand modules, in help order
COMMAND_MODULES = [
    "mlops_onprem.cli.doctor",
    "mlops_onprem.cli.contract",
    "mlops_onprem.cli.jobs",
    "mlops_onprem.cli.models",
    "mlops_onprem.cli.scoring",
    "mlops_onprem.cli.maintenance",
]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


def new_app(help_text: str, no_args_is_help: bool = True) -> typer.Typer:
    """A typer (sub-)app with the settings every ``mlops`` group shares: ``-h`` as ``--help``, no
    shell-completion options (they need extra packages), help when a group is called bare."""
    return typer.Typer(help=help_text, no_args_is_help=no_args_is_help, add_completion=False,
                       context_settings=CONTEXT_SETTINGS, pretty_exceptions_enable=False)


def add_command(app: typer.Typer, name: str, function: Callable[..., Any]) -> None:
    """``function`` as command ``name``; its docstring is the help, each paragraph on one line
    (typer's rich help keeps single line breaks)."""
    paragraphs = inspect.cleandoc(function.__doc__ or "").split("\n\n")
    app.command(name, help="\n\n".join(re.sub(r"\s*\n\s*", " ", p) for p in paragraphs))(function)


def build_app() -> typer.Typer:
    """The whole ``mlops`` app (a group missing from this build is left out)."""
    app = new_app("mlops-onprem command line: run the jobs (ingest, train, score, monitor), inspect "
                  "and move models, check the infrastructure. Every list/show command takes --json.")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # group not installed in this build
            raise
        module.register(app)
    return app


def build_command() -> Any:
    """The (typer-vendored) click command behind the app: what ``main`` runs; tests walk its tree."""
    return typer.main.get_command(build_app())


def _usage_error(exc: typer.TyperException) -> int:
    """One line on stderr naming what was wrong and where to read the usage."""
    if isinstance(exc, NoArgsIsHelpError):  # a bare group: typer printed its help
        return exc.exit_code
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    message = exc.format_message().replace("Value error, ", "")  # typer validates through pydantic
    print(f"error: {message}{hint}", file=sys.stderr)
    return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mlops``; returns the process exit code."""
    import mlops_onprem  # noqa: F401  (telemetry off before anything else loads)

    return run(build_command(), argv, prog_name="mlops")


def run(command: Any, argv: list[str] | None, prog_name: str) -> int:
    """Run a typer app's click ``command`` on ``argv`` (default ``sys.argv[1:]``) in this process:
    its return value as the exit code, usage errors and ``MlopsError`` as one ``error:`` line."""
    if isinstance(command, typer.Typer):
        command = typer.main.get_command(command)
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        result = command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except typer.TyperException as exc:
        return _usage_error(exc)
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        return 130
    except MlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
