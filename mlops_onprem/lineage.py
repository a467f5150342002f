"""Lineage: which inputs, contract and model produced a prediction, from facts already stored.

    row key | prediction part key | model version
      -> input batch version (landed keys, content hash) -> contract version -> validation result
      -> model version (card) -> its training batch versions (landed keys, content hashes)
      -> scoring run (manifest) -> output part

Everything comes from the batch ledger (``ledger/<ds>/index.json``), the scoring manifests and
the model cards; nothing is recomputed. A row key is found through the ledger's per-version
row-key ranges, then confirmed in the validated copy (one column read per candidate version).
"""

from __future__ import annotations

from typing import Any

from mlops_onprem import keys, ledger, registry
from mlops_onprem.errors import MlopsError, ObjectNotFoundError
from mlops_onprem.manifest import read_manifest
from mlops_onprem.store.base import ObjectStore
from mlops_onprem.store.parquet import get_dataframe


class LineageError(MlopsError):
    """The reference cannot be traced (unknown key, version or row)."""


def _batch(view: ledger.VersionView) -> dict[str, Any]:
    validation = view.validation or {}
    return {"version": view.id, "stage": view.stage, "landed_keys": list(view.state["keys"]),
            "content_sha256": view.state["sha256"], "data_date": view.data_date,
            "status": view.status, "contract_version": validation.get("contract_version"),
            "validation_result": validation.get("result_key"),
            "validated_key": validation.get("validated_key"),
            "quarantine_key": validation.get("quarantine_key")}


def model_lineage(store: ObjectStore, model_name: str, version: int) -> dict[str, Any]:
    """A model version: its card, contract, training batch versions and scoring runs."""
    mv = registry.get_version(store, model_name, version)
    card = mv.card
    data = card.get("data", {})
    dataset = data.get("dataset") or card.get("contract", {}).get("dataset")
    index = ledger.read_index(store, dataset) if dataset else ledger.empty_index("?")
    training = []
    for item in data.get("batch_versions") or []:
        state = index["versions"].get(item["version"])
        training.append(_batch(ledger.VersionView(state, True)) if state else item)
    ref = f"{model_name}@{version}"
    scored = [{"batch_version": v.id, **v.scored_by(ref)}
              for v in ledger.versions(index, stage=ledger.STAGE_SCORING) if v.scored_by(ref)]
    return {"model": {"name": model_name, "version": version,
        "card": keys.model_card_key(model_name, version),
                      "onnx_sha256": card.get("files", {}).get("onnx", {}).get("sha256"),
                      "spec": card.get("spec", {}).get("name"), "created_at": card.get("created_at"),
                      "code_version": card.get("lineage", {}).get("code_version")},
            "contract": card.get("contract", {}), "dataset": dataset,
            "training_data_sha256": data.get("sha256"), "training_batches": training,
            "scoring_runs": scored}


def _parse_part_key(key: str) -> tuple[str, int, str]:
    parts = key.split("/")
    if len(parts) != 5 or parts[0] != "predictions" or not parts[2].isdigit():
        raise LineageError(f"{key!r} is not a prediction part key "
                           "(predictions/<model>/<version>/<run>/part-*.parquet)")
    return parts[1], int(parts[2]), parts[3]


def prediction_lineage(store: ObjectStore, part_key: str) -> dict[str, Any]:
    """A prediction part: its run's manifest, the batch version it scored, the model."""
    model_name, version, run_id = _parse_part_key(part_key)
    manifest_key = keys.scoring_manifest_key(model_name, version, run_id)
    try:
        manifest = read_manifest(store, manifest_key)
    except ObjectNotFoundError as exc:
        raise LineageError(f"{part_key!r} belongs to run {run_id}, which has no manifest "
                           f"({manifest_key}): the run never completed") from exc
    output = next((o for o in manifest.outputs if o.key == part_key), None)
    if output is None:
        raise LineageError(f"manifest {manifest_key} does not list {part_key!r}")
    item = next(i for i in manifest.inputs if i.key == output.input_key)
    model = model_lineage(store, model_name, version)
    batch = None
    if item.version and model["dataset"]:
        state = ledger.read_index(store, model["dataset"])["versions"].get(item.version)
        batch = _batch(ledger.VersionView(state, True)) if state else None
    return {"prediction": {"part": part_key, "sha256": output.sha256, "rows": output.rows},
            "scoring_run": {"run_id": run_id, "manifest": manifest_key,
                            "created_at": manifest.created_at, "status": manifest.status,
                            "contract_version": manifest.contract_version},
            "input_batch": batch or {"validated_key": item.key, "sha256": item.sha256,
                                     "landed_key": item.source_key},
            **model}


def row_lineage(store: ObjectStore, dataset: str, model_name: str, row_key: Any) -> dict[str, Any]:
    """A row key: the scoring batch versions holding it and, for each model version that
    scored them, the prediction part (latest run) and the model's lineage."""
    contract = registry.load_contract(store, registry.resolve(store, model_name))
    index = ledger.read_index(store, dataset)
    found = []
    for view in ledger.versions(index, stage=ledger.STAGE_SCORING):
        validation = view.validation or {}
        low, high = validation.get("row_key_min"), validation.get("row_key_max")
        key = str(row_key) if isinstance(low, str) else row_key  # "00123" stays a string key
        try:
            if low is None or not (low <= key <= high):
                continue
        except TypeError:
            continue
        frame = get_dataframe(store, validation["validated_key"], columns=[contract.row_key])
        if not frame[contract.row_key].isin([key]).any():
            continue
        for ref, scored in view.state["scored"].items():
            name, version = ref.rsplit("@", 1)
            if name == model_name:
                found.append(prediction_lineage(store, scored["output_key"]))
        if not view.state["scored"]:
            found.append({"input_batch": _batch(view), "scoring_run": None})
    if not found:
        raise LineageError(f"row {row_key!r} is in no validated scoring batch of {dataset!r} "
                           f"(ledger {keys.ledger_index_key(dataset)})")
    return {"row_key": row_key, "dataset": dataset, "predictions": found}


def render_text(chain: dict[str, Any], indent: int = 0) -> str:
    """The lineage as indented ``name: value`` lines (the CLI's default output)."""
    lines = []
    pad = "  " * indent
    for name, value in chain.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{name}:")
            lines.append(render_text(value, indent + 1))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{pad}{name}:")
            for item in value:
                lines.append(f"{pad}  -")
                lines.append(render_text(item, indent + 2))
        else:
            lines.append(f"{pad}{name}: {value}")
    return "\n".join(line for line in lines if line)
