"""Training: validated data in, a fitted scikit-learn pipeline and holdout metrics out, then a
candidate exported to ONNX and staged in the store.

Where it lives (everything below is importable from ``mlops_onprem.training``):

- :mod:`~mlops_onprem.training.split`: labels as class indices and the train / holdout split
  (pure), :class:`TrainingDataError`;
- :mod:`~mlops_onprem.training.data`: the ledger's training set read from the store, with its
  lineage (:class:`TrainingData`);
- :mod:`~mlops_onprem.training.pipelines`: the ``preprocess -> estimator`` pipeline of a spec
  and a fitted pipeline's native scores;
- :mod:`~mlops_onprem.training.metrics`: holdout metrics and :func:`is_better`;
- :mod:`~mlops_onprem.training.fit`: :func:`train_model` (pure) and the native model files;
- :mod:`~mlops_onprem.training.evaluation`: the staged evaluation frame (holdout + native scores);
- :mod:`~mlops_onprem.training.candidate`: :func:`train_candidate`, the store orchestration
  (train, export, stage the files and ``candidate.json``).
"""

from mlops_onprem.training.candidate import (
    CANDIDATE_FILE,
    EVAL_FILE,
    ONNX_FILE,
    REFERENCE_FEATURES_FILE,
    Candidate,
    train_candidate,
)
from mlops_onprem.training.data import TrainingData, load_training_frame, training_data_sha256
from mlops_onprem.training.evaluation import (
    NATIVE_LABEL,
    NATIVE_PROBA,
    NATIVE_SCORE,
    eval_frame_with_native,
    native_scores_from_eval,
)
from mlops_onprem.training.fit import TrainedModel, native_model_files, train_model
from mlops_onprem.training.metrics import compute_metrics, is_better
from mlops_onprem.training.pipelines import build_pipeline, native_scores
from mlops_onprem.training.split import TrainingDataError, encode_labels, split_train_holdout

__all__ = [
    "CANDIDATE_FILE", "EVAL_FILE", "NATIVE_LABEL", "NATIVE_PROBA", "NATIVE_SCORE", "ONNX_FILE",
    "REFERENCE_FEATURES_FILE",
    "Candidate", "TrainedModel", "TrainingData", "TrainingDataError",
    "build_pipeline", "compute_metrics", "encode_labels", "eval_frame_with_native", "is_better",
    "load_training_frame", "native_model_files", "native_scores", "native_scores_from_eval",
    "split_train_holdout", "train_candidate", "train_model", "training_data_sha256",
]
