"""Contract evolution: what changed between two contract versions, and the version bump it needs.

A contract's ``version`` is a semantic version ``MAJOR.MINOR.PATCH``. The rules, from the point
of view of data and models made under the OLD contract:

MAJOR (breaking: a batch valid under the old contract may be refused, or a model trained under
it cannot score data under the new one):
  - a feature removed or renamed (a rename is reported once, as a rename), or the features'
    relative order changed (model inputs are in contract order);
  - a required (non-nullable) feature added;
  - a feature retyped (any ``dtype`` change);
  - a feature made required (``nullable: true`` -> ``false``);
  - a range narrowed: ``min`` raised or added, ``max`` lowered or added (features, the label,
    ``rows``);
  - allowed categories removed, ``formats`` removed, ``warn_only`` rule ids removed;
  - ``key_unique`` turned on, ``extra_columns`` ``ignore`` -> ``reject``, ``row_key_overlap``
    changed other than away from ``reject``;
  - an ``extra_expectations`` entry added with severity ``error``, changed in its arguments, or
    turned from ``warn`` to ``error``;
  - the label added, removed, renamed, or its task or classes (values or order) changed;
  - the row key, the timestamp column or the dataset name changed.
MINOR (compatible: everything valid before stays valid):
  - a nullable feature added; a feature made nullable;
  - a range widened (``min`` lowered or dropped, ``max`` raised or dropped);
  - categories, ``formats`` or ``warn_only`` ids added; ``key_unique`` turned off;
    ``extra_columns`` ``reject`` -> ``ignore``; ``row_key_overlap`` away from ``reject``;
  - an ``extra_expectations`` entry removed, added with severity ``warn``, or turned from
    ``error`` to ``warn``.
PATCH: descriptions (contract or feature), ``owner``, the order of a feature's categories.

:func:`diff_contracts` lists the changes; :func:`version_problems` / :func:`check_version_bump`
say whether the declared bump (old version -> new version) is at least what the changes need;
:func:`check_compatible` refuses a contract with a breaking change against another (used by
scoring against the contract a champion was trained under). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any

from mlops_onprem.contracts import ColumnSpec, Contract, ExtraExpectation, LabelSpec, SemVer
from mlops_onprem.errors import ContractError
from mlops_onprem.number_format import format_number


class ChangeKind(StrEnum):
    """The version bump a change needs, from the smallest to the largest."""

    PATCH = "patch"
    MINOR = "minor"
    MAJOR = "major"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {ChangeKind.PATCH: 1, ChangeKind.MINOR: 2, ChangeKind.MAJOR: 3}
MAJOR, MINOR, PATCH = ChangeKind.MAJOR, ChangeKind.MINOR, ChangeKind.PATCH


@dataclass(frozen=True)
class Change:
    """One difference between two contracts: its kind, the column it is about (None for the
    contract as a whole) and a sentence saying what changed."""

    kind: ChangeKind
    column: str | None
    message: str

    @property
    def breaking(self) -> bool:
        return self.kind == MAJOR

    def describe(self) -> str:
        where = f"column {self.column!r}" if self.column is not None else "contract"
        return f"{self.kind.value.upper()} {where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "column": self.column, "message": self.message}


class IncompatibleContractError(ContractError):
    """A contract has a breaking change against the one it must stay compatible with."""

    def __init__(self, message: str, changes: list[Change]) -> None:
        super().__init__(message)
        self.changes = changes


class VersionBumpError(ContractError):
    """A contract's declared version bump is smaller than its changes need (or goes backwards)."""


# --- the diff ----------------------------------------------------------------------------
_fmt = partial(format_number, digits=6, missing="none")  # a bound in a change's description


def _lower_bound(column: str | None, what: str, old: float | None, new: float | None) -> list[Change]:
    """A minimum: raising or adding it narrows, lowering or dropping it widens."""
    if old == new:
        return []
    if new is None:
        return [Change(MINOR, column, f"{what} {_fmt(old)} dropped (range widened)")]
    if old is None:
        return [Change(MAJOR, column, f"{what} {_fmt(new)} added (range narrowed)")]
    if new < old:
        return [Change(MINOR, column, f"{what} lowered {_fmt(old)} -> {_fmt(new)} (range widened)")]
    return [Change(MAJOR, column, f"{what} raised {_fmt(old)} -> {_fmt(new)} (range narrowed)")]


