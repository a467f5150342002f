"""The object store: one interface, a local-directory backend and a MinIO/S3 backend."""

from __future__ import annotations

from mlops_onprem.settings import Settings, get_settings
from mlops_onprem.store.base import ObjectInfo, ObjectStore, Pointer


def open_store(settings: Settings | None = None) -> ObjectStore:
    """The store the settings describe: MinIO/S3 when ``s3_endpoint`` is set, else a local directory."""
    settings = settings or get_settings()
    if settings.uses_s3:
        from mlops_onprem.store.s3 import S3Store

        return S3Store(settings)
    from mlops_onprem.store.local import LocalStore

    return LocalStore(settings.local_store_dir)


__all__ = ["ObjectInfo", "ObjectStore", "Pointer", "open_store"]
