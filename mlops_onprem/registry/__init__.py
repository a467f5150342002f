"""The model registry, kept in the object store: immutable integer versions, aliases moved by
compare-and-swap, one immutable history object per decision.

- :mod:`~mlops_onprem.registry.versions`: the storage rules (layout, versions, aliases,
  history, reading a version's files); imports no training or export code;
- :mod:`~mlops_onprem.registry.register`: a staged candidate becomes a version (parity gate,
  reference profile, files, ``card.json`` last);
- :mod:`~mlops_onprem.registry.promote`: the promotion gate and rollback.

Every name is importable from ``mlops_onprem.registry``. The registering and promotion names
load their module (and with it the training and export code) on first use, so importing the
package or :mod:`~mlops_onprem.registry.versions` stays free of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlops_onprem.registry.versions import (
    CARD_FIGURE,
    CARD_JSON,
    CARD_MD,
    CHAMPION,
    CONTRACT_FILE,
    ModelIntegrityError,
    ModelNotFoundError,
    ModelVersion,
    PromotionConflictError,
    PromotionDecision,
    _append_history,
    _move_alias,
    allocate_version,
    champion_version,
    decisions_about,
    get_version,
    history,
    list_versions,
    load_card_figure,
    load_contract,
    load_eval_frame,
    load_onnx_bytes,
    resolve,
)

if TYPE_CHECKING:
    from mlops_onprem.registry.promote import (
        MIN_FAIR_EVAL_ROWS,
        PromotionRejectedError,
        champion_training_keys,
        evaluate_on,
        promote_if_better,
        rollback,
        score_rows,
    )
    from mlops_onprem.registry.register import (
        check_candidate_parity,
        reference_profile_for,
        register_candidate,
    )

_LAZY = {
    "check_candidate_parity": "register", "reference_profile_for": "register",
    "register_candidate": "register",
    "MIN_FAIR_EVAL_ROWS": "promote", "PromotionRejectedError": "promote",
    "champion_training_keys": "promote", "evaluate_on": "promote",
    "promote_if_better": "promote", "rollback": "promote", "score_rows": "promote",
}


def __getattr__(name: str) -> Any:
    """Load a registering or promotion name from its module on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "CARD_FIGURE", "CARD_JSON", "CARD_MD", "CHAMPION", "CONTRACT_FILE", "MIN_FAIR_EVAL_ROWS",
    "ModelIntegrityError", "ModelNotFoundError", "ModelVersion", "PromotionConflictError",
    "PromotionDecision", "PromotionRejectedError",
    "_append_history", "_move_alias", "allocate_version", "champion_training_keys",
    "champion_version", "check_candidate_parity", "decisions_about", "evaluate_on",
    "get_version", "history", "list_versions", "load_card_figure", "load_contract",
    "load_eval_frame", "load_onnx_bytes", "promote_if_better", "reference_profile_for",
    "register_candidate", "resolve", "rollback", "score_rows",
]
