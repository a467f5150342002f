"""The reference profile: what "normal" looks like, computed once at training time.

Monitoring compares every scoring window against this profile instead of re-reading the
training data. Per numeric feature (and per score column) it keeps quantile bin edges with
the reference share of each bin (for PSI), the null share, mean and standard deviation, and a
seeded, sorted sample of the reference values: the two-sample Kolmogorov-Smirnov test is then
computed *exactly* against that sample (see :mod:`mlops_onprem.drift`). Per categorical
feature it keeps the category counts (chi-square and Jensen-Shannon need counts).

The profile is stored as JSON next to the model version (``to_dict`` / ``from_dict``);
samples are encoded as base64 little-endian float64 so they round-trip bit for bit.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_onprem.contracts import Contract, Task
from mlops_onprem.errors import MonitoringError

PROFILE_FORMAT = "mlops-onprem/reference-profile/v1"
# stored beside the model: keys.model_file_key(name, version, PROFILE_FILENAME)
PROFILE_FILENAME = "reference_profile.json"
DEFAULT_SAMPLE_SIZE = 20_000
DEFAULT_N_BINS = 10
NULL_CATEGORY = "<null>"  # how a missing categorical value is counted


class ReferenceProfileError(MonitoringError):
    """A reference profile cannot be built or decoded."""


def _encode_floats(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode("ascii")


def _decode_floats(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text.encode("ascii")), dtype="<f8").astype(np.float64)


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """Reference summary of one numeric column.

    ``edges`` are the interior bin edges; bins are right-closed and open-ended:
    ``(-inf, e0], (e0, e1], ..., (e_last, +inf)`` so ``len(bin_shares) == len(edges) + 1``.
    ``bin_shares`` are shares of the non-null values. ``sample`` is sorted, non-null.
    """

    name: str
    n_rows: int
    null_share: float
    mean: float
    std: float
    min: float
    max: float
    edges: np.ndarray
    bin_shares: np.ndarray
    sample: np.ndarray
    _ks_cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_valid(self) -> int:
        """Non-null reference values the bin shares were computed on."""
        return int(round(self.n_rows * (1.0 - self.null_share)))

    def ks_steps(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct sample values and how many sample values are <= each (cached)."""
        if "values" not in self._ks_cache:
            values, counts = np.unique(self.sample, return_counts=True)
            self._ks_cache["values"] = values
            self._ks_cache["cum_le"] = np.cumsum(counts)
        return self._ks_cache["values"], self._ks_cache["cum_le"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "name": self.name,
            "n_rows": self.n_rows,
            "null_share": self.null_share,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "edges": [float(e) for e in self.edges],
            "bin_shares": [float(s) for s in self.bin_shares],
            "sample_size": int(self.sample.size),
            "sample_f64_b64": _encode_floats(self.sample),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumericProfile:
        sample = _decode_floats(data["sample_f64_b64"])
        if sample.size != int(data["sample_size"]):
            raise ReferenceProfileError(
                f"numeric profile {data.get('name')!r}: sample has {sample.size} values, "
                f"header says {data['sample_size']}"
            )
        return cls(
            name=str(data["name"]),
            n_rows=int(data["n_rows"]),
            null_share=float(data["null_share"]),
            mean=float(data["mean"]),
            std=float(data["std"]),
            min=float(data["min"]),
            max=float(data["max"]),
            edges=np.asarray(data["edges"], dtype=np.float64),
            bin_shares=np.asarray(data["bin_shares"], dtype=np.float64),
            sample=sample,
        )


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
    """Reference profile of one model version: features and score distribution."""

    dataset: str
    contract_version: str
    task: str
    n_rows: int
    numeric: dict[str, NumericProfile]
    categorical: dict[str, CategoricalProfile]
    scores: dict[str, NumericProfile]
    n_bins: int = DEFAULT_N_BINS
    sample_size: int = DEFAULT_SAMPLE_SIZE
    seed: int = 0

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
            "n_bins": self.n_bins,
            "sample_size": self.sample_size,
            "seed": self.seed,
            "numeric": [p.to_dict() for p in self.numeric.values()],
            "categorical": [p.to_dict() for p in self.categorical.values()],
            "scores": [p.to_dict() for p in self.scores.values()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` output.

        Raises :class:`ReferenceProfileError` on an unknown format or a malformed field.
        """
        if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ReferenceProfileError(
                f"not a reference profile: expected format {PROFILE_FORMAT!r}, got {found!r}"
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
                sample_size=int(data["sample_size"]),
                seed=int(data["seed"]),
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


def profile_numeric(
    name: str, values: np.ndarray, *, n_bins: int = DEFAULT_N_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE, seed: int = 0,
) -> NumericProfile:
    """Profile one numeric column.

    Takes float values (NaN = missing); returns quantile edges (deduplicated, so a column with
    few distinct values gets fewer bins), bin shares, moments and a sorted sample of at most
    ``sample_size`` values drawn without replacement with ``seed``.
    Raises :class:`ReferenceProfileError` when the column has no non-null value or is infinite.
    """
    values = np.asarray(values, dtype=np.float64)
    n_rows = int(values.size)
    valid = values[~np.isnan(values)]
    if valid.size == 0:
        raise ReferenceProfileError(f"column {name!r}: no non-null reference values to profile")
    if not np.all(np.isfinite(valid)):
        raise ReferenceProfileError(f"column {name!r}: reference values contain +/-inf")
    ordered = np.sort(valid)
    quantiles = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    # edges are observed values (inverted CDF), so ties sit wholly inside one bin
    edges = np.unique(np.quantile(ordered, quantiles, method="inverted_cdf"))
    # the top edge equal to the maximum would leave the last bin empty by construction
    edges = edges[edges < ordered[-1]] if edges.size else edges
    cum = np.searchsorted(ordered, edges, side="right")
    counts = np.diff(np.concatenate(([0], cum, [ordered.size])))
    if ordered.size > sample_size:
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(ordered, size=sample_size, replace=False))
    else:
        sample = ordered
    return NumericProfile(
        name=name,
        n_rows=n_rows,
        null_share=float(1.0 - valid.size / n_rows),
        mean=float(ordered.mean()),
        std=float(ordered.std(ddof=1)) if ordered.size > 1 else 0.0,
        min=float(ordered[0]),
        max=float(ordered[-1]),
        edges=edges.astype(np.float64),
        bin_shares=counts / ordered.size,
        sample=np.ascontiguousarray(sample, dtype=np.float64),
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


def build_reference_profile(
    features: pd.DataFrame, contract: Contract, scores: np.ndarray, *,
    n_bins: int = DEFAULT_N_BINS, sample_size: int = DEFAULT_SAMPLE_SIZE, seed: int = 0,
) -> ReferenceProfile:
    """Profile the training (reference) features and the model's scores on them.

    Takes the reference rows (at least the contract's features), the contract, and the model's
    scores on the same rows (1-D, or 2-D ``[N, n_classes]`` for multiclass). Returns a
    :class:`ReferenceProfile`. Raises :class:`ReferenceProfileError` when a contract feature is
    missing, the row counts differ, or a column cannot be profiled.
    """
    missing = [c for c in contract.feature_names if c not in features.columns]
    if missing:
        raise ReferenceProfileError(
            f"reference features lack contract {contract.dataset!r} columns {missing}"
        )
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[0] != len(features):
        raise ReferenceProfileError(
            f"scores have {scores.shape[0]} rows but the reference features have {len(features)}"
        )
    if sample_size < 1 or n_bins < 2:
        raise ReferenceProfileError(f"need sample_size >= 1 and n_bins >= 2, got {sample_size}, {n_bins}")
    numeric = {
        name: profile_numeric(
            name, column_as_float(features[name]), n_bins=n_bins, sample_size=sample_size, seed=seed
        )
        for name in contract.numeric_features
    }
    categorical = {
        name: profile_categorical(name, features[name]) for name in contract.categorical_features
    }
    score_matrix = scores.reshape(len(scores), -1)
    score_profiles = {
        name: profile_numeric(
            name, score_matrix[:, j], n_bins=n_bins, sample_size=sample_size, seed=seed
        )
        for j, name in enumerate(score_column_names(contract, scores))
    }
    task = contract.label.task.value if contract.label else Task.REGRESSION.value
    return ReferenceProfile(
        dataset=contract.dataset,
        contract_version=contract.version,
        task=task,
        n_rows=len(features),
        numeric=numeric,
        categorical=categorical,
        scores=score_profiles,
        n_bins=n_bins,
        sample_size=sample_size,
        seed=seed,
    )
