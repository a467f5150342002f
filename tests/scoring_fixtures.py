"""Tiny hand-built ONNX models that follow the project's I/O convention, for scoring tests.

They are linear (logistic / softmax / identity) over the numeric features, so every expected
score can be recomputed with numpy; categorical inputs are declared (as the convention
requires) but unused. They do not depend on the training/export code under test elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from onnx import TensorProto, helper, numpy_helper

from mlops_onprem.contracts import Contract, Task
from mlops_onprem.onnx_io import metadata_for
from mlops_onprem.synthetic import SyntheticSpec, generate_batch, make_contract


def weights_for(contract: Contract, n_out: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = len(contract.numeric_features)
    return (rng.normal(0, 0.3, (k, n_out)).astype(np.float32),
            rng.normal(0, 0.1, (n_out,)).astype(np.float32))


def linear_onnx(contract: Contract, *, model_name: str = "demo", model_version: int = 1,
                seed: int = 3) -> bytes:
    """An ONNX model per the convention: linear in the numeric features (NaN read as 0)."""
    assert contract.label is not None
    task = contract.label.task
    n_classes = len(contract.label.classes or ())
    n_out = n_classes if task == Task.MULTICLASS else 1
    weights, bias = weights_for(contract, n_out, seed)
    inputs, numeric = [], []
    for column in contract.features:
        if column.name in contract.numeric_features:
            inputs.append(helper.make_tensor_value_info(column.name, TensorProto.FLOAT, [None, 1]))
            numeric.append(column.name)
        else:
            inputs.append(helper.make_tensor_value_info(column.name, TensorProto.STRING, [None, 1]))
    nodes = [
        helper.make_node("Concat", numeric, ["x_raw"], axis=1),
        helper.make_node("IsNaN", ["x_raw"], ["x_nan"]),
        helper.make_node("Where", ["x_nan", "zero", "x_raw"], ["x"]),
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["logit"]),
    ]
    init = [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
            numpy_helper.from_array(np.array(1.0, np.float32), "one")]
    if task == Task.REGRESSION:
        nodes.append(helper.make_node("Identity", ["logit"], ["variable"]))
        outputs = [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])]
    else:
        if task == Task.BINARY:
            nodes += [helper.make_node("Sigmoid", ["logit"], ["p1"]),
                      helper.make_node("Sub", ["one", "p1"], ["p0"]),
                      helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1)]
        else:
            nodes.append(helper.make_node("Softmax", ["logit"], ["probabilities"], axis=1))
        nodes.append(helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0))
        outputs = [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                   helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                                 [None, max(n_classes, 2)])]
    graph = helper.make_graph(nodes, "linear", inputs, outputs, init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    meta = metadata_for(contract, model_name=model_name, model_version=model_version,
                        training_data_sha256="0" * 64)
    for key, value in meta.to_props().items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def expected_scores(frame: pd.DataFrame, contract: Contract, seed: int = 3) -> np.ndarray:
    """numpy reference of :func:`linear_onnx`'s ``score`` output (float32 maths)."""
    assert contract.label is not None
    task = contract.label.task
    n_out = len(contract.label.classes or ()) if task == Task.MULTICLASS else 1
    weights, bias = weights_for(contract, n_out, seed)
    x = np.nan_to_num(frame[contract.numeric_features].to_numpy(np.float32), nan=0.0)
    logit = x @ weights + bias
    if task == Task.REGRESSION:
        return logit[:, 0].astype(np.float64)
    if task == Task.BINARY:
        return (1 / (1 + np.exp(-logit[:, 0]))).astype(np.float64)
    e = np.exp(logit - logit.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).max(axis=1).astype(np.float64)


def spec_for(task: Task = Task.BINARY) -> SyntheticSpec:
    return SyntheticSpec(task=task)


def contract_for(task: Task = Task.BINARY) -> Contract:
    return make_contract(spec_for(task))


def write_input(path: Path, n_rows: int, *, task: Task = Task.BINARY, seed: int = 1,
                start_row: int = 0, row_group_rows: int | None = None,
                with_label: bool = False) -> pd.DataFrame:
    """Write a synthetic input partition; returns the frame written."""
    frame = generate_batch(spec_for(task), n_rows, seed=seed, start_row=start_row,
                           with_label=with_label)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path,
                   row_group_size=row_group_rows)
    return frame


_POOLS: list[pa.MemoryPool] = []


def measure_peak_memory(input_path: Path, batch_rows: int, mode: str) -> dict[str, int]:
    """Score ``input_path`` and report peak Arrow-pool and Python-heap bytes of that call alone.

    Arrow allocations go through a fresh proxy pool (its own high-water mark); Python and
    numpy allocations are traced with tracemalloc. ``mode="stream"`` is the production
    path; ``mode="whole"`` reads the file in one go: the control that proves the metric sees
    a read that grows with the input.
    """
    import tracemalloc

    from mlops_onprem.onnx_io import build_feeds, create_session, run_scores
    from mlops_onprem.scoring import score_parquet_file

    contract = contract_for(Task.BINARY)
    session = create_session(linear_onnx(contract))
    previous = pa.default_memory_pool()
    pool = pa.proxy_memory_pool(previous)
    _POOLS.append(pool)  # buffers allocated through it may outlive this call: never free it
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        if mode == "stream":
            score_parquet_file(input_path, Path(input_path).with_suffix(".out"), session, contract,
                               model_name="demo", model_version=1, input_key="in",
                               batch_rows=batch_rows)
        else:
            table = pq.read_table(input_path)
            run_scores(session, build_feeds(table, contract), Task.BINARY)
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(previous)
    return {"arrow_peak": int(pool.max_memory()), "python_peak": int(python_peak),
            "input_bytes": int(Path(input_path).stat().st_size)}
