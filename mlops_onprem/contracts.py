"""Data contracts: the single source of truth for a dataset's columns, order, dtypes and rules.

A contract is a reviewed YAML file in ``data_contracts/``. Training, export, scoring and
monitoring read feature names and order from here; nothing re-declares a feature list.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlops_onprem.errors import ContractError

#: ``MAJOR.MINOR.PATCH``: non-negative integers, no leading zeros, nothing else
_SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")


class SemVer(NamedTuple):
    """A contract version; compares as numbers (``1.10.0 > 1.9.0``)."""

    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def parse_semver(text: object) -> SemVer:
    """``"1.2.3"`` -> ``SemVer(1, 2, 3)``; raises ValueError quoting the bad value."""
    match = _SEMVER.match(text) if isinstance(text, str) else None
    if match is None:
        hint = "" if isinstance(text, str) else " (YAML read a number: quote it)"
        raise ValueError(
            f"version {text!r} is not a semantic version MAJOR.MINOR.PATCH (e.g. '1.0.0'){hint}")
    return SemVer(*(int(part) for part in match.groups()))


class Dtype(StrEnum):
    """Logical column types a contract can declare."""

    FLOAT = "float64"
    INT = "int64"
    BOOL = "bool"
    CATEGORY = "category"  # strings from a closed set of categories
    STRING = "string"
    TIMESTAMP = "timestamp"


class Task(StrEnum):
    BINARY = "binary_classification"
    MULTICLASS = "multiclass_classification"
    REGRESSION = "regression"


class Severity(StrEnum):
    ERROR = "error"  # blocks the batch
    WARN = "warn"  # reported, does not block


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    """One column: its type, nullability, range and categories."""

    name: str = Field(min_length=1)
    dtype: Dtype
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name!r}: min {self.min} > max {self.max}")
        if self.dtype == Dtype.CATEGORY and not self.categories:
            raise ValueError(f"column {self.name!r}: dtype category needs a 'categories' list")
        if self.dtype != Dtype.CATEGORY and self.categories:
            raise ValueError(f"column {self.name!r}: 'categories' is only valid for dtype category")
        if (self.min is not None or self.max is not None) and self.dtype not in (Dtype.FLOAT, Dtype.INT):
            raise ValueError(f"column {self.name!r}: min/max are only valid for numeric dtypes")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.dtype in (Dtype.FLOAT, Dtype.INT, Dtype.BOOL)

    @property
    def is_categorical(self) -> bool:
        return self.dtype == Dtype.CATEGORY


class LabelSpec(_Strict):
    """The target column and the learning task it implies."""

    name: str = Field(min_length=1)
    task: Task
    classes: tuple[int | str, ...] | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _classes_for_classification(self) -> LabelSpec:
        if self.task != Task.REGRESSION and not self.classes:
            raise ValueError(f"label {self.name!r}: classification needs a 'classes' list")
        if self.task == Task.BINARY and self.classes and len(self.classes) != 2:
            raise ValueError(f"label {self.name!r}: binary classification needs exactly 2 classes")
        return self


class RowCountSpec(_Strict):
    min: int = Field(default=1, ge=0)
    max: int | None = None


class ExtraExpectation(_Strict):
    """A Great Expectations expectation passed through as-is (snake_case type + kwargs)."""

    type: str = Field(pattern=r"^expect_[a-z0-9_]+$")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    severity: Severity = Severity.ERROR
    # rule id used in reports and in ``warn_only``; default ``extra:<type>:<column or table>``
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$")


class Contract(_Strict):
    """A versioned data contract for one dataset."""

    dataset: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    #: semantic version MAJOR.MINOR.PATCH; the bump a change needs is in ``contract_diff``
    version: str
    owner: str = Field(min_length=1)
    description: str = ""
    row_key: str
    timestamp: str | None = None
    label: LabelSpec | None = None
    features: tuple[ColumnSpec, ...] = Field(min_length=1)
    rows: RowCountSpec = RowCountSpec()
    key_unique: bool = True
    extra_columns: Literal["reject", "ignore"] = "reject"
    warn_only: tuple[str, ...] = ()
    extra_expectations: tuple[ExtraExpectation, ...] = ()
    #: file formats a landed batch may have (others are rejected, never skipped silently)
    formats: tuple[Literal["parquet", "csv"], ...] = Field(default=("parquet", "csv"), min_length=1)
    #: row keys already landed in another current batch version: reject the newer batch,
    #: warn and keep both, or keep the newest batch's rows (training and monitoring drop the older)
    row_key_overlap: Literal["reject", "warn", "keep_latest"] = "reject"

    @field_validator("version", mode="before")
    @classmethod
    def _semver(cls, value: object) -> object:
        parse_semver(value)  # YAML ``version: 1.0`` is a float: refused too, quoted
        return value

    @property
    def semver(self) -> SemVer:
        return parse_semver(self.version)

    @model_validator(mode="after")
    def _names_unique(self) -> Contract:
        names = [self.row_key, *(c.name for c in self.features)]
        if self.timestamp:
            names.append(self.timestamp)
        if self.label:
            names.append(self.label.name)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"contract {self.dataset!r}: column names used twice: {duplicates}")
        return self

    # --- the single source of truth for column order --------------------------------------
    @property
    def feature_names(self) -> list[str]:
        """Feature names in model input order."""
        return [c.name for c in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [c.name for c in self.features if c.is_numeric]

    @property
    def categorical_features(self) -> list[str]:
        return [c.name for c in self.features if c.is_categorical]

    def feature(self, name: str) -> ColumnSpec:
        for column in self.features:
            if column.name == name:
                return column
        raise ContractError(f"contract {self.dataset!r} has no feature {name!r}")

    def input_columns(self, *, with_label: bool) -> list[str]:
        """Columns a batch must carry: key, timestamp, features, and the label when asked."""
        columns = [self.row_key]
        if self.timestamp:
            columns.append(self.timestamp)
        columns.extend(self.feature_names)
        if with_label and self.label:
            columns.append(self.label.name)
        return columns

    @property
    def label_name(self) -> str:
        if self.label is None:
            raise ContractError(f"contract {self.dataset!r} declares no label column")
        return self.label.name

    def to_yaml(self) -> str:
        return yaml.safe_dump(
            self.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True
        )


def parse_contract(text: str, *, source: str = "<string>") -> Contract:
    """Parse contract YAML text; raises :class:`ContractError` naming the source and field."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContractError(f"contract {source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ContractError(f"contract {source}: expected a mapping at the top level")
    try:
        return Contract.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ContractError(f"contract {source}: {problems}") from exc


def load_contract(path: str | Path) -> Contract:
    """Load a contract file; raises :class:`ContractError` if it is missing or invalid."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(f"contract file {path} cannot be read: {exc.strerror}") from exc
    return parse_contract(text, source=str(path))


def default_contracts_dir() -> Path:
    """The data contracts shipped with the kit (the package's copy of the repository's
    ``data_contracts/``, or that folder in a checkout: :mod:`mlops_onprem.shipped`)."""
    from mlops_onprem.shipped import shipped_folder

    return shipped_folder("data_contracts")


def find_contract(dataset: str, contracts_dir: Path | None = None) -> Contract:
    """Load ``<dataset>.yaml`` from ``contracts_dir`` when given, else from the company's folder
    (``MLOPS_CONTRACTS_DIR``) and then the shipped contracts (:mod:`mlops_onprem.shipped`)."""
    from mlops_onprem.settings import get_settings
    from mlops_onprem.shipped import locate, not_found, search_path

    folders = search_path(contracts_dir, get_settings().contracts_dir, "data_contracts")
    filename = f"{dataset}.yaml"
    path = locate(filename, folders)
    if path is None and len(folders) > 1:
        raise ContractError(not_found("contract file", filename, folders, "MLOPS_CONTRACTS_DIR"))
    return load_contract(path or folders[0] / filename)


def dataset_contract(dataset: str, contract_path: str | Path | None = None) -> Contract:
    """The contract at ``contract_path``, else ``data_contracts/<dataset>.yaml``: what every
    task loads before validating, training or scoring ``dataset``.

    Raises ContractError when it cannot be loaded or when it is another dataset's contract.
    """
    contract = load_contract(contract_path) if contract_path else find_contract(dataset)
    if contract.dataset != dataset:
        raise ContractError(
            f"contract for dataset {contract.dataset!r} used for dataset {dataset!r}"
            + (f" ({contract_path})" if contract_path else ""))
    return contract
