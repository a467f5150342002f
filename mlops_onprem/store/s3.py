"""MinIO/S3 object store through the ``minio`` SDK: :class:`S3Store` and its plain object operations.

MinIO-first: nothing here is moto-specific. The store is assembled from one module per concern:

* :mod:`~mlops_onprem.store.s3_client`: the HTTP clients (connect/read timeouts, bounded
  retries, the time budget of one store call, ``MLOPS_S3_CALL_TIMEOUT_S``), SDK calls with
  translated errors, the bucket check;
* :mod:`~mlops_onprem.store.s3_errors`: sanitized reply excerpts (never request headers,
  credentials or signatures) and the translation of SDK/transport failures;
* :mod:`~mlops_onprem.store.s3_probe`: the conditional-write conformance probe and its cached
  verdict (``mlops doctor`` shows it as a table);
* :mod:`~mlops_onprem.store.s3_cas`: compare-and-swap pointers through conditional PUTs;
* this module: bytes, files, listing, stat, delete and server-side copy.

Every name other modules import from here (``S3Store``, ``reply_excerpt``,
``ConformanceReport``, ``ConformanceCheck``, ``PROBE_RACE_WRITERS``, ``WRITER_META``) is
re-exported.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

from mlops_onprem.errors import IntegrityError, StoreError
from mlops_onprem.keys import refuse_rewrite, validate_key, validate_prefix
from mlops_onprem.store.base import SHA256_META, ObjectInfo, sha256_bytes, sha256_file
from mlops_onprem.store.s3_cas import WRITER_META, S3Pointers
from mlops_onprem.store.s3_client import META_HEADER
from mlops_onprem.store.s3_errors import reply_excerpt
from mlops_onprem.store.s3_probe import PROBE_RACE_WRITERS, ConformanceCheck, ConformanceReport

__all__ = ["PROBE_RACE_WRITERS", "WRITER_META", "ConformanceCheck", "ConformanceReport", "S3Store",
           "reply_excerpt"]


class S3Store(S3Pointers):
    """An :class:`ObjectStore` on MinIO or any S3-compatible server.

    Pointers and the conditional-write probe come from :class:`S3Pointers`; the clients,
    error translation and bucket check from :class:`~mlops_onprem.store.s3_client.S3Connection`.
    """

    # --- interface ------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream",
                  metadata: dict[str, str] | None = None) -> ObjectInfo:
        validate_key(key)
        refuse_rewrite(key, "put")
        self._ensure_bucket("writing", key)
        sha = sha256_bytes(data)
        user_meta = {**(metadata or {}), SHA256_META: sha}
        result = self._call("writing", key, lambda: self._client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type,
            metadata=user_meta, part_size=self._part_size,
        ))
        return ObjectInfo(key=key, size=len(data), etag=result.etag or "", sha256=sha,
                          metadata={**user_meta, "content-type": content_type})

    def get_bytes(self, key: str, *, verify: bool = True) -> bytes:
        validate_key(key)
        self._ensure_bucket("reading", key)

        def read() -> tuple[bytes, str | None]:
            response = self._client.get_object(self.bucket, key)
            try:
                return response.read(), response.headers.get(META_HEADER)
            finally:
                response.close()
                response.release_conn()

        data, expected = self._call("reading", key, read)
        if verify and expected and sha256_bytes(data) != expected:
            raise IntegrityError(
                f"object {key!r} in {self.location} does not match its recorded SHA-256 "
                f"{expected[:12]}...: the stored bytes were altered or truncated"
            )
        return data

    def put_file(self, key: str, path: Path, *, content_type: str = "application/octet-stream",
                 metadata: dict[str, str] | None = None) -> ObjectInfo:
        validate_key(key)
        refuse_rewrite(key, "put")
        source = Path(path)
        if not source.is_file():
            raise StoreError(f"cannot upload {source} to {key!r}: not a file")
        self._ensure_bucket("uploading", key)
        sha = sha256_file(source)
        user_meta = {**(metadata or {}), SHA256_META: sha}
        result = self._call("uploading", key, lambda: self._client.fput_object(
            self.bucket, key, str(source), content_type=content_type, metadata=user_meta,
            part_size=self._part_size,
        ))
        return ObjectInfo(key=key, size=source.stat().st_size, etag=result.etag or "", sha256=sha,
                          metadata={**user_meta, "content-type": content_type})

    def get_file(self, key: str, path: Path, *, verify: bool = True) -> ObjectInfo:
        validate_key(key)
        self._ensure_bucket("downloading", key)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            stat = self._call("downloading", key, lambda: self._client.fget_object(
                self.bucket, key, str(tmp)))
            info = self._info_from_stat(key, stat)
            if verify and info.sha256 and sha256_file(tmp) != info.sha256:
                raise IntegrityError(
                    f"object {key!r} in {self.location} does not match its recorded SHA-256"
                )
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        return info

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        self._ensure_bucket("listing", prefix or "/")
        objects = self._call("listing", prefix or "/", lambda: [
            obj for obj in self._client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
            if not obj.is_dir
        ])
        return iter(sorted(
            (ObjectInfo(key=o.object_name, size=int(o.size or 0), etag=(o.etag or "").strip('"'),
                        last_modified=o.last_modified) for o in objects),
            key=lambda info: info.key,
        ))

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        self._ensure_bucket("inspecting", key)
        stat = self._call("inspecting", key, lambda: self._client.stat_object(self.bucket, key))
        return self._info_from_stat(key, stat)

    def delete(self, key: str) -> None:
        validate_key(key)
        refuse_rewrite(key, "delete")
        self._ensure_bucket("deleting", key)
        self._call("deleting", key, lambda: self._client.remove_object(self.bucket, key))

    def copy(self, source_key: str, target_key: str) -> ObjectInfo:
        """Server-side copy: the bytes never travel through this process."""
        from minio.commonconfig import CopySource

        validate_key(source_key)
        validate_key(target_key)
        refuse_rewrite(target_key, "copy")
        self._ensure_bucket("copying", source_key)
        self._call("copying", source_key, lambda: self._client.copy_object(
            self.bucket, target_key, CopySource(self.bucket, source_key)))
        return self.stat(target_key)
