"""The ``mlops`` command line. Each group lives in its own module exposing ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description="mlops-onprem command line")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # group not installed in this build
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mlops``; returns the process exit code."""
    import mlops_onprem  # noqa: F401  (telemetry off before anything else loads)

    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except MlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