def _upper_bound(column: str | None, what: str, old: float | None, new: float | None) -> list[Change]:
    """A maximum: lowering or adding it narrows, raising or dropping it widens."""
    if old == new:
        return []
    if new is None:
        return [Change(MINOR, column, f"{what} {_fmt(old)} dropped (range widened)")]
    if old is None:
        return [Change(MAJOR, column, f"{what} {_fmt(new)} added (range narrowed)")]
    if new > old:
        return [Change(MINOR, column, f"{what} raised {_fmt(old)} -> {_fmt(new)} (range widened)")]
    return [Change(MAJOR, column, f"{what} lowered {_fmt(old)} -> {_fmt(new)} (range narrowed)")]


def _set_change(column: str | None, what: str, old: Iterable[Any], new: Iterable[Any]) -> list[Change]:
    """Members removed from an allowed set narrow it (major); members added widen it (minor)."""
    old_set, new_set = set(old), set(new)
    changes = []
    if removed := sorted(old_set - new_set, key=str):
        changes.append(Change(MAJOR, column, f"{what} removed: {removed}"))
    if added := sorted(new_set - old_set, key=str):
        changes.append(Change(MINOR, column, f"{what} added: {added}"))
    return changes


def _feature_changes(old: ColumnSpec, new: ColumnSpec) -> list[Change]:
    name = old.name
    if old.dtype != new.dtype:
        changes = [Change(MAJOR, name, f"retyped {old.dtype.value} -> {new.dtype.value}")]
    else:
        changes = [*_lower_bound(name, "min", old.min, new.min),
                   *_upper_bound(name, "max", old.max, new.max),
                   *_set_change(name, "categories", old.categories or (), new.categories or ())]
        if (old.categories and new.categories and old.categories != new.categories
                and set(old.categories) == set(new.categories)):
            changes.append(Change(PATCH, name, "categories reordered (same set)"))
    if old.nullable and not new.nullable:
        changes.append(Change(MAJOR, name, "made required (nullable: true -> false)"))
    elif new.nullable and not old.nullable:
        changes.append(Change(MINOR, name, "made nullable (nullable: false -> true)"))
    if old.description != new.description:
        changes.append(Change(PATCH, name, "description changed"))
    return changes


def _same_but_name(old: ColumnSpec, new: ColumnSpec) -> bool:
    return old.model_dump(exclude={"name", "description"}) == new.model_dump(exclude={"name", "description"})


def _features(old: Contract, new: Contract) -> list[Change]:
    old_names, new_names = old.feature_names, new.feature_names
    removed = [n for n in old_names if n not in new_names]
    added = [n for n in new_names if n not in old_names]
    renamed: dict[str, str] = {}
    for name in removed:  # same position, same spec, another name: one rename, not two changes
        position = old_names.index(name)
        if position < len(new_names) and new_names[position] in added and new_names[position] not in \
                renamed.values() and _same_but_name(old.features[position], new.features[position]):
            renamed[name] = new_names[position]
    changes = [Change(MAJOR, name, f"renamed to {renamed[name]!r}") if name in renamed
               else Change(MAJOR, name, "feature removed") for name in removed]
    for name in added:
        if name in renamed.values():
            continue
        if new.feature(name).nullable:
            changes.append(Change(MINOR, name, "nullable feature added"))
        else:
            changes.append(Change(MAJOR, name, "required feature added (nullable: false): "
                                               "batches under the old contract lack it"))
    kept_old = [n for n in old_names if n in new_names]
    kept_new = [n for n in new_names if n in old_names]
    if kept_old != kept_new:
        moved = next(a for a, b in zip(kept_old, kept_new, strict=True) if a != b)
        changes.append(Change(MAJOR, moved, f"feature order changed: {kept_old} -> {kept_new} "
                                            "(model inputs follow contract order)"))
    for name in kept_old:
        changes.extend(_feature_changes(old.feature(name), new.feature(name)))
    return changes


