"""Batch scoring of Parquet partitions with onnxruntime, streamed batch by batch.

Where it lives (everything below is importable from ``mlops_onprem.scoring``):

- :mod:`~mlops_onprem.scoring.stream`: one local Parquet file in, one scored Parquet file out
  (pure core: the output columns, the streaming loop, the scoring-stage schema gate);
- :mod:`~mlops_onprem.scoring.session`: the per-process onnxruntime session cache (one load per
  model SHA-256 and worker process) and the model-vs-contract check;
- :mod:`~mlops_onprem.scoring.model`: :class:`ModelRef` and :func:`resolve_scoring_model`
  (registry ``model@ref`` -> a checked, cached model);
- :mod:`~mlops_onprem.scoring.objects`: the store orchestration: list partitions, score one
  object into its part key, quarantine a rejected input;
- :mod:`~mlops_onprem.scoring.summary`: the run's score distribution and summary markdown.
"""

from mlops_onprem.errors import ModelIntegrityError
from mlops_onprem.scoring.model import ModelRef, resolve_scoring_model
from mlops_onprem.scoring.objects import (
    InputChangedError,
    InputPartition,
    NoInputPartitionsError,
    batch_id_for,
    list_input_partitions,
    quarantine_partition,
    score_object,
)
from mlops_onprem.scoring.session import (
    cached_session,
    check_session_matches_contract,
    clear_session_cache,
    session_loads,
)
from mlops_onprem.scoring.stream import (
    DEFAULT_BATCH_ROWS,
    LINEAGE_COLUMNS,
    PREDICTED_LABEL_COLUMN,
    PROBA_PREFIX,
    SCORE_COLUMN,
    SCORE_SAMPLE_SIZE,
    CorruptPartitionError,
    PartitionResult,
    _scored_batch,
    output_schema,
    score_parquet_file,
    scoring_schema_check,
)
from mlops_onprem.scoring.summary import QUANTILES, score_distribution, scoring_summary_markdown

__all__ = [
    "DEFAULT_BATCH_ROWS", "LINEAGE_COLUMNS", "PREDICTED_LABEL_COLUMN", "PROBA_PREFIX", "QUANTILES",
    "SCORE_COLUMN", "SCORE_SAMPLE_SIZE",
    "CorruptPartitionError", "InputChangedError", "InputPartition", "ModelIntegrityError",
    "ModelRef", "NoInputPartitionsError", "PartitionResult",
    "_scored_batch", "batch_id_for", "cached_session", "check_session_matches_contract",
    "clear_session_cache", "list_input_partitions", "output_schema", "quarantine_partition",
    "resolve_scoring_model", "score_distribution", "score_object", "score_parquet_file",
    "scoring_schema_check", "scoring_summary_markdown", "session_loads",
]
