"""The decision threshold of a binary model: which score makes a row positive.

A binary model scores P(positive); ``predicted_label`` is positive when the score is **at
least** the threshold. The spec's ``decision_threshold`` sets it:

- absent: ``0.5`` (rule ``default``), recorded like any other;
- a number in (0, 1): fixed (rule ``fixed``);
- ``{rule: max_f1}``: the holdout threshold with the highest F1;
- ``{rule: min_precision, target: 0.9}``: the lowest holdout threshold whose precision is at
  least the target (the most recall that precision allows);
- ``{rule: min_recall, target: 0.8}``: the highest holdout threshold whose recall is at least
  the target (the most precision that recall allows).

A rule chosen on the holdout is chosen on the same rows the holdout metrics are computed on,
so F1 and accuracy there are optimistic by the choice (the card says so); ROC AUC and log loss
do not depend on it. A target the holdout cannot meet falls back to 0.5 with ``met: false``:
the card shows it and a spec floor can refuse such a model. Training records the choice in the
card; scoring's ``predicted_label``, the promotion gate and monitoring's accuracy/F1 use it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_THRESHOLD = 0.5
ThresholdRule = Literal["fixed", "max_f1", "min_precision", "min_recall"]


class ThresholdSpec(BaseModel):
    """The spec's ``decision_threshold`` when it names a rule (a bare number is ``fixed``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: ThresholdRule
    value: float | None = Field(default=None, gt=0.0, lt=1.0)  # rule fixed
    target: float | None = Field(default=None, gt=0.0, le=1.0)  # rules min_precision / min_recall

    @model_validator(mode="after")
    def _arguments_fit_rule(self) -> ThresholdSpec:
        if self.rule == "fixed" and self.value is None:
            raise ValueError("rule 'fixed' needs a value in (0, 1)")
        if self.rule in ("min_precision", "min_recall") and self.target is None:
            raise ValueError(f"rule {self.rule!r} needs a target in (0, 1]")
        if self.rule != "fixed" and self.value is not None:
            raise ValueError(f"rule {self.rule!r} chooses the value on the holdout: drop 'value'")
        return self


def as_threshold_spec(raw: float | dict[str, Any] | ThresholdSpec | None) -> ThresholdSpec | None:
    """The spec field in its one typed form (a number means ``fixed``)."""
    if raw is None or isinstance(raw, ThresholdSpec):
        return raw
    if isinstance(raw, (int, float)):
        return ThresholdSpec(rule="fixed", value=float(raw))
    return ThresholdSpec.model_validate(raw)


@dataclass(frozen=True)
class ThresholdChoice:
    """What the card records under ``decision_threshold``."""

    value: float
    rule: str  # default | fixed | max_f1 | min_precision | min_recall
    target: float | None = None
    met: bool = True
    chosen_on_rows: int = 0  # holdout rows a rule chose on (0: not chosen on data)
    precision: float | None = None  # on the holdout, at ``value``
    recall: float | None = None
    f1: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def threshold_of(card: dict[str, Any] | None) -> float | None:
    """The decision threshold a card records (None: not binary, or registered before)."""
    record = (card or {}).get("decision_threshold")
    return None if not record else float(record["value"])


def predicted_positive(p_positive: np.ndarray, threshold: float) -> np.ndarray:
    """1 where the row is predicted positive (score at least the threshold), else 0."""
    return (np.asarray(p_positive) >= threshold).astype(np.int64)


def _counts_at(y: np.ndarray, p: np.ndarray, t: float) -> tuple[float | None, float | None, float]:
    predicted = p >= t
    tp = float(np.sum(predicted & (y == 1)))
    fp = float(np.sum(predicted & (y == 0)))
    fn = float(np.sum(~predicted & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return precision, recall, f1


def _curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 at each distinct score used as the threshold (ascending)."""
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    ends = np.r_[np.flatnonzero(np.diff(p_sorted) != 0), p_sorted.size - 1]  # last of each tie
    tp = np.cumsum(y_sorted == 1)[ends].astype(np.float64)
    fp = np.cumsum(y_sorted == 0)[ends].astype(np.float64)
    positives = float(np.sum(y == 1))
    thresholds = p_sorted[ends]
    precision = tp / (tp + fp)
    recall = tp / positives if positives else np.zeros_like(tp)
    f1 = 2 * tp / (tp + fp + positives)
    return thresholds[::-1], precision[::-1], recall[::-1], f1[::-1]


def choose_threshold(spec: ThresholdSpec | None, y: np.ndarray, p_positive: np.ndarray) -> ThresholdChoice:
    """The threshold ``spec`` asks for, chosen on holdout labels ``y`` (0/1) and scores."""
    y = np.asarray(y).astype(np.int64)
    p = np.asarray(p_positive, dtype=np.float64)

    def at(value: float, rule: str, **extra: Any) -> ThresholdChoice:
        precision, recall, f1 = _counts_at(y, p, value) if len(y) else (None, None, None)
        return ThresholdChoice(value=float(value), rule=rule, precision=precision, recall=recall,
                               f1=f1, **extra)

    if spec is None:
        return at(DEFAULT_THRESHOLD, "default")
    if spec.rule == "fixed":
        return at(float(spec.value), "fixed")  # type: ignore[arg-type]
    if len(y) == 0 or not np.any(y == 1):
        return at(DEFAULT_THRESHOLD, spec.rule, target=spec.target, met=False,
                  note="no positive holdout row to choose on: 0.5 used")
    thresholds, precision, recall, f1 = _curve(y, p)
    n = len(y)
    if spec.rule == "max_f1":
        best = int(np.argmax(f1[::-1]))  # ties: the highest threshold (fewest positives)
        i = len(f1) - 1 - best
        return at(float(thresholds[i]), "max_f1", chosen_on_rows=n,
                  note=f"F1 maximised on the {n} holdout rows (holdout F1 is optimistic by it)")
    target = float(spec.target)  # type: ignore[arg-type]
    if spec.rule == "min_precision":
        ok = np.flatnonzero(precision >= target)
        if ok.size == 0:
            return at(DEFAULT_THRESHOLD, "min_precision", target=target, met=False,
                      chosen_on_rows=n, note=f"no holdout threshold reaches precision {target:g} "
                      f"(best {float(np.max(precision)):.3f}): 0.5 used")
        return at(float(thresholds[ok[0]]), "min_precision", target=target, chosen_on_rows=n,
                  note=f"lowest threshold with precision >= {target:g} on {n} holdout rows")
    ok = np.flatnonzero(recall >= target)  # recall falls as the threshold rises
    return at(float(thresholds[ok[-1]]), "min_recall", target=target, chosen_on_rows=n,
              note=f"highest threshold with recall >= {target:g} on {n} holdout rows")
