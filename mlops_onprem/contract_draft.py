"""Propose a data contract from a reference file, for a person to review before it is committed.

The draft infers dtypes, numeric ranges widened by a margin, nullability, categories of
low-cardinality string columns, and guesses the row key, timestamp and label. Every guess is
listed in the draft's header so the reviewer knows what to check. It only proposes feature
types training accepts (:data:`FEATURE_DTYPES`): a date-time column other than the timestamp is
left out of the features (``extra_columns: ignore``, with a note to derive numbers from it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mlops_onprem.batch_reader import read_batch
from mlops_onprem.contracts import (
    ColumnSpec,
    Contract,
    Dtype,
    LabelSpec,
    RowCountSpec,
    Task,
    parse_contract,
)
from mlops_onprem.errors import ContractError

#: feature dtypes the drafter may propose: the ones training and ONNX export take as model
#: inputs (``onnx_io.input_kind``); a timestamp is never a feature (derive numbers from it)
FEATURE_DTYPES = frozenset({Dtype.FLOAT, Dtype.INT, Dtype.BOOL, Dtype.CATEGORY, Dtype.STRING})
_KEY_NAME = re.compile(r"(^|_)(id|key|uuid)$", re.IGNORECASE)
_LABEL_NAMES = ("label", "target", "y", "class")
MAX_CLASSES = 20  # an integer/string label with more distinct values is treated as regression


@dataclass
class ContractDraft:
    """A proposed contract and the guesses a reviewer must check."""

    contract: Contract
    notes: list[str] = field(default_factory=list)

    def to_yaml(self) -> str:
        """YAML text with a header of review notes; it parses back into the same contract."""
        header = ["# DRAFT data contract: review every line before committing it.",
                  "# Inferred from a reference file; check:"]
        header += [f"#  - {note}" for note in self.notes]
        return "\n".join(header) + "\n" + self.contract.to_yaml()


def _outward(value: float, span: float, up: bool) -> float:
    """Round ``value`` away from the data to ~3 significant digits of the column's span."""
    digits = max(0, 2 - math.floor(math.log10(span))) if span > 0 else 2
    scale = 10**digits
    return (math.ceil(value * scale) if up else math.floor(value * scale)) / scale


def _bounds(series: pd.Series, margin: float, integer: bool) -> tuple[float, float] | None:
    values = pd.to_numeric(series, errors="coerce")
    values = values[values.abs() != math.inf].dropna()
    if values.empty:
        return None
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    lo_m, hi_m = lo - margin * span, hi + margin * span
    if integer:
        return float(math.floor(lo_m)), float(math.ceil(hi_m))
    return _outward(lo_m, span, up=False), _outward(hi_m, span, up=True)


def _guess_row_key(df: pd.DataFrame) -> str | None:
    candidates = [
        c for c in df.columns
        if (pd.api.types.is_integer_dtype(df[c]) or pd.api.types.is_string_dtype(df[c]))
        and df[c].notna().all() and df[c].is_unique
    ]
    pick = [c for c in candidates if _KEY_NAME.search(str(c))] or candidates
    return str(pick[0]) if pick else None


def _label_spec(series: pd.Series, name: str) -> tuple[LabelSpec, str]:
    distinct = series.dropna().unique()
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    is_float = pd.api.types.is_float_dtype(series)
    integral = not is_float or all(float(v).is_integer() for v in distinct)
    if numeric and (not integral or len(distinct) > MAX_CLASSES):
        bounds = _bounds(series, 0.0, integer=False)
        lo, hi = bounds if bounds else (None, None)
        return LabelSpec(name=name, task=Task.REGRESSION, min=lo, max=hi), "regression"
    if numeric or pd.api.types.is_bool_dtype(series):
        classes: tuple[int | str, ...] = tuple(sorted(int(v) for v in distinct))
    else:
        classes = tuple(sorted(str(v) for v in distinct))
    task = Task.BINARY if len(classes) == 2 else Task.MULTICLASS
    return LabelSpec(name=name, task=task, classes=classes), task.value


