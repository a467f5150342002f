"""Drafting a contract from a reference file: inferred rules accept the file they came from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_onprem.cli import main
from mlops_onprem.contract_draft import draft_contract, draft_contract_from_file
from mlops_onprem.contracts import Dtype, Task, load_contract
from mlops_onprem.errors import ContractError
from mlops_onprem.synthetic import SyntheticSpec, generate_batch
from mlops_onprem.validation import validate_dataframe


def reference() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["c1", "c2", "c3", "c4"],
        "seen_at": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]),
        "amount": [10.0, 20.0, np.nan, 30.0],
        "visits": [1, 5, 3, 2],
        "segment": pd.array(["gold", "silver", "gold", "bronze"], dtype="str"),
        "target": [0, 1, 1, 0],
    })


def test_draft_infers_key_timestamp_label_dtypes_nullability_and_categories():
    draft = draft_contract(reference(), dataset="shop")
    contract = draft.contract
    assert (contract.row_key, contract.timestamp) == ("customer_id", "seen_at")
    assert contract.label is not None and contract.label.name == "target"
    assert contract.label.task == Task.BINARY and contract.label.classes == (0, 1)
    assert contract.feature_names == ["amount", "visits", "segment"]
    amount = contract.feature("amount")
    assert amount.dtype == Dtype.FLOAT and amount.nullable
    assert amount.min < 10.0 and amount.max > 30.0  # observed range widened by the margin
    assert contract.feature("visits").dtype == Dtype.INT and not contract.feature("visits").nullable
    assert contract.feature("segment").categories == ("bronze", "gold", "silver")
    assert any("row_key guessed" in note for note in draft.notes)


def test_drafted_contract_accepts_its_own_reference_data():
    batch = generate_batch(SyntheticSpec(), 300, seed=5)
    draft = draft_contract(batch, dataset="demo", label="label")
    assert validate_dataframe(batch, draft.contract, stage="training").success


def test_draft_without_any_unique_column_asks_for_the_key():
    df = pd.DataFrame({"a": [1.0, 1.0], "b": ["x", "x"]})
    with pytest.raises(ContractError, match="row key"):
        draft_contract(df, dataset="dup")


def test_cli_writes_a_draft_that_loads_back(tmp_path, capsys):
    source = tmp_path / "shop_reference.parquet"
    reference().to_parquet(source, index=False)
    out = tmp_path / "shop.yaml"
    assert main(["contract", "draft", "--from", str(source), "--dataset", "shop", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# DRAFT")
    assert load_contract(out).dataset == "shop"
    # refuses to overwrite a reviewed contract by accident
    assert main(["contract", "draft", "--from", str(source), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_cli_prints_to_stdout_and_names_dataset_after_file(tmp_path, capsys):
    source = tmp_path / "ref.csv"
    reference().to_csv(source, index=False)
    assert main(["contract", "draft", "--from", str(source)]) == 0
    assert "dataset: ref" in capsys.readouterr().out


def test_draft_from_non_utf8_csv_fails_clearly(tmp_path):
    source = tmp_path / "bad.csv"
    source.write_bytes("id,name\n1,caf\u00e9\n".encode("latin-1"))
    with pytest.raises(Exception, match="not UTF-8"):
        draft_contract_from_file(source)


def test_draft_never_proposes_a_feature_type_training_refuses():
    from mlops_onprem.contract_draft import FEATURE_DTYPES
    from mlops_onprem.onnx_io import FeatureMismatchError, input_kind

    for dtype in FEATURE_DTYPES:
        input_kind(dtype)  # what training and export feed a model: raises for a refused type
    with pytest.raises(FeatureMismatchError):
        input_kind(Dtype.TIMESTAMP)
    df = reference().assign(signed_up=pd.to_datetime(["2025-01-01"] * 4))  # a second date-time
    draft = draft_contract(df, dataset="shop")
    assert draft.contract.timestamp == "seen_at" and "signed_up" not in draft.contract.feature_names
    assert {c.dtype for c in draft.contract.features} <= FEATURE_DTYPES
    assert draft.contract.extra_columns == "ignore"  # the left-out column may stay in batches
    assert any("'signed_up': date-time column left out" in note for note in draft.notes)


def test_a_drafted_contract_with_an_extra_date_time_column_trains_and_accepts_its_data():
    from mlops_onprem.model_spec import load_model_spec
    from mlops_onprem.training import train_model

    batch = generate_batch(SyntheticSpec(), 300, seed=5)
    batch["signed_up"] = batch["event_time"] - pd.Timedelta(days=30)
    contract = draft_contract(batch, dataset="demo", label="label").contract
    assert validate_dataframe(batch, contract, stage="training").success
    trained = train_model(batch, contract, load_model_spec("logistic"))
    assert trained.train_rows > 0
