"""Local-directory object store: the embedded default when no S3 endpoint is configured.

Layout under ``root``::

    objects/<key>~<id>    the bytes of one written version of an object (browsable by key)
    meta/<key>.json       the object's record: blob name, SHA-256, size, user metadata
    tmp/                  in-flight writes
    locks/                per-key lock files (readers share, writers exclude)

A write lands its blob first, then replaces ``meta/<key>.json`` in one atomic rename: that
rename is the commit. A crash before it leaves the old object intact (and an orphan blob);
a crash after it leaves the new object complete. The previous blob is removed after the
commit. As on S3, ``a`` and ``a/b`` can both be keys.

Durability: the blob's bytes, the metadata record and both directory entries (the blob's and
the record's rename) are fsynced, in that order, before the old blob is removed, so a power
cut also leaves the old object or the new one. ``_after_step`` is a test-only hook called
after each step of a write (see :data:`WRITE_STEPS`); ``tests/store/test_store_crash.py`` sets it in
a child process to ``os._exit`` there and checks every read afterwards.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops_onprem.errors import (
    IntegrityError,
    InvalidKeyError,
    ObjectNotFoundError,
    PointerConflictError,
    StoreError,
)
from mlops_onprem.keys import refuse_rewrite, validate_key, validate_prefix
from mlops_onprem.store.base import (
    ObjectInfo,
    ObjectStore,
    Pointer,
    encode_pointer,
    sha256_bytes,
)

_COPY_CHUNK = 4 * 1024 * 1024
_META_SUFFIX = ".json"

#: the steps of a write, in order; ``_after_step`` is called with each name once it is done
WRITE_STEPS = ("data-synced", "blob-placed", "meta-synced", "committed", "old-blob-removed")
_after_step: Callable[[str], None] = lambda step: None  # noqa: E731 (test-only crash hook)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make the directory's entries (a rename, a new file) durable."""
    _fsync_file(path)


