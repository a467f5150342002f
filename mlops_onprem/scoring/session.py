"""The per-process onnxruntime session cache of batch scoring, and the check of a loaded model
against the data contract.

Sessions are cached per process (one per model SHA-256 and thread setting), so a Dask or
Prefect worker process loads a model once however many partitions it scores. The model bytes
are checked against the SHA-256 the caller resolved before a session is built.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import onnxruntime as ort

from mlops_onprem.contracts import Contract
from mlops_onprem.errors import ModelError, ModelIntegrityError
from mlops_onprem.onnx_io import check_metadata_matches_contract, create_session, read_metadata
from mlops_onprem.store.base import sha256_bytes

_SESSIONS: dict[tuple[str, int, int], ort.InferenceSession] = {}
_SESSIONS_LOCK = threading.Lock()
_SESSION_LOADS = 0  # how many sessions this process created (tests read it)


def cached_session(
    model_sha256: str,
    load_bytes: Callable[[], bytes],
    *,
    intra_op_threads: int = 1,
    inter_op_threads: int = 1,
    name: str | None = None,
) -> ort.InferenceSession:
    """The process-wide session for the model whose bytes hash to ``model_sha256``.

    ``load_bytes`` is called only on a cache miss (first partition in this process); its
    result is checked against ``model_sha256`` before a session is built.
    Raises ModelIntegrityError on a hash mismatch, CorruptModelError on unloadable bytes.
    """
    global _SESSION_LOADS
    cache_key = (model_sha256, intra_op_threads, inter_op_threads)
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(cache_key)
        if session is not None:
            return session
        # Loading under the lock: two threads of one worker must not build two sessions.
        model_bytes = load_bytes()
        actual = sha256_bytes(model_bytes)
        if actual != model_sha256:
            raise ModelIntegrityError(
                f"model {name or '<unnamed>'}: bytes hash to {actual}, expected {model_sha256}"
            )
        session = create_session(
            model_bytes, intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads,
            name=name,
        )
        _SESSIONS[cache_key] = session
        _SESSION_LOADS += 1
        return session


def session_loads() -> int:
    """How many sessions this process has created through :func:`cached_session`."""
    return _SESSION_LOADS


def clear_session_cache() -> None:
    """Drop every cached session (tests; or to free memory after a run)."""
    with _SESSIONS_LOCK:
        _SESSIONS.clear()


def check_session_matches_contract(session: ort.InferenceSession, contract: Contract,
                                   source: str = "model") -> str:
    """Check a model's metadata against ``contract``; return the contract's task value.

    Raises FeatureMismatchError (names, order or types differ), CorruptModelError (no
    metadata) and ModelError when the contract has no label (no task to score for).
    """
    meta = read_metadata(session, source)
    check_metadata_matches_contract(meta, contract)
    if contract.label is None:
        raise ModelError(f"contract {contract.dataset!r} declares no label: task unknown")
    return contract.label.task.value
