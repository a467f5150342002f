"""The object store interface. Two backends implement it: a local directory and MinIO/S3."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

SHA256_META = "sha256"  # user-metadata name that carries every object's SHA-256
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows about one object."""

    key: str
    size: int
    etag: str
    sha256: str | None = None
    last_modified: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Pointer:
    """A small JSON document with the version token a compare-and-swap must quote."""

    key: str
    value: dict[str, Any]
    token: str


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def encode_pointer(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


class ObjectStore(ABC):
    """Bytes, files and pointers under validated keys.

    Every object carries its SHA-256 (``ObjectInfo.sha256``); ``get_bytes`` verifies it.
    Implementations raise the :mod:`mlops_onprem.errors` store family, naming key and location.
    """

    #: human-readable location for messages and reports (never contains credentials)
    location: str

    @abstractmethod
    def put_bytes(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        """Write ``data`` at ``key`` atomically (readers see the old or the new object)."""

    @abstractmethod
    def get_bytes(self, key: str, *, verify: bool = True) -> bytes:
        """Read the whole object; with ``verify`` check its SHA-256 (raises IntegrityError)."""

    @abstractmethod
    def put_file(
        self, key: str, path: Path, *, content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        """Stream a local file to ``key`` (multipart for large files on S3)."""

    @abstractmethod
    def get_file(self, key: str, path: Path, *, verify: bool = True) -> ObjectInfo:
        """Stream ``key`` into the local file ``path`` (written atomically)."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, recursively, sorted by key."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size, etag, SHA-256 and metadata of ``key`` (raises ObjectNotFoundError)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    @abstractmethod
    def read_pointer(self, key: str) -> Pointer | None:
        """The pointer at ``key`` with its CAS token, or None if it does not exist."""

    @abstractmethod
    def write_pointer(self, key: str, value: dict[str, Any], *, expected_token: str | None) -> Pointer:
        """Compare-and-swap: write ``value`` only if the pointer still has ``expected_token``.

        ``expected_token=None`` means "create; the key must not exist yet".
        Raises :class:`PointerConflictError` when another writer got there first, and only
        then: a write that committed is reported as won even if its reply was lost.
        """

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        from mlops_onprem.errors import ObjectNotFoundError

        try:
            self.stat(key)
        except ObjectNotFoundError:
            return False
        return True

    def put_json(self, key: str, value: Any) -> ObjectInfo:
        """Write a JSON document (sorted keys, UTF-8)."""
        data = json.dumps(value, sort_keys=True, indent=2, default=str).encode("utf-8")
        return self.put_bytes(key, data, content_type="application/json")

    def get_json(self, key: str) -> Any:
        """Read a JSON document written by :meth:`put_json`."""
        return json.loads(self.get_bytes(key).decode("utf-8"))

    def copy(self, source_key: str, target_key: str) -> ObjectInfo:
        """Copy an object (through this process; the source stays untouched)."""
        info = self.stat(source_key)
        return self.put_bytes(
            target_key, self.get_bytes(source_key),
            content_type=info.metadata.get("content-type", "application/octet-stream"),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location})"