def draft_contract(
    df: pd.DataFrame, *, dataset: str, label: str | None = None, row_key: str | None = None,
    timestamp: str | None = None, margin: float = 0.1, max_categories: int = 50,
    owner: str = "TODO: owning team", source: str = "<dataframe>",
) -> ContractDraft:
    """Propose a contract for ``df``.

    Takes the reference data, the dataset name, optional explicit label / row key / timestamp
    columns (guessed when omitted), the range ``margin`` (share of the observed span added on
    each side) and ``max_categories`` (string columns with at most this many distinct values
    become categories). Returns a :class:`ContractDraft` (contract + review notes).
    Raises :class:`ContractError` when no row key can be found or a named column is missing.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    columns = [str(c) for c in df.columns]
    for what, name in (("label", label), ("row key", row_key), ("timestamp", timestamp)):
        if name is not None and name not in columns:
            raise ContractError(f"{source}: {what} column {name!r} is not in the file (columns: {columns})")
    notes: list[str] = [f"source: {source}, {len(df)} rows, {len(columns)} columns, "
                        f"range margin {margin:.0%}"]

    if row_key is None:
        row_key = _guess_row_key(df)
        if row_key is None:
            raise ContractError(f"{source}: no column is unique and non-null; pass the row key explicitly")
        notes.append(f"row_key guessed as {row_key!r} (unique, non-null)")
    if timestamp is None:
        stamps = [c for c in columns if pd.api.types.is_datetime64_any_dtype(df[c]) and c != row_key]
        timestamp = stamps[0] if stamps else None
        if timestamp:
            notes.append(f"timestamp guessed as {timestamp!r}")
    if label is None:
        label = next((c for c in columns if c.lower() in _LABEL_NAMES
            and c not in (row_key, timestamp)), None)
        if label:
            notes.append(f"label guessed as {label!r} by its name")
    label_spec = None
    if label is not None:
        label_spec, task_name = _label_spec(df[label], label)
        notes.append(f"label {label!r}: task {task_name}")

    features: list[ColumnSpec] = []
    left_out: list[str] = []
    for name in columns:
        if name in (row_key, timestamp, label):
            continue
        series = df[name]
        if pd.api.types.is_datetime64_any_dtype(series):
            left_out.append(name)  # training refuses a timestamp feature: not proposed
            notes.append(f"{name!r}: date-time column left out of the features (a model cannot take "
                         "a timestamp; derive numeric features from it, e.g. age in days)")
            continue
        nullable = bool(series.isna().any())
        if pd.api.types.is_bool_dtype(series):
            features.append(ColumnSpec(name=name, dtype=Dtype.BOOL, nullable=nullable))
        elif pd.api.types.is_numeric_dtype(series):
            integer = pd.api.types.is_integer_dtype(series)
            bounds = _bounds(series, margin, integer=integer)
            lo, hi = bounds if bounds else (None, None)
            features.append(ColumnSpec(name=name, dtype=Dtype.INT if integer else Dtype.FLOAT,
                                       nullable=nullable, min=lo, max=hi))
        else:
            distinct = sorted(str(v) for v in series.dropna().unique())
            if 0 < len(distinct) <= max_categories:
                features.append(ColumnSpec(name=name, dtype=Dtype.CATEGORY, nullable=nullable,
                                           categories=tuple(distinct)))
                notes.append(f"{name!r}: {len(distinct)} categories seen; "
                             "add any valid ones not in the sample")
            else:
                features.append(ColumnSpec(name=name, dtype=Dtype.STRING, nullable=nullable))
                notes.append(f"{name!r}: free text ({len(distinct)} distinct values), no category check")
        if nullable:
            notes.append(f"{name!r}: nulls seen in the sample, so nullable: true")
    if not features:
        raise ContractError(f"{source}: no feature columns left after row key, timestamp, label "
                            f"and date-time columns {left_out}")
    refused = [c.name for c in features if c.dtype not in FEATURE_DTYPES]
    if refused:  # a new branch above must not propose a type training refuses
        raise ContractError(f"{source}: drafted feature(s) {refused} have a type training refuses")
    if left_out:
        notes.append(f"extra_columns: ignore, so batches may still carry {left_out}")

    contract = Contract(
        dataset=dataset, version="0.1.0", owner=owner,
        description=f"DRAFT inferred from {Path(source).name}; review before use.",
        row_key=row_key, timestamp=timestamp, label=label_spec, features=tuple(features),
        rows=RowCountSpec(min=1), key_unique=True, extra_columns="ignore" if left_out else "reject",
    )
    return ContractDraft(contract=contract, notes=notes)


def draft_contract_from_file(path: str | Path, *, dataset: str | None = None,
    **options: object) -> ContractDraft:
    """Read a reference Parquet/CSV file and :func:`draft_contract` it.

    ``dataset`` defaults to the file name without its suffix. Raises the reader's
    :class:`~mlops_onprem.batch_reader.BatchFormatError` for unreadable files and
    :class:`ContractError` as :func:`draft_contract` does.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ContractError(f"reference file {path} cannot be read: {exc.strerror}") from exc
    df = read_batch(data, source=str(path))
    name = dataset or re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)
    draft = draft_contract(df, dataset=name, source=str(path), **options)  # type: ignore[arg-type]
    parse_contract(draft.to_yaml(), source=f"draft of {path}")  # the YAML must load back
    return draft