def _make_dirs_durable(directory: Path) -> None:
    """``mkdir -p`` whose new directories survive a power cut (each parent fsynced)."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    if not missing:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        _fsync_dir(created.parent)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _copy_hashing(source: Path, target: Path, *, sync: bool = False) -> tuple[str, int]:
    """Copy ``source`` to ``target`` and return (SHA-256, size): one pass over the bytes;
    with ``sync`` the copy is fsynced (a blob about to be committed)."""
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(_COPY_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        if sync:
            dst.flush()
            os.fsync(dst.fileno())
    return digest.hexdigest(), size


class LocalStore(ObjectStore):
    """An :class:`ObjectStore` in a local directory (single host, many processes)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._blobs = self.root / "objects"
        self._meta = self.root / "meta"
        self._tmp = self.root / "tmp"
        self._locks = self.root / "locks"
        for directory in (self._blobs, self._meta, self._tmp, self._locks):
            directory.mkdir(parents=True, exist_ok=True)
        self.location = f"local directory {self.root}"

    # --- paths ----------------------------------------------------------------------------
    def _meta_path(self, key: str) -> Path:
        validate_key(key)
        path = (self._meta / (key + _META_SUFFIX)).resolve()
        # defence in depth: validate_key already forbids '..' and absolute keys
        if not path.is_relative_to(self._meta):
            raise InvalidKeyError(f"object key {key!r} escapes the store root")
        return path

    def blob_path(self, key: str) -> Path:
        """The file holding ``key``'s current bytes (for inspection; read through the API)."""
        return self._blobs / self._read_meta(key)["blob"]

    def _tmp_path(self) -> Path:
        return self._tmp / f"{uuid.uuid4().hex}.part"

    @contextmanager
    def _key_lock(self, key: str, *, shared: bool = False) -> Iterator[None]:
        """Readers share the lock, writers hold it alone: a writer never removes the blob a
        reader is reading, and compare-and-swap is a single critical section."""
        lock_path = self._locks / (hashlib.sha256(key.encode()).hexdigest() + ".lock")
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- commit protocol ------------------------------------------------------------------
    def _commit(self, key: str, tmp_data: Path, sha256: str, size: int, content_type: str,
                metadata: dict[str, str] | None) -> ObjectInfo:
        """Publish ``tmp_data`` (its bytes already fsynced) as ``key``: blob first, then the
        metadata rename (the commit), each made durable before the next step; the old blob
        goes last. Call with the key's exclusive lock held."""
        _after_step("data-synced")
        meta_path = self._meta_path(key)
        previous = self._read_meta_or_none(meta_path)
        blob = f"{key}~{uuid.uuid4().hex[:16]}"
        blob_path = self._blobs / blob
        _make_dirs_durable(blob_path.parent)
        os.replace(tmp_data, blob_path)
        _fsync_dir(blob_path.parent)
        _after_step("blob-placed")
        meta = {
            "blob": blob, "sha256": sha256, "size": size, "content-type": content_type,
            "metadata": dict(metadata or {}), "last_modified": datetime.now(UTC).isoformat(),
        }
        tmp_meta = self._tmp_path()
        _write_synced(tmp_meta, json.dumps(meta).encode("utf-8"))
        _after_step("meta-synced")
        _make_dirs_durable(meta_path.parent)
        os.replace(tmp_meta, meta_path)  # the commit
        _fsync_dir(meta_path.parent)
        _after_step("committed")
        if previous is not None:
            (self._blobs / previous["blob"]).unlink(missing_ok=True)
        _after_step("old-blob-removed")
        return self._info(key, meta)

    def _info(self, key: str, meta: dict[str, Any]) -> ObjectInfo:
        return ObjectInfo(
            key=key, size=int(meta["size"]), etag=meta["sha256"], sha256=meta["sha256"],
            last_modified=datetime.fromisoformat(meta["last_modified"]),
            metadata={"content-type": meta.get("content-type", ""), **meta.get("metadata", {})},
        )

    @staticmethod
    def _read_meta_or_none(meta_path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def _read_meta(self, key: str) -> dict[str, Any]:
        meta = self._read_meta_or_none(self._meta_path(key))
        if meta is None:
            raise ObjectNotFoundError(f"object {key!r} not found in {self.location}")
        return meta

    def _missing_blob(self, key: str, meta: dict[str, Any]) -> IntegrityError:
        return IntegrityError(f"object {key!r} in {self.location}: its blob {meta['blob']} is missing")

    def _read_verified(self, key: str, meta: dict[str, Any], *, verify: bool) -> bytes:
        try:
            data = (self._blobs / meta["blob"]).read_bytes()
        except FileNotFoundError as exc:
            raise self._missing_blob(key, meta) from exc
        if verify and sha256_bytes(data) != meta["sha256"]:
            raise IntegrityError(
                f"object {key!r} in {self.location} does not match its recorded SHA-256 "
                f"{meta['sha256'][:12]}...: the stored bytes were altered or truncated"
            )
        return data

    # --- interface ------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream",
                  metadata: dict[str, str] | None = None) -> ObjectInfo:
        validate_key(key)
        refuse_rewrite(key, "put")
        tmp = self._tmp_path()
        _write_synced(tmp, data)
        with self._key_lock(key):
            return self._commit(key, tmp, sha256_bytes(data), len(data), content_type, metadata)

    def get_bytes(self, key: str, *, verify: bool = True) -> bytes:
        validate_key(key)
        with self._key_lock(key, shared=True):
            return self._read_verified(key, self._read_meta(key), verify=verify)

    def put_file(self, key: str, path: Path, *, content_type: str = "application/octet-stream",
                 metadata: dict[str, str] | None = None) -> ObjectInfo:
        validate_key(key)
        refuse_rewrite(key, "put")
        source = Path(path)
        if not source.is_file():
            raise StoreError(f"cannot upload {source} to {key!r}: not a file")
        tmp = self._tmp_path()
        sha, size = _copy_hashing(source, tmp, sync=True)
        with self._key_lock(key):
            return self._commit(key, tmp, sha, size, content_type, metadata)

    def get_file(self, key: str, path: Path, *, verify: bool = True) -> ObjectInfo:
        validate_key(key)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            with self._key_lock(key, shared=True):
                meta = self._read_meta(key)
                try:
                    sha, _size = _copy_hashing(self._blobs / meta["blob"], tmp)
                except FileNotFoundError as exc:
                    raise self._missing_blob(key, meta) from exc
            if verify and sha != meta["sha256"]:
                raise IntegrityError(
                    f"object {key!r} in {self.location} does not match its recorded SHA-256"
                )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return self._info(key, meta)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        # walk only the directory that can hold the prefix
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self._meta / head if head else self._meta
        if not start.is_dir():
            return iter(())
        found = []
        for dirpath, _dirnames, filenames in os.walk(start):
            for filename in filenames:
                if not filename.endswith(_META_SUFFIX):
                    continue
                relative = (Path(dirpath) / filename).relative_to(self._meta).as_posix()
                key = relative[: -len(_META_SUFFIX)]
                if key.startswith(prefix):
                    found.append(key)
        infos = []
        for key in sorted(found):
            meta = self._read_meta_or_none(self._meta_path(key))
            if meta is not None:  # deleted while listing
                infos.append(self._info(key, meta))
        return iter(infos)

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        with self._key_lock(key, shared=True):
            return self._info(key, self._read_meta(key))

    def delete(self, key: str) -> None:
        meta_path = self._meta_path(key)
        refuse_rewrite(key, "delete")
        with self._key_lock(key):
            meta = self._read_meta_or_none(meta_path)
            meta_path.unlink(missing_ok=True)  # the object is gone from here on
            if meta is not None:
                (self._blobs / meta["blob"]).unlink(missing_ok=True)

    def _read_pointer_unlocked(self, key: str) -> Pointer | None:
        meta = self._read_meta_or_none(self._meta_path(key))
        if meta is None:
            return None
        data = self._read_verified(key, meta, verify=True)
        return Pointer(key=key, value=json.loads(data), token=meta["sha256"])

    def read_pointer(self, key: str) -> Pointer | None:
        validate_key(key)
        with self._key_lock(key, shared=True):
            return self._read_pointer_unlocked(key)

    def write_pointer(self, key: str, value: dict[str, Any], *, expected_token: str | None) -> Pointer:
        data = encode_pointer(value)
        validate_key(key)
        if expected_token is not None:
            refuse_rewrite(key, "pointer update")
        tmp = self._tmp_path()
        _write_synced(tmp, data)
        with self._key_lock(key):
            try:
                current = self._read_pointer_unlocked(key)
            except IntegrityError:
                tmp.unlink(missing_ok=True)
                raise
            current_token = current.token if current else None
            if current_token != expected_token:
                tmp.unlink(missing_ok=True)
                state = "already exists" if expected_token is None else (
                    "was deleted" if current is None else "changed")
                raise PointerConflictError(
                    f"pointer {key!r} in {self.location} {state} since it was read: "
                    "another writer won the race; re-read it and decide again"
                )
            self._commit(key, tmp, sha256_bytes(data), len(data), "application/json", None)
        return Pointer(key=key, value=json.loads(data), token=sha256_bytes(data))
