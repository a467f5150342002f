"""Compare-and-swap pointers on S3: conditional PUTs that cannot misreport their outcome.

Pointers are written with conditional PUTs (``If-None-Match: *`` / ``If-Match: <etag>``),
sent through the SDK's low-level PUT because ``put_object`` cannot send them, and only on a
server that passed the conditional-write probe (:mod:`mlops_onprem.store.s3_probe`).

A conditional PUT is never retried by the HTTP layer (only failed connects, where nothing was
sent): a write that committed but lost its response would come back as 412 and be reported as
a lost race. Each pointer write carries a writer nonce in user metadata (``x-amz-meta-`` +
``WRITER_META``; the JSON document is unchanged); after a 412 or a transport error the pointer
is re-read, and if it holds this write's nonce the write is reported as won.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from mlops_onprem.errors import (
    ObjectNotFoundError,
    PointerConflictError,
    StoreError,
    StoreUnavailableError,
)
from mlops_onprem.keys import refuse_rewrite, validate_key
from mlops_onprem.store.base import Pointer, encode_pointer, sha256_bytes
from mlops_onprem.store.s3_client import META_HEADER
from mlops_onprem.store.s3_probe import S3ConformanceProbe

WRITER_META = "mlops-writer"  # user metadata carrying the nonce of the pointer write that made it
WRITER_HEADER = "x-amz-meta-" + WRITER_META
CAS_BACKOFF_S = 0.2  # first pause before write_pointer retries a conditional PUT (then doubled)


class S3Pointers(S3ConformanceProbe):
    """``read_pointer`` / ``write_pointer`` of the S3 store."""

    def _read_pointer_and_writer(self, key: str) -> tuple[Pointer | None, str | None]:
        """The pointer at ``key`` and the nonce of the write that made it (None if absent)."""

        def read() -> tuple[bytes, str, str | None]:
            response = self._client.get_object(self.bucket, key)
            try:
                return (response.read(), response.headers.get("etag", "").strip('"'),
                        response.headers.get(WRITER_HEADER))
            finally:
                response.close()
                response.release_conn()

        try:
            data, etag, writer = self._call("reading pointer", key, read)
        except ObjectNotFoundError:
            return None, None
        return Pointer(key=key, value=json.loads(data), token=etag), writer

    def read_pointer(self, key: str) -> Pointer | None:
        validate_key(key)
        self._ensure_bucket("reading pointer", key)
        return self._read_pointer_and_writer(key)[0]

    def _conditional_put(self, key: str, data: bytes, condition: dict[str, str],
                         writer: str | None = None) -> str:
        """One conditional PUT, never retried by the HTTP layer once its request was sent."""
        headers = {
            "Content-Type": "application/json",
            META_HEADER: sha256_bytes(data),
            **({WRITER_HEADER: writer} if writer else {}),
            **condition,
        }
        result = self._call("conditional write of", key, lambda: self._cas_client._put_object(
            self.bucket, key, data, headers=headers))
        return (result.etag or "").strip('"')

    def write_pointer(self, key: str, value: dict[str, Any], *, expected_token: str | None) -> Pointer:
        """Compare-and-swap through a conditional PUT that cannot misreport its outcome.

        The write carries a fresh nonce (user metadata, the document is unchanged). After a
        412/404, or a transport or server error (the write may have committed with its
        response lost), the pointer is re-read: if it holds this write's nonce the write won.
        A transport error with the pointer not (yet) ours is retried up to
        ``s3_max_retries`` times, still conditionally, so it is never applied twice.
        Raises :class:`PointerConflictError` when another writer won,
        :class:`StoreUnavailableError` when the outcome could not be learned, and
        :class:`StoreCapabilityError` (naming the failed checks) when the server failed the
        conditional-write probe (:meth:`conditional_write_conformance`).
        """
        validate_key(key)
        if expected_token is not None:
            refuse_rewrite(key, "pointer update")
        self._ensure_bucket("writing pointer", key)
        self._require_conditional_writes()
        data = encode_pointer(value)
        writer = uuid.uuid4().hex
        condition = {"If-None-Match": "*"} if expected_token is None else {"If-Match": f'"{expected_token}"'}
        attempt = 0
        while True:
            try:
                etag = self._conditional_put(key, data, condition, writer)
                return Pointer(key=key, value=json.loads(data), token=etag)
            except (PointerConflictError, ObjectNotFoundError) as exc:
                refused: StoreError = exc
            except StoreUnavailableError as exc:
                refused = exc
            current, current_writer = self._read_pointer_and_writer(key)
            if current is not None and current_writer == writer:
                return current  # committed; only its response was lost
            if isinstance(refused, StoreUnavailableError):
                if attempt < self._retries:
                    attempt += 1
                    time.sleep(CAS_BACKOFF_S * 2 ** (attempt - 1))
                    continue
                raise StoreUnavailableError(
                    f"conditional write of pointer {key!r} in {self.location} did not complete "
                    f"after {attempt + 1} attempt(s) and the pointer does not hold it: {refused}"
                ) from None
            if current is None and expected_token is not None:
                raise PointerConflictError(
                    f"pointer {key!r} in {self.location} was deleted since it was read"
                ) from None
            state = "already exists" if expected_token is None else "changed"
            raise PointerConflictError(
                f"pointer {key!r} in {self.location} {state} since it was read: "
                "another writer won the race; re-read it and decide again"
            ) from None