def _label(old: LabelSpec | None, new: LabelSpec | None) -> list[Change]:
    if old is None and new is None:
        return []
    if old is None or new is None:
        name = (new or old).name  # type: ignore[union-attr]
        return [Change(MAJOR, name, "label added" if old is None else "label removed")]
    if old.name != new.name:
        return [Change(MAJOR, old.name, f"label renamed to {new.name!r}")]
    if old.task != new.task:  # the classes and range follow the task: one change
        return [Change(MAJOR, old.name, f"label task {old.task.value} -> {new.task.value}")]
    changes = []
    if old.classes != new.classes:
        changes.append(Change(MAJOR, old.name, f"label classes {list(old.classes or ())} -> "
                                               f"{list(new.classes or ())} (values or order)"))
    changes += _lower_bound(old.name, "label min", old.min, new.min)
    changes += _upper_bound(old.name, "label max", old.max, new.max)
    return changes


def _expectation_key(expectation: ExtraExpectation) -> str:
    # the same default id the validation reports use
    target = expectation.kwargs.get("column", "table")
    return expectation.id or f"extra:{expectation.type}:{target}"


def _expectations(old: Contract, new: Contract) -> list[Change]:
    before = {_expectation_key(e): e for e in old.extra_expectations}
    after = {_expectation_key(e): e for e in new.extra_expectations}
    changes = []
    for key, expectation in after.items():
        column = expectation.kwargs.get("column")
        if key not in before:
            blocking = expectation.severity == "error"
            changes.append(Change(MAJOR if blocking else MINOR, column,
                                  f"extra expectation {key!r} added with severity "
                                  f"{expectation.severity.value}"))
            continue
        previous = before[key]
        if previous.type != expectation.type or previous.kwargs != expectation.kwargs:
            changes.append(Change(MAJOR, column, f"extra expectation {key!r} changed its arguments "
                                                 f"{previous.kwargs} -> {expectation.kwargs}"))
        elif previous.severity != expectation.severity:
            kind = MAJOR if expectation.severity == "error" else MINOR
            changes.append(Change(kind, column, f"extra expectation {key!r} severity "
                                                f"{previous.severity.value} -> {expectation.severity.value}"))
    for key, expectation in before.items():
        if key not in after:
            changes.append(Change(MINOR, expectation.kwargs.get("column"),
                                  f"extra expectation {key!r} removed"))
    return changes


def diff_contracts(old: Contract, new: Contract) -> list[Change]:
    """Every difference from ``old`` to ``new`` that the rules (module docstring) classify.

    Takes two parsed contracts; returns the changes (contract-level ones first, then the row
    key, timestamp, label, features and batch rules). The ``version`` fields are not compared
    here: see :func:`version_problems`. Raises nothing.
    """
    changes: list[Change] = []
    if old.dataset != new.dataset:
        changes.append(Change(MAJOR, None, f"dataset {old.dataset!r} -> {new.dataset!r}"))
    if old.owner != new.owner:
        changes.append(Change(PATCH, None, f"owner {old.owner!r} -> {new.owner!r}"))
    if old.description != new.description:
        changes.append(Change(PATCH, None, "description changed"))
    if old.row_key != new.row_key:
        changes.append(Change(MAJOR, old.row_key, f"row key {old.row_key!r} -> {new.row_key!r}"))
    if old.timestamp != new.timestamp:
        changes.append(Change(MAJOR, old.timestamp or new.timestamp,
                              f"timestamp column {old.timestamp!r} -> {new.timestamp!r}"))
    changes += _label(old.label, new.label)
    changes += _features(old, new)
    changes += _lower_bound(None, "rows.min", old.rows.min, new.rows.min)
    changes += _upper_bound(None, "rows.max", old.rows.max, new.rows.max)
    if old.key_unique != new.key_unique:
        changes.append(Change(MAJOR if new.key_unique else MINOR, old.row_key,
                              f"key_unique {old.key_unique} -> {new.key_unique}"))
    if old.extra_columns != new.extra_columns:
        changes.append(Change(MAJOR if new.extra_columns == "reject" else MINOR, None,
                              f"extra_columns {old.extra_columns} -> {new.extra_columns}"))
    # a rule id leaving warn_only blocks batches it only warned about: narrowing
    if stricter := sorted(set(old.warn_only) - set(new.warn_only)):
        changes.append(Change(MAJOR, None, f"warn_only rule ids removed (they block again): {stricter}"))
    if relaxed := sorted(set(new.warn_only) - set(old.warn_only)):
        changes.append(Change(MINOR, None, f"warn_only rule ids added (they only warn now): {relaxed}"))
    changes += _set_change(None, "formats", old.formats, new.formats)
    if old.row_key_overlap != new.row_key_overlap:
        relaxed = old.row_key_overlap == "reject"
        changes.append(Change(MINOR if relaxed else MAJOR, old.row_key,
                              f"row_key_overlap {old.row_key_overlap} -> {new.row_key_overlap}"))
    changes += _expectations(old, new)
    return changes


