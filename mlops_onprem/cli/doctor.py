"""``mlops doctor``: the infrastructure inventory, as a table; non-zero exit when something is missing."""

from __future__ import annotations

import argparse

from mlops_onprem.cli.output import print_json
from mlops_onprem.doctor import Status, render_table, run_checks
from mlops_onprem.settings import get_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor", help="check this host, Prefect and the object store (conditional writes included)")
    parser.add_argument("--probe-mib", type=int, default=64, help="size of the store speed probe")
    parser.add_argument("--json", action="store_true", help="every check as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    results = run_checks(get_settings(), probe_mib=args.probe_mib)
    gaps = [r for r in results if r.status == Status.FAIL]
    if args.json:
        conformance = next((r.conformance for r in results if r.conformance is not None), None)
        print_json({"checks": [{"name": r.name, "status": r.status.value, "detail": r.detail}
                               for r in results], "passed": not gaps,
                    "conditional_writes": conformance.as_dict() if conformance else None})
        return 1 if gaps else 0
    print(render_table(results))
    if gaps:
        print("\ngaps:")
        for gap in gaps:
            print(f"  - {gap.name}: {gap.detail}")
        return 1
    print("\nall checks passed")
    return 0
