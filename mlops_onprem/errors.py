"""Exception families. Every message names what was wrong and where (object key, column, endpoint).

Modules define their specific errors as subclasses of these families.
"""


class MlopsError(Exception):
    """Base of every error raised by mlops-onprem."""


# --- object store -------------------------------------------------------------------------
class StoreError(MlopsError):
    """Something went wrong talking to the object store."""


class InvalidKeyError(StoreError, ValueError):
    """An object key is malformed (traversal, absolute path, empty segment, control character)."""


class ObjectNotFoundError(StoreError, KeyError):
    """The object does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "object not found"


class StoreUnavailableError(StoreError):
    """The store endpoint could not be reached after bounded retries."""


class StoreAuthError(StoreError):
    """The store refused the credentials or the operation (wrong key, access denied)."""


class BucketMissingError(StoreError):
    """The bucket does not exist and creating it is not allowed."""


class IntegrityError(StoreError):
    """Stored bytes do not match their recorded SHA-256."""


class PointerConflictError(StoreError):
    """A compare-and-swap pointer write lost the race: the pointer changed since it was read."""


class ImmutableObjectError(StoreError):
    """A write or delete aimed at an append-only record (registry history, ledger events)."""


class StoreCapabilityError(StoreError):
    """The server lacks a capability we rely on (e.g. conditional writes)."""


# --- data contracts / validation ----------------------------------------------------------
class ContractError(MlopsError):
    """A data contract file is invalid or cannot be loaded."""


class DataValidationError(MlopsError):
    """A data batch does not satisfy its contract."""


class BatchFormatError(DataValidationError):
    """The batch's bytes cannot be read as the format it claims."""


class NotParquetError(BatchFormatError):
    """Bytes named, stored or sniffed as Parquet are not Parquet (another format, truncated,
    corrupt footer or pages)."""


# --- models -------------------------------------------------------------------------------
class ModelError(MlopsError):
    """Training, export, registry or loading of a model failed."""


class ModelIntegrityError(ModelError):
    """Model bytes do not hash to the SHA-256 recorded in the model card or resolved by the
    caller (a registry read, or a scoring worker loading the model)."""


# --- monitoring ---------------------------------------------------------------------------
class MonitoringError(MlopsError):
    """Monitoring could not compute or report drift."""
