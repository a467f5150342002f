"""``mlops contract ...``: work with data contracts (draft one from a reference file, diff two
versions of one)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from mlops_onprem.errors import ContractError


def register(app: typer.Typer) -> None:
    """Add the ``contract`` command group."""
    from mlops_onprem.cli import add_command, new_app

    group = new_app("Data contracts: draft one from a reference file, diff two versions of one.")
    add_command(group, "draft", _draft)
    add_command(group, "diff", _diff)
    app.add_typer(group, name="contract")


def _draft(
    source: Annotated[str, typer.Option("--from", metavar="PATH",
                                        help="reference Parquet or CSV (UTF-8) file")],
    dataset: Annotated[str | None, typer.Option(help="dataset name (default: the file name)")] = None,
    out: Annotated[str | None, typer.Option(metavar="FILE", help="write here instead of stdout")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite --out if it exists")] = False,
    label: Annotated[str | None, typer.Option(help="label column (default: guessed by name)")] = None,
    row_key: Annotated[str | None, typer.Option(
        help="row key column (default: first unique non-null id column)")] = None,
    timestamp: Annotated[str | None, typer.Option(
        help="timestamp column (default: first datetime column)")] = None,
    margin: Annotated[float, typer.Option(
        help="share of the observed range added on each side")] = 0.1,
    max_categories: Annotated[int, typer.Option(
        help="string columns with at most this many values become categories")] = 50,
) -> int:
    """Propose a contract from a reference Parquet/CSV file, for review (stdout, or --out)."""
    from mlops_onprem.contract_draft import draft_contract_from_file

    draft = draft_contract_from_file(
        source, dataset=dataset, label=label, row_key=row_key,
        timestamp=timestamp, margin=margin, max_categories=max_categories,
    )
    text = draft.to_yaml()
    if out is None:
        sys.stdout.write(text)
        return 0
    target = Path(out)
    if target.exists() and not force:
        raise ContractError(f"{out} exists; pass --force to overwrite a contract")
    target.write_text(text, encoding="utf-8")
    print(f"wrote draft contract {out} ({len(draft.contract.features)} features); review it before use",
          file=sys.stderr)
    return 0


def _diff(
    old_path: Annotated[str, typer.Argument(metavar="OLD", help="the contract file before the change")],
    new_path: Annotated[str, typer.Argument(metavar="NEW", help="the contract file after the change")],
    json_output: Annotated[bool, typer.Option("--json", help="print the changes as JSON")] = False,
) -> int:
    """Changes from OLD to NEW and the version bump they need; exit 1 on a breaking change or a
    too-small bump (2 for an unreadable contract)."""
    from mlops_onprem.contract_diff import diff_contracts, required_bump, version_problems
    from mlops_onprem.contracts import load_contract

    old, new = load_contract(old_path), load_contract(new_path)
    changes = diff_contracts(old, new)
    problems = version_problems(old, new, changes)
    needed = required_bump(changes)
    breaking = any(change.breaking for change in changes)
    if json_output:
        print(json.dumps({
            "old": {"path": old_path, "version": old.version},
            "new": {"path": new_path, "version": new.version},
            "required_bump": needed.value if needed else None, "breaking": breaking,
            "changes": [change.to_dict() for change in changes], "version_problems": problems,
        }, indent=2))
    else:
        print(f"{old.dataset} {old.version} ({old_path}) -> {new.dataset} {new.version} ({new_path}): "
              f"{len(changes)} change(s), needs {'a ' + needed.value + ' bump' if needed else 'no bump'}")
        for change in changes:
            print(f"  {change.describe()}")
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        if breaking:
            print("breaking: data or models made under the old contract may not work under the new one",
                  file=sys.stderr)
    return 1 if breaking or problems else 0
