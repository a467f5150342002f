"""Read a landed batch (Parquet or CSV bytes) into a DataFrame, with errors that say what is wrong.

A batch that cannot be read is itself a validation failure: the gate quarantines it like any
other bad batch, so every error here is a :class:`~mlops_onprem.errors.DataValidationError`.
"""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_onprem.contracts import Contract, Dtype
from mlops_onprem.errors import BatchFormatError, NotParquetError
from mlops_onprem.store.parquet import PARQUET_READ_ERRORS

PARQUET_MAGIC = b"PAR1"
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)


class TruncatedBatchError(BatchFormatError):
    """The file is empty or ends early (e.g. an interrupted upload)."""


class CsvEncodingError(BatchFormatError):
    """A CSV batch is not valid UTF-8."""


class UnsupportedFormatError(BatchFormatError):
    """Neither Parquet nor CSV."""


def batch_format(source: str, data: bytes) -> str:
    """Which reader applies: "parquet" or "csv", from the name's suffix, else the magic bytes.

    Takes the object key or file name and the bytes. Returns "parquet" or "csv".
    Raises :class:`UnsupportedFormatError` naming ``source`` when neither fits.
    """
    lowered = source.lower()
    if lowered.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lowered.endswith(CSV_SUFFIXES):
        return "csv"
    if data.startswith(PARQUET_MAGIC):
        return "parquet"
    raise UnsupportedFormatError(
        f"batch {source}: unsupported format (name must end in .parquet or .csv, "
        f"and the bytes do not start with the Parquet magic 'PAR1')"
    )


def read_parquet_batch(data: bytes, *, source: str) -> pd.DataFrame:
    """Parquet bytes to a DataFrame.

    Raises :class:`TruncatedBatchError` (empty, or the 'PAR1' footer is missing),
    :class:`NotParquetError` (no 'PAR1' header, or pyarrow cannot parse it), naming ``source``.
    """
    if not data:
        raise TruncatedBatchError(f"batch {source} is empty (0 bytes)")
    if not data.startswith(PARQUET_MAGIC):
        raise NotParquetError(
            f"batch {source} is not a Parquet file: it does not start with 'PAR1' "
            f"(first bytes {data[:16]!r})"
        )
    if len(data) < 12 or not data.endswith(PARQUET_MAGIC):
        raise TruncatedBatchError(
            f"batch {source} is truncated: a Parquet file ends with 'PAR1' and this one "
            f"({len(data)} bytes) does not (interrupted upload?)"
        )
    try:
        table = pq.read_table(pa.BufferReader(data))
    except PARQUET_READ_ERRORS as exc:
        raise NotParquetError(f"batch {source} is not a readable Parquet file: {exc}") from exc
    return table.to_pandas()


def _decode_utf8(data: bytes, *, source: str) -> str:
    try:
        return data.decode("utf-8-sig")  # a leading BOM is harmless; strip it
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CsvEncodingError(
            f"batch {source} is not UTF-8: byte {data[exc.start:exc.start + 1]!r} at offset "
            f"{exc.start} (line {line}) is invalid; re-export the file as UTF-8"
        ) from exc


def read_csv_batch(data: bytes, *, source: str, contract: Contract | None = None) -> pd.DataFrame:
    """CSV bytes (UTF-8, header row) to a DataFrame.

    With a contract, categorical/string columns stay strings (so "01" is not read as 1) and the
    timestamp column is parsed; other dtypes are inferred and judged later by the contract.
    Raises :class:`TruncatedBatchError` (empty), :class:`CsvEncodingError` (not UTF-8) or
    :class:`BatchFormatError` (unparsable CSV or timestamp), naming ``source`` and the column.
    """
    if not data.strip():
        raise TruncatedBatchError(f"batch {source} is empty (no header row)")
    text = _decode_utf8(data, source=source)
    string_columns: dict[str, str] = {}
    if contract is not None:
        string_columns = {
            c.name: "str" for c in contract.features if c.dtype in (Dtype.CATEGORY, Dtype.STRING)
        }
    try:
        df = pd.read_csv(io.StringIO(text), dtype=string_columns or None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise BatchFormatError(f"batch {source} is not parsable CSV: {exc}") from exc
    if contract is not None and contract.timestamp and contract.timestamp in df.columns:
        try:
            df[contract.timestamp] = pd.to_datetime(df[contract.timestamp], format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise BatchFormatError(
                f"batch {source}: column {contract.timestamp!r} has values that are not ISO 8601 "
                f"timestamps: {exc}"
            ) from exc
    return df


def read_batch(data: bytes, *, source: str, contract: Contract | None = None) -> pd.DataFrame:
    """Read a landed batch of Parquet or CSV bytes.

    Takes the bytes, ``source`` (object key or file name: its suffix picks the format, and it
    appears in every message) and optionally the contract (used for CSV typing).
    Returns the DataFrame. Raises a :class:`BatchFormatError` subclass when unreadable.
    """
    if batch_format(source, data) == "parquet":
        return read_parquet_batch(data, source=source)
    return read_csv_batch(data, source=source, contract=contract)
