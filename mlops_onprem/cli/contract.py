"""``mlops contract ...``: work with data contracts (draft one from a reference file, diff two
versions of one)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlops_onprem.errors import ContractError


def _draft(args: argparse.Namespace) -> int:
    from mlops_onprem.contract_draft import draft_contract_from_file

    draft = draft_contract_from_file(
        args.source, dataset=args.dataset, label=args.label, row_key=args.row_key,
        timestamp=args.timestamp, margin=args.margin, max_categories=args.max_categories,
    )
    text = draft.to_yaml()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    if out.exists() and not args.force:
        raise ContractError(f"{out} exists; pass --force to overwrite a contract")
    out.write_text(text, encoding="utf-8")
    print(f"wrote draft contract {out} ({len(draft.contract.features)} features); review it before use",
          file=sys.stderr)
    return 0


def _diff(args: argparse.Namespace) -> int:
    """Print what changed from OLD to NEW; 1 when a change is breaking or the version bump is
    smaller than the changes need, 0 otherwise (2, through ``main``, for an unreadable contract)."""
    from mlops_onprem.contract_diff import diff_contracts, required_bump, version_problems
    from mlops_onprem.contracts import load_contract

    old, new = load_contract(args.old), load_contract(args.new)
    changes = diff_contracts(old, new)
    problems = version_problems(old, new, changes)
    needed = required_bump(changes)
    breaking = any(change.breaking for change in changes)
    if args.json:
        print(json.dumps({
            "old": {"path": args.old, "version": old.version},
            "new": {"path": args.new, "version": new.version},
            "required_bump": needed.value if needed else None, "breaking": breaking,
            "changes": [change.to_dict() for change in changes], "version_problems": problems,
        }, indent=2))
    else:
        print(f"{old.dataset} {old.version} ({args.old}) -> {new.dataset} {new.version} ({args.new}): "
              f"{len(changes)} change(s), needs {'a ' + needed.value + ' bump' if needed else 'no bump'}")
        for change in changes:
            print(f"  {change.describe()}")
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        if breaking:
            print("breaking: data or models made under the old contract may not work under the new one",
                  file=sys.stderr)
    return 1 if breaking or problems else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``contract`` command group."""
    parser = subparsers.add_parser("contract", help="data contracts")
    commands = parser.add_subparsers(dest="contract_command", required=True)
    draft = commands.add_parser(
        "draft", help="propose a contract from a reference Parquet/CSV file, for review")
    draft.add_argument("--from", dest="source", required=True, metavar="PATH",
                       help="reference Parquet or CSV (UTF-8) file")
    draft.add_argument("--dataset", help="dataset name (default: the file name)")
    draft.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    draft.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    draft.add_argument("--label", help="label column (default: guessed by name)")
    draft.add_argument("--row-key", help="row key column (default: first unique non-null id column)")
    draft.add_argument("--timestamp", help="timestamp column (default: first datetime column)")
    draft.add_argument("--margin", type=float, default=0.1,
                       help="share of the observed range added on each side (default 0.1)")
    draft.add_argument("--max-categories", type=int, default=50,
                       help="string columns with at most this many values become categories")
    draft.set_defaults(handler=_draft)

    diff = commands.add_parser(
        "diff", help="changes from OLD to NEW and the version bump they need; "
                     "exit 1 on a breaking change or a too-small bump")
    diff.add_argument("old", metavar="OLD", help="the contract file before the change")
    diff.add_argument("new", metavar="NEW", help="the contract file after the change")
    diff.add_argument("--json", action="store_true", help="print the changes as JSON")
    diff.set_defaults(handler=_diff)
