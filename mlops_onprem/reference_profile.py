"""The reference profile: what "normal" looks like, computed once at training time.

Monitoring compares every window against this profile instead of re-reading the training data.
Features are profiled on **every row the model trained on** (train and holdout); score columns
on the holdout, where the model's scores are out of sample like in production.

Per numeric feature (and score column) the profile keeps a **fine grid**: bin edges at up to
``grid_size`` reference quantiles (every distinct value when there are fewer) with the exact
reference count in each bin, plus the coarse PSI bins (``n_bins`` quantiles, a subset of the
grid's edges), the null count and moments. Per categorical feature it keeps category counts.
Any current window is summarised by counts over the same bins (:mod:`mlops_onprem.window_profile`),
so windows merge batch by batch and every test (KS, chi-square, PSI, JS) runs on counts.

Stored as JSON next to the model version (``to_dict`` / ``from_dict``); float arrays as base64
little-endian float64 so they round-trip bit for bit. Version-1 profiles (quantile bins plus a
reference sample) still load: the sample becomes the grid.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_onprem.contracts import Contract, Task
from mlops_onprem.errors import MonitoringError

PROFILE_FORMAT = "mlops-onprem/reference-profile/v2"
_PROFILE_FORMAT_V1 = "mlops-onprem/reference-profile/v1"
# stored beside the model: keys.model_file_key(name, version, PROFILE_FILENAME)
PROFILE_FILENAME = "reference_profile.json"
DEFAULT_GRID_SIZE = 1000
DEFAULT_N_BINS = 10
NULL_CATEGORY = "<null>"  # how a missing categorical value is counted


class ReferenceProfileError(MonitoringError):
    """A reference profile cannot be built or decoded."""


def _encode(values: np.ndarray, dtype: str = "<f8") -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype=dtype).tobytes()).decode("ascii")


def _decode(text: str, dtype: str = "<f8") -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(text.encode("ascii")), dtype=dtype)
    return raw.astype(np.float64 if dtype == "<f8" else np.int64)


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """Reference summary of one numeric column.

    ``grid`` holds the fine interior edges; fine bins are right-closed and open-ended:
    ``(-inf, g0], (g0, g1], ..., (g_last, +inf)``, so ``len(grid_counts) == len(grid) + 1``
    (counts of the non-null values). ``coarse`` indexes the grid edges that delimit the PSI
    bins. ``n_nulls`` reference values were missing.
    """

    name: str
    n_rows: int
    n_nulls: int
    mean: float
    std: float
    min: float
    max: float
    grid: np.ndarray
    grid_counts: np.ndarray
    coarse: np.ndarray

    @property
    def n_valid(self) -> int:
        return self.n_rows - self.n_nulls

    @property
    def null_share(self) -> float:
        return self.n_nulls / self.n_rows if self.n_rows else 0.0

    @property
    def edges(self) -> np.ndarray:
        """Interior edges of the coarse PSI bins."""
        return self.grid[self.coarse]

    def coarse_counts(self, fine_counts: np.ndarray) -> np.ndarray:
        """Fine-bin counts (this grid) summed into the coarse PSI bins."""
        cum = np.concatenate(([0], np.cumsum(fine_counts)))
        bounds = np.concatenate(([0], self.coarse + 1, [len(self.grid) + 1]))
        return np.diff(cum[bounds])

    @property
    def bin_shares(self) -> np.ndarray:
        """Reference share of the non-null values in each coarse bin."""
        counts = self.coarse_counts(self.grid_counts).astype(np.float64)
        return counts / counts.sum() if counts.sum() else counts

    def bin_index(self, values: np.ndarray) -> np.ndarray:
        """Fine bin of each (non-null) value."""
        return np.searchsorted(self.grid, values, side="left")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "name": self.name,
            "n_rows": self.n_rows,
            "n_nulls": self.n_nulls,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "grid_size": int(self.grid.size),
            "grid_f64_b64": _encode(self.grid),
            "grid_counts_i64_b64": _encode(self.grid_counts, "<i8"),
            "coarse": [int(i) for i in self.coarse],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumericProfile:
        if "sample_f64_b64" in data:
            return _numeric_from_v1(data)
        grid = _decode(data["grid_f64_b64"])
        counts = _decode(data["grid_counts_i64_b64"], "<i8")
        if grid.size != int(data["grid_size"]) or counts.size != grid.size + 1:
            raise ReferenceProfileError(
                f"numeric profile {data.get('name')!r}: grid has {grid.size} edges and "
                f"{counts.size} counts, header says {data['grid_size']} edges"
            )
        return cls(
            name=str(data["name"]), n_rows=int(data["n_rows"]), n_nulls=int(data["n_nulls"]),
            mean=float(data["mean"]), std=float(data["std"]), min=float(data["min"]),
            max=float(data["max"]), grid=grid, grid_counts=counts,
            coarse=np.asarray(data["coarse"], dtype=np.int64),
        )


def _numeric_from_v1(data: dict[str, Any]) -> NumericProfile:
    """A version-1 profile (quantile edges, shares, reference sample): the sample is the
    reference (its size is the reference size the tests see), the old edges stay the coarse
    bins."""
    sample = _decode(data["sample_f64_b64"])
    if sample.size != int(data["sample_size"]) or sample.size == 0:
        raise ReferenceProfileError(
            f"numeric profile {data.get('name')!r}: sample has {sample.size} values, "
            f"header says {data['sample_size']}"
        )
    old_edges = np.asarray(data["edges"], dtype=np.float64)
    grid, counts, coarse = _grid(np.sort(sample), old_edges, DEFAULT_GRID_SIZE)
    n_rows = int(data["n_rows"])
    n_nulls = int(round(n_rows * float(data["null_share"])))
    return NumericProfile(
        name=str(data["name"]), n_rows=n_rows, n_nulls=n_nulls, mean=float(data["mean"]),
        std=float(data["std"]), min=float(data["min"]), max=float(data["max"]),
        grid=grid, grid_counts=counts, coarse=coarse)  # counts of the sample: honest n


@dataclass(frozen=True)
class CategoricalProfile:
    """Reference counts of one categorical column (nulls counted as ``<null>``)."""

    name: str
    n_rows: int
    null_share: float
    counts: dict[str, int]

    @property
    def frequencies(self) -> dict[str, float]:
        total = sum(self.counts.values())
        return {k: v / total for k, v in self.counts.items()} if total else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "name": self.name,
            "n_rows": self.n_rows,
            "null_share": self.null_share,
            "counts": dict(sorted(self.counts.items())),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategoricalProfile:
        return cls(
            name=str(data["name"]),
            n_rows=int(data["n_rows"]),
            null_share=float(data["null_share"]),
            counts={str(k): int(v) for k, v in data["counts"].items()},
        )


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Reference profile of one model version: features (all training rows), score columns
    (``score_rows`` holdout rows) and, for classifiers, the calibration check behind label-free
    quality estimates (see :mod:`mlops_onprem.quality`)."""

    dataset: str
    contract_version: str
    task: str
    n_rows: int
    numeric: dict[str, NumericProfile]
    categorical: dict[str, CategoricalProfile]
    scores: dict[str, NumericProfile]
    n_bins: int = DEFAULT_N_BINS
    grid_size: int = DEFAULT_GRID_SIZE
    score_rows: int = 0
    calibration: dict[str, Any] | None = None

    @property
    def feature_names(self) -> list[str]:
        """Profiled features: numeric first, then categorical (each in contract order)."""
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe representation (``json.dumps`` works on it as is)."""
        return {
            "format": PROFILE_FORMAT,
            "dataset": self.dataset,
            "contract_version": self.contract_version,
            "task": self.task,
            "n_rows": self.n_rows,
            "score_rows": self.score_rows,
            "n_bins": self.n_bins,
            "grid_size": self.grid_size,
            "numeric": [p.to_dict() for p in self.numeric.values()],
            "categorical": [p.to_dict() for p in self.categorical.values()],
            "scores": [p.to_dict() for p in self.scores.values()],
            "calibration": self.calibration,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` output (or a version-1 profile).

        Raises :class:`ReferenceProfileError` on an unknown format or a malformed field.
        """
        fmt = data.get("format") if isinstance(data, dict) else type(data).__name__
        if fmt not in (PROFILE_FORMAT, _PROFILE_FORMAT_V1):
            raise ReferenceProfileError(
                f"not a reference profile: expected format {PROFILE_FORMAT!r}, got {fmt!r}"
            )
        try:
            numeric = [NumericProfile.from_dict(d) for d in data["numeric"]]
            categorical = [CategoricalProfile.from_dict(d) for d in data["categorical"]]
            scores = [NumericProfile.from_dict(d) for d in data["scores"]]
            return cls(
                dataset=str(data["dataset"]),
                contract_version=str(data["contract_version"]),
                task=str(data["task"]),
                n_rows=int(data["n_rows"]),
                numeric={p.name: p for p in numeric},
                categorical={p.name: p for p in categorical},
                scores={p.name: p for p in scores},
                n_bins=int(data["n_bins"]),
                grid_size=int(data.get("grid_size", DEFAULT_GRID_SIZE)),
                score_rows=int(data.get("score_rows", data["n_rows"])),
                calibration=data.get("calibration"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReferenceProfileError(f"malformed reference profile: {exc!r}") from exc


def column_as_float(values: pd.Series | np.ndarray) -> np.ndarray:
    """A column as float64 numpy with missing values as NaN (pandas NA and None included)."""
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(values, dtype=np.float64)


def column_as_categories(values: pd.Series) -> pd.Series:
    """A categorical column as strings with missing values spelled ``<null>``."""
    return values.astype("string").fillna(NULL_CATEGORY)


def _quantile_edges(ordered: np.ndarray, n: int) -> np.ndarray:
    """Observed values at the ``n``-quantiles (inverted CDF, so ties sit wholly inside one
    bin), without an edge at the maximum (its bin would be empty by construction)."""
    edges = np.unique(np.quantile(ordered, np.linspace(0.0, 1.0, n + 1)[1:-1],
                                  method="inverted_cdf"))
    return edges[edges < ordered[-1]] if edges.size else edges


def _grid(ordered: np.ndarray, coarse_edges: np.ndarray,
          grid_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grid edges, counts per fine bin, indices of the coarse edges in the grid)."""
    distinct = np.unique(ordered)
    fine = distinct[:-1] if distinct.size <= grid_size else _quantile_edges(ordered, grid_size)
    grid = np.union1d(fine, coarse_edges)
    cum = np.searchsorted(ordered, grid, side="right")
    counts = np.diff(np.concatenate(([0], cum, [ordered.size]))).astype(np.int64)
    coarse = np.searchsorted(grid, coarse_edges).astype(np.int64)
    return grid.astype(np.float64), counts, coarse


def profile_numeric(name: str, values: np.ndarray, *, n_bins: int = DEFAULT_N_BINS,
                    grid_size: int = DEFAULT_GRID_SIZE) -> NumericProfile:
    """Profile one numeric column.

    Takes float values (NaN = missing); returns the fine grid with exact counts, the coarse
    PSI bins (quantile edges, deduplicated, so a column with few distinct values gets fewer
    bins) and moments. Raises :class:`ReferenceProfileError` when the column has no non-null
    value or is infinite.
    """
    values = np.asarray(values, dtype=np.float64)
    n_rows = int(values.size)
    valid = values[~np.isnan(values)]
    if valid.size == 0:
        raise ReferenceProfileError(f"column {name!r}: no non-null reference values to profile")
    if not np.all(np.isfinite(valid)):
        raise ReferenceProfileError(f"column {name!r}: reference values contain +/-inf")
    ordered = np.sort(valid)
    grid, counts, coarse = _grid(ordered, _quantile_edges(ordered, n_bins), grid_size)
    return NumericProfile(
        name=name,
        n_rows=n_rows,
        n_nulls=n_rows - int(valid.size),
        mean=float(ordered.mean()),
        std=float(ordered.std(ddof=1)) if ordered.size > 1 else 0.0,
        min=float(ordered[0]),
        max=float(ordered[-1]),
        grid=grid,
        grid_counts=counts,
        coarse=coarse,
    )


def profile_categorical(name: str, values: pd.Series) -> CategoricalProfile:
    """Profile one categorical column: counts per category, missing counted as ``<null>``."""
    n_rows = int(len(values))
    if n_rows == 0:
        raise ReferenceProfileError(f"column {name!r}: no reference rows to profile")
    counts = column_as_categories(values).value_counts(sort=False)
    as_dict = {str(k): int(v) for k, v in counts.items()}
    return CategoricalProfile(
        name=name,
        n_rows=n_rows,
        null_share=as_dict.get(NULL_CATEGORY, 0) / n_rows,
        counts=as_dict,
    )


def score_column_names(contract: Contract, scores: np.ndarray) -> list[str]:
    """Names of the score columns, matching the scoring output.

    1-D scores are ``score`` (binary: P(class 1); regression: the value); 2-D multiclass
    scores are ``proba_<class>`` in the order of ``contract.label.classes``.
    Raises :class:`ReferenceProfileError` if the shape disagrees with the contract.
    """
    scores = np.asarray(scores)
    if scores.ndim == 1:
        return ["score"]
    if scores.ndim != 2:
        raise ReferenceProfileError(f"scores must be 1-D or 2-D, got shape {scores.shape}")
    classes = contract.label.classes if contract.label and contract.label.classes else None
    if classes is None or len(classes) != scores.shape[1]:
        raise ReferenceProfileError(
            f"scores have {scores.shape[1]} columns but contract {contract.dataset!r} "
            f"declares classes {classes}"
        )
    return [f"proba_{c}" for c in classes]


def profile_scores(contract: Contract, scores: np.ndarray, *, n_bins: int = DEFAULT_N_BINS,
                   grid_size: int = DEFAULT_GRID_SIZE) -> dict[str, NumericProfile]:
    """Profiles of the score columns (``score`` or ``proba_<class>``) of 1-D or 2-D scores."""
    scores = np.asarray(scores, dtype=np.float64)
    matrix = scores.reshape(len(scores), -1)
    return {name: profile_numeric(name, matrix[:, j], n_bins=n_bins, grid_size=grid_size)
            for j, name in enumerate(score_column_names(contract, scores))}


def build_reference_profile(
    features: pd.DataFrame, contract: Contract, scores: np.ndarray, *,
    n_bins: int = DEFAULT_N_BINS, grid_size: int = DEFAULT_GRID_SIZE,
    calibration: dict[str, Any] | None = None,
) -> ReferenceProfile:
    """Profile the reference features (every training row) and the model's scores (1-D, or
    2-D ``[N, n_classes]`` for multiclass) on out-of-sample rows, which may be other rows
    (the holdout). Raises :class:`ReferenceProfileError` when a contract feature is missing or
    a column cannot be profiled.
    """
    missing = [c for c in contract.feature_names if c not in features.columns]
    if missing:
        raise ReferenceProfileError(
            f"reference features lack contract {contract.dataset!r} columns {missing}"
        )
    if grid_size < n_bins or n_bins < 2:
        raise ReferenceProfileError(f"need grid_size >= n_bins >= 2, got {grid_size}, {n_bins}")
    scores = np.asarray(scores, dtype=np.float64)
    numeric = {name: profile_numeric(name, column_as_float(features[name]), n_bins=n_bins,
                                     grid_size=grid_size)
               for name in contract.numeric_features}
    categorical = {name: profile_categorical(name, features[name])
                   for name in contract.categorical_features}
    score_profiles = profile_scores(contract, scores, n_bins=n_bins, grid_size=grid_size)
    task = contract.label.task.value if contract.label else Task.REGRESSION.value
    return ReferenceProfile(
        dataset=contract.dataset, contract_version=contract.version, task=task,
        n_rows=len(features), numeric=numeric, categorical=categorical, scores=score_profiles,
        n_bins=n_bins, grid_size=grid_size, score_rows=len(scores), calibration=calibration,
    )
