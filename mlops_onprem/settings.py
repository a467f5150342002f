"""The one typed settings object. Every knob comes from here (env prefix ``MLOPS_``, optional ``.env``).

Credentials are ``SecretStr``: their values never appear in reprs, logs, artifacts or errors.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration of mlops-onprem.

    With no ``s3_endpoint`` the object store is a local directory under ``data_dir``
    (the embedded default); with one, it is MinIO/S3 through the ``minio`` SDK.
    """

    model_config = SettingsConfigDict(
        env_prefix="MLOPS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- storage -------------------------------------------------------------------------
    data_dir: Path = Field(
        default=Path(".mlops-data"),
        description="Root of the embedded local object store and of scratch space.",
    )
    s3_endpoint: str | None = Field(
        default=None, description="MinIO/S3 endpoint as host:port; unset = local directory store."
    )
    s3_access_key: SecretStr | None = Field(default=None, description="S3 access key.")
    s3_secret_key: SecretStr | None = Field(default=None, description="S3 secret key.")
    s3_secure: bool = Field(default=True, description="Use TLS (https) for the S3 endpoint.")
    s3_cert_check: bool = Field(default=True, description="Verify the endpoint's TLS certificate.")
    s3_ca_file: Path | None = Field(
        default=None, description="CA bundle for a MinIO certificate from an internal CA."
    )
    s3_region: str | None = Field(default=None, description="S3 region (MinIO: usually unset).")
    bucket: str = Field(default="mlops", description="Bucket holding every object of the kit.")
    s3_create_bucket: bool = Field(
        default=True, description="Create the bucket on first use when it is missing."
    )
    s3_connect_timeout_s: float = Field(default=5.0, gt=0, description="TCP connect timeout.")
    s3_read_timeout_s: float = Field(default=60.0, gt=0, description="Socket read timeout.")
    s3_max_retries: int = Field(
        default=3, ge=0, le=10, description="Retries for transient store errors before failing."
    )
    s3_call_timeout_s: float = Field(
        default=60.0, gt=0, le=3600,
        description="Time budget of one store call: connect, send, wait for the answer and "
        "retries together; a hung endpoint fails after this long.",
    )
    s3_part_size_mib: int = Field(
        default=16, ge=5, le=512, description="Multipart upload part size for large objects."
    )

    # --- monitoring / alerts ---------------------------------------------------------------
    alert_urls: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Apprise URLs to send alerts to (comma separated in the environment).",
    )
    retrain_cooldown_minutes: float = Field(
        default=60.0, ge=0, description="At most one drift-triggered retrain per this window."
    )

    # --- data contracts and model specs -----------------------------------------------------
    contracts_dir: Path | None = Field(
        default=None,
        description="Folder of the company's own data contracts (DATASET.yaml), looked up "
        "before the ones shipped with the package; unset = only the shipped ones.",
    )
    model_specs_dir: Path | None = Field(
        default=None,
        description="Folder of the company's own model specs (NAME.yaml), looked up before "
        "the ones shipped with the package; unset = only the shipped ones.",
    )

    # --- training --------------------------------------------------------------------------
    training_concurrency_limit_name: str = Field(
        default="mlops-training",
        description="Prefect global concurrency limit every training holds a slot of.",
    )
    training_concurrency_limit: int = Field(
        default=1, ge=1,
        description="Trainings at once; used only when creating the limit (the UI's value wins).",
    )
    training_slot_timeout_minutes: float = Field(
        default=120.0, gt=0, description="How long a training waits for a slot before failing."
    )

    @field_validator("alert_urls", mode="before")
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("contracts_dir", "model_specs_dir", mode="before")
    @classmethod
    def _empty_folder_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("s3_endpoint")
    @classmethod
    def _endpoint_is_host_port(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if "://" in value or "/" in value:
            raise ValueError(
                "MLOPS_S3_ENDPOINT must be host:port without a scheme or path "
                "(TLS is chosen with MLOPS_S3_SECURE)"
            )
        return value

    @property
    def uses_s3(self) -> bool:
        return self.s3_endpoint is not None

    @property
    def local_store_dir(self) -> Path:
        """Root of the embedded local-directory object store."""
        return self.data_dir / "store"

    @property
    def scratch_dir(self) -> Path:
        return self.data_dir / "scratch"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment (and ``.env``)."""
    return Settings()