# --- versions ----------------------------------------------------------------------------
def required_bump(changes: Iterable[Change]) -> ChangeKind | None:
    """The largest kind among ``changes`` (None when there are none)."""
    return max((c.kind for c in changes), key=lambda k: k.rank, default=None)


def declared_bump(old: Contract, new: Contract) -> ChangeKind | None:
    """The bump from ``old.version`` to ``new.version`` (None: same version).

    Raises VersionBumpError when the new version is lower than the old one.
    """
    before, after = old.semver, new.semver
    if after < before:
        raise VersionBumpError(f"contract {new.dataset!r}: version went backwards {before} -> {after}")
    if after.major > before.major:
        return MAJOR
    if after.minor > before.minor:
        return MINOR
    if after.patch > before.patch:
        return PATCH
    return None


def next_version(version: SemVer, bump: ChangeKind) -> SemVer:
    """The smallest version after ``version`` with a ``bump``."""
    if bump == MAJOR:
        return SemVer(version.major + 1, 0, 0)
    if bump == MINOR:
        return SemVer(version.major, version.minor + 1, 0)
    return SemVer(version.major, version.minor, version.patch + 1)


def version_problems(old: Contract, new: Contract, changes: list[Change] | None = None) -> list[str]:
    """Why ``new.version`` does not declare the bump ``changes`` need, one sentence per change
    it under-declares (empty when the bump is enough). ``changes`` default to the diff."""
    changes = diff_contracts(old, new) if changes is None else changes
    try:
        declared = declared_bump(old, new)
    except VersionBumpError as exc:
        return [str(exc)]
    rank = declared.rank if declared else 0
    named = "no version bump" if declared is None else f"a {declared.value} bump"
    return [
        f"contract {new.dataset!r} {old.version} -> {new.version} is {named}, but {change.describe()} "
        f"needs a {change.kind.value} bump (version {next_version(old.semver, change.kind)} or later)"
        for change in changes if change.kind.rank > rank
    ]


def check_version_bump(old: Contract, new: Contract, changes: list[Change] | None = None) -> None:
    """Raise VersionBumpError naming the changes the declared version bump does not cover."""
    problems = version_problems(old, new, changes)
    if problems:
        raise VersionBumpError("; ".join(problems))


def check_compatible(trained: Contract, current: Contract, *, what: str = "the model") -> None:
    """Refuse ``current`` if it has a breaking (major) change against ``trained``.

    Raises IncompatibleContractError naming each breaking change (column and sentence).
    """
    breaking = [c for c in diff_contracts(trained, current) if c.breaking]
    if breaking:
        raise IncompatibleContractError(
            f"contract {current.dataset!r} v{current.version} is not compatible with contract "
            f"{trained.dataset!r} v{trained.version} {what} was trained under: "
            + "; ".join(c.describe() for c in breaking), breaking)
