"""Model specs: which estimator to train and how, as a small reviewed YAML in ``model_specs/``.

A spec names an estimator ``kind`` and its hyperparameters; the data contract decides the
task, features and label. Seeds, split sizes and gates come from here, never from literals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlops_onprem.contracts import Task
from mlops_onprem.errors import ModelError
from mlops_onprem.settings import get_settings
from mlops_onprem.shipped import locate, not_found, search_path, shipped_folder
from mlops_onprem.threshold import ThresholdSpec, as_threshold_spec

#: estimator kinds a spec may name; ``hist_gradient_boosting`` is known but refused at export
ModelKind = Literal["xgboost", "linear", "random_forest", "hist_gradient_boosting"]
UNSUPPORTED_KINDS = {
    "hist_gradient_boosting": (
        "skl2onnx 1.20 cannot convert HistGradientBoosting models in this stack, so they could "
        "not be exported to ONNX and scored; use kind 'xgboost' (gradient-boosted trees) instead"
    ),
}

#: default primary metric per task, and whether higher is better for every metric we compute
DEFAULT_PRIMARY_METRIC = {
    Task.BINARY: "roc_auc",
    Task.MULTICLASS: "roc_auc",
    Task.REGRESSION: "rmse",
}
HIGHER_IS_BETTER = {
    "roc_auc": True, "log_loss": False, "f1": True, "accuracy": True,
    "rmse": False, "mae": False, "r2": True,
}
CLASSIFICATION_METRICS = ("roc_auc", "log_loss", "f1", "accuracy")
REGRESSION_METRICS = ("rmse", "mae", "r2")


class ModelSpecError(ModelError):
    """A model spec file is missing or invalid, or names an unsupported estimator."""


class UnsupportedModelError(ModelSpecError):
    """The spec names an estimator we cannot export to ONNX."""


class ModelSpec(BaseModel):
    """How to train one model.

    ``params`` go to the estimator for every task; ``classifier_params`` / ``regressor_params``
    are merged over them for that task only (e.g. ``C`` for logistic, ``alpha`` for ridge).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    kind: ModelKind = "xgboost"
    params: dict[str, Any] = Field(default_factory=dict)
    classifier_params: dict[str, Any] = Field(default_factory=dict)
    regressor_params: dict[str, Any] = Field(default_factory=dict)
    holdout_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    # auto: by time when the contract names a timestamp, else stratified random (classification)
    split: Literal["auto", "time", "stratified", "random"] = "auto"
    seed: int = 42
    primary_metric: str | None = None
    parity_tolerance: float = Field(default=1e-5, ge=0.0)
    # promotion gate: absolute floors (min for higher-is-better metrics, max otherwise), and the
    # significance the paired-bootstrap improvement over the champion must reach (None: margin)
    floors: dict[str, float] = Field(default_factory=dict)
    promotion_alpha: float | None = Field(default=None, gt=0.0, lt=0.5)
    # binary only: a number in (0, 1) or a rule chosen on the holdout (see mlops_onprem.threshold)
    decision_threshold: ThresholdSpec | None = None

    @field_validator("decision_threshold", mode="before")
    @classmethod
    def _number_is_fixed(cls, value: Any) -> Any:
        return as_threshold_spec(value) if isinstance(value, (int, float)) else value

    @field_validator("floors")
    @classmethod
    def _known_floor_metrics(cls, floors: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(floors) - set(HIGHER_IS_BETTER))
        if unknown:
            raise ValueError(f"floors name unknown metrics {unknown}; known: {sorted(HIGHER_IS_BETTER)}")
        return floors

    def estimator_params(self, task: Task) -> dict[str, Any]:
        """The estimator's keyword arguments for ``task``."""
        extra = self.regressor_params if task == Task.REGRESSION else self.classifier_params
        return {**self.params, **extra}

    def primary_metric_for(self, task: Task) -> str:
        """The metric promotion compares; raises ModelSpecError if it does not fit the task."""
        metric = self.primary_metric or DEFAULT_PRIMARY_METRIC[task]
        allowed = REGRESSION_METRICS if task == Task.REGRESSION else CLASSIFICATION_METRICS
        if metric not in allowed:
            raise ModelSpecError(
                f"spec {self.name!r}: primary metric {metric!r} does not fit task {task.value} "
                f"(choose one of {', '.join(allowed)})"
            )
        return metric

    def threshold_for(self, task: Task) -> ThresholdSpec | None:
        """The decision-threshold rule; raises ModelSpecError when set for a non-binary task."""
        if self.decision_threshold is not None and task != Task.BINARY:
            raise ModelSpecError(
                f"spec {self.name!r}: decision_threshold applies to binary models only, and "
                f"this contract's task is {task.value} (remove it from the spec)"
            )
        return self.decision_threshold

    def check_supported(self) -> None:
        """Raise UnsupportedModelError for kinds that cannot be exported to ONNX."""
        if self.kind in UNSUPPORTED_KINDS:
            raise UnsupportedModelError(
                f"spec {self.name!r}: kind {self.kind!r} is not supported: {UNSUPPORTED_KINDS[self.kind]}"
            )


def default_specs_dir() -> Path:
    """The model specs shipped with the kit (the package's copy of the repository's
    ``model_specs/``, or that folder in a checkout: :mod:`mlops_onprem.shipped`)."""
    return shipped_folder("model_specs")


def load_model_spec(
    spec: str | Path, *, specs_dir: Path | None = None, **overrides: Any
) -> ModelSpec:
    """Load a spec by path, or by name: ``<name>.yaml`` in ``specs_dir`` when given, else in the
    company's folder (``MLOPS_MODEL_SPECS_DIR``) and then the shipped specs
    (:mod:`mlops_onprem.shipped`); then apply overrides.

    ``overrides`` set top-level fields (``seed=7``, ``parity_tolerance=0``); ``None`` values
    are ignored so flow parameters can pass through unchanged.
    Raises ModelSpecError when the file is missing or invalid.
    """
    path = Path(spec)
    if path.suffix not in (".yaml", ".yml"):
        folders = search_path(specs_dir, get_settings().model_specs_dir, "model_specs")
        filename = f"{spec}.yaml"
        found = locate(filename, folders)
        if found is None and len(folders) > 1:
            raise ModelSpecError(not_found("model spec", filename, folders, "MLOPS_MODEL_SPECS_DIR"))
        path = found or folders[0] / filename
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelSpecError(f"model spec {path} cannot be read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ModelSpecError(f"model spec {path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelSpecError(f"model spec {path}: expected a mapping at the top level")
    raw.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ModelSpecError(f"model spec {path}: {problems}") from exc
