"""The model a scoring run uses: :class:`ModelRef` (small, picklable) and
:func:`resolve_scoring_model`, which resolves ``model@ref`` in the registry and refuses a model
whose contract or ONNX metadata does not fit the dataset's contract.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mlops_onprem.contract_diff import IncompatibleContractError, check_compatible
from mlops_onprem.contracts import Contract
from mlops_onprem.onnx_io import FeatureMismatchError
from mlops_onprem.registry import versions as registry  # storage rules only: no training code
from mlops_onprem.scoring.session import cached_session, check_session_matches_contract
from mlops_onprem.store.base import ObjectStore, sha256_bytes
from mlops_onprem.threshold import threshold_of


@dataclass(frozen=True)
class ModelRef:
    """The resolved model a run scores with (small, picklable; the bytes stay in the store)."""

    name: str
    version: int
    onnx_key: str
    sha256: str
    decision_threshold: float | None = None  # binary: predicted_label is 1 at score >= it

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


def resolve_scoring_model(
    store: ObjectStore, model_name: str, ref: str, contract: Contract
) -> ModelRef:
    """Resolve ``model_name@ref`` in the registry and check it against ``contract``.

    Loads the model once here (and caches its session for this process), so a model whose
    features differ from the contract fails before any partition is scored. The contract the
    version was trained under (stored beside it) must be compatible with ``contract``: no
    breaking change (``contract_diff`` rules) from it, or the model is refused.
    Raises ModelNotFoundError (no such model / alias), FeatureMismatchError (a breaking
    contract change, naming column and change; names, order or types differ from the
    contract), CorruptModelError, the store family on I/O errors.
    """
    version = registry.resolve(store, model_name, ref)
    # cards assembled by hand (no stored contract) are left to the metadata check below
    if "contract" in version.card.get("files", {}):
        trained = registry.load_contract(store, version)
        try:
            check_compatible(trained, contract, what=f"model {version.name} v{version.version}")
        except IncompatibleContractError as exc:
            raise FeatureMismatchError(
                f"model {version.name} v{version.version} ({ref}) refused for scoring: {exc}; "
                "retrain it under the new contract or score with the contract it was trained under"
            ) from exc
    model_bytes = registry.load_onnx_bytes(store, version)
    model = ModelRef(
        name=version.name, version=int(version.version), onnx_key=version.onnx_key,
        sha256=sha256_bytes(model_bytes),
        decision_threshold=threshold_of(version.card),
    )
    session = cached_session(model.sha256, lambda: model_bytes, name=f"{model.label} ({ref})")
    check_session_matches_contract(session, contract, f"{model.label} ({ref}, {model.onnx_key})")
    return model
