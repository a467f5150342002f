"""Errors say what and where: the key, the column, the model (issue 16)."""

from __future__ import annotations

import pandas as pd
import pytest

from mlops_onprem.manifest import ManifestError, read_manifest
from mlops_onprem.onnx_io import CorruptModelError, create_session, read_metadata
from mlops_onprem.store.parquet import (
    MissingColumnsError,
    NotParquetError,
    get_dataframe,
    put_dataframe,
)


def test_a_missing_column_is_named_with_the_object_not_called_unreadable(local_store):
    put_dataframe(local_store, "validated/demo/v1.parquet", pd.DataFrame({"row_id": [1], "a": [0.5]}))
    with pytest.raises(MissingColumnsError, match=r"validated/demo/v1.parquet.*\['b'\]"):
        get_dataframe(local_store, "validated/demo/v1.parquet", columns=["row_id", "b"])
    local_store.put_bytes("validated/demo/v2.parquet", b"not parquet at all")
    with pytest.raises(NotParquetError, match="validated/demo/v2.parquet"):
        get_dataframe(local_store, "validated/demo/v2.parquet", columns=["row_id"])


def test_a_malformed_manifest_names_its_key(local_store):
    key = "predictions/demo/1/run-x/_manifest.json"
    local_store.put_json(key, {"run_id": "run-x"})
    with pytest.raises(ManifestError, match="predictions/demo/1/run-x/_manifest.json"):
        read_manifest(local_store, key)


def test_a_model_without_the_kits_metadata_is_named():
    from tests.fixtures.scoring import contract_for, linear_onnx

    plain = linear_onnx(contract_for())
    import onnx

    model = onnx.load_from_string(plain)
    del model.metadata_props[:]
    session = create_session(model.SerializeToString(), name="test")
    with pytest.raises(CorruptModelError, match=r"demo v7 \(models/demo/7/model.onnx\) lacks"):
        read_metadata(session, "demo v7 (models/demo/7/model.onnx)")
