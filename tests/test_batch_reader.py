"""Reading landed batches: good Parquet/CSV in, clear errors for truncated or mis-encoded files."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from mlops_onprem.batch_reader import (
    BatchFormatError,
    CsvEncodingError,
    NotParquetError,
    TruncatedBatchError,
    UnsupportedFormatError,
    read_batch,
)
from mlops_onprem.contracts import parse_contract
from mlops_onprem.errors import DataValidationError

CONTRACT = parse_contract("""
dataset: tiny
version: "1.0.0"
owner: tests
row_key: id
timestamp: ts
features:
  - {name: x, dtype: float64}
  - {name: code, dtype: category, categories: ["01", "02"]}
""")


def parquet_bytes(df: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    df.to_parquet(sink, index=False)
    return sink.getvalue()


FRAME = pd.DataFrame({"id": [1, 2], "x": [0.5, 1.5]})


def test_parquet_bytes_round_trip():
    df = read_batch(parquet_bytes(FRAME), source="incoming/tiny/b1.parquet")
    pd.testing.assert_frame_equal(df, FRAME)


def test_truncated_parquet_is_named_as_truncated():
    data = parquet_bytes(FRAME)
    with pytest.raises(TruncatedBatchError, match=r"incoming/tiny/b1.parquet is truncated"):
        read_batch(data[: len(data) // 2], source="incoming/tiny/b1.parquet")


def test_empty_file_is_truncated():
    with pytest.raises(TruncatedBatchError, match="empty"):
        read_batch(b"", source="b1.parquet")
    with pytest.raises(TruncatedBatchError, match="empty"):
        read_batch(b"\n", source="b1.csv")


def test_csv_bytes_under_a_parquet_name_are_not_parquet():
    with pytest.raises(NotParquetError, match="does not start with 'PAR1'") as info:
        read_batch(b"id,x\n1,0.5\n", source="incoming/tiny/b1.parquet")
    assert isinstance(info.value, DataValidationError)


def test_corrupt_parquet_body_is_reported():
    data = parquet_bytes(FRAME)
    corrupt = data[:4] + b"\x00" * (len(data) - 8) + data[-4:]
    with pytest.raises(NotParquetError, match="not a readable Parquet"):
        read_batch(corrupt, source="b1.parquet")


def test_non_utf8_csv_names_offset_and_line():
    data = "id,x,code\n1,0.5,01\n2,1.5,caf\u00e9\n".encode("latin-1")
    with pytest.raises(CsvEncodingError, match=r"not UTF-8.*line 3"):
        read_batch(data, source="b1.csv")


def test_csv_keeps_category_codes_as_strings_and_parses_timestamps():
    data = "\ufeffid,ts,x,code\n1,2026-01-01T00:00:00,0.5,01\n2,2026-01-01T00:00:01,1.5,02\n"
    df = read_batch(data.encode("utf-8"), source="b1.csv", contract=CONTRACT)
    assert list(df["code"]) == ["01", "02"]
    assert pd.api.types.is_datetime64_any_dtype(df["ts"])
    assert list(df.columns) == ["id", "ts", "x", "code"]  # BOM stripped from the first name


def test_unparsable_timestamp_names_the_column():
    data = b"id,ts,x,code\n1,yesterday,0.5,01\n"
    with pytest.raises(BatchFormatError, match="'ts'"):
        read_batch(data, source="b1.csv", contract=CONTRACT)


def test_unknown_format_is_refused():
    with pytest.raises(UnsupportedFormatError, match="b1.json"):
        read_batch(b'{"a": 1}', source="b1.json")


def test_parquet_is_sniffed_when_the_name_has_no_suffix():
    df = read_batch(parquet_bytes(FRAME), source="incoming/tiny/b1")
    assert len(df) == 2
