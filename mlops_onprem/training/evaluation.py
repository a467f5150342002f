"""The evaluation frame staged with a candidate (pure): the holdout rows plus the native model's
scores in ``_native_*`` columns, and the way back to :class:`~mlops_onprem.onnx_io.ScoreArrays`
(what the parity gate and monitoring compare the ONNX graph against).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_onprem.onnx_io import ScoreArrays
from mlops_onprem.training.fit import TrainedModel

NATIVE_SCORE = "_native_score"
NATIVE_LABEL = "_native_label"
NATIVE_PROBA = "_native_p"  # + class index


def eval_frame_with_native(trained: TrainedModel) -> pd.DataFrame:
    """The holdout rows plus the native model's scores (``_native_*`` columns)."""
    frame = trained.holdout.copy()
    scores = trained.native_holdout
    frame[NATIVE_SCORE] = scores.score
    if scores.label is not None and scores.probabilities is not None:
        frame[NATIVE_LABEL] = scores.label
        for k in range(scores.probabilities.shape[1]):
            frame[f"{NATIVE_PROBA}{k}"] = np.asarray(scores.probabilities[:, k], dtype=np.float64)
    return frame


def native_scores_from_eval(frame: pd.DataFrame) -> ScoreArrays:
    """Inverse of :func:`eval_frame_with_native`: the stored native scores."""
    score = frame[NATIVE_SCORE].to_numpy(dtype=np.float64)
    if NATIVE_LABEL not in frame.columns:
        return ScoreArrays(score=score)
    proba_columns = sorted(
        (c for c in frame.columns if c.startswith(NATIVE_PROBA)), key=lambda c: int(c[len(NATIVE_PROBA):])
    )
    return ScoreArrays(
        score=score,
        label=frame[NATIVE_LABEL].to_numpy(dtype=np.int64),
        probabilities=frame[proba_columns].to_numpy(dtype=np.float64),
    )


