"""``mlops doctor``: the infrastructure inventory, as a table; non-zero exit when something is missing."""

from __future__ import annotations

from typing import Annotated

import typer

from mlops_onprem.cli.output import JSON_HELP, print_json
from mlops_onprem.doctor import Status, render_table, run_checks
from mlops_onprem.settings import get_settings


def register(app: typer.Typer) -> None:
    from mlops_onprem.cli import add_command

    add_command(app, "doctor", doctor)


def doctor(
    probe_mib: Annotated[int, typer.Option("--probe-mib", help="size of the store speed probe (MiB)")] = 64,
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP.format("every check"))] = False,
) -> int:
    """Check this host, Prefect and the object store (conditional writes included); exit 1 when
    something is missing."""
    results = run_checks(get_settings(), probe_mib=probe_mib)
    gaps = [r for r in results if r.status == Status.FAIL]
    if json_output:
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
