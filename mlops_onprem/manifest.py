"""The scoring manifest: the one object that says a scoring run is complete, and its lineage.

A scoring run writes its part files under ``predictions/<model>/<version>/<run_id>/`` and the
manifest ``_manifest.json`` there **last**. Readers (monitoring, downstream consumers) only
trust part files listed in a manifest; a run prefix without a manifest is incomplete.

Idempotency
    * Part names derive from the input object's key and ETag (:func:`part_name_for`), so a
      rerun over the same input rewrites the same keys.
    * The run id derives from the model version and the sorted input identities (the batch
      versions the ledger selected, :func:`derive_run_id`) unless the caller pins one: the same
      input and the same model give the same run prefix, a changed input or model a new one.
    * A crash before the manifest leaves parts without a manifest: not complete. The rerun
      (same run id) overwrites those parts in place, then writes the manifest.
    * A complete run is immutable: :func:`write_manifest` creates the manifest only if none
      exists (a retry of the same publication is a no-op; a ``partial`` one may be replaced by
      compare-and-swap, though the flow starts a new run after a partial one), and the flow
      checks for a complete manifest before scoring, so rerunning a complete run is a no-op.
    * Objects under the run prefix that the new manifest does not list (e.g. left behind
      when a pinned run id is reused over different inputs, or by a partition that failed
      this time) are deleted by :func:`prune_stale_parts` right after the manifest is written.

Manifest JSON (monitoring reads exactly these fields)::

    {"model_name", "model_version", "run_id", "created_at" (ISO-8601 UTC),
     "inputs":  [{"key", "etag", "sha256", "rows", "version", "source_key"}],
     "outputs": [{"key", "rows", "sha256", "input_key"}],
     "timings": {...}, "contract_dataset", "contract_version",
     "failed_partitions": [{"key", "etag", "error"}], "status": "complete" | "partial"}

A run with failed partitions still gets a manifest (``status: "partial"``) so its good outputs
and the failures are on record; the flow then ends Failed naming the partitions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from mlops_onprem import keys
from mlops_onprem.clock import iso_utc
from mlops_onprem.errors import MlopsError, ObjectNotFoundError, PointerConflictError
from mlops_onprem.store.base import ObjectStore

MANIFEST_NAME = "_manifest.json"


class RunStatus(StrEnum):
    """A scoring run's status: every partition scored, some failed, or nothing new to score."""

    COMPLETE = "complete"
    PARTIAL = "partial"
    NOTHING_NEW = "nothing-new"


class ShadowStatus(StrEnum):
    """What a scoring run did with the challenger (``status`` of the run summary's ``shadow``)."""

    SCORED = "scored"
    SKIPPED = "skipped"


STATUS_COMPLETE = RunStatus.COMPLETE
STATUS_PARTIAL = RunStatus.PARTIAL


class ScoringRunFailedError(MlopsError):
    """Some input partitions could not be scored (the manifest lists them)."""


@dataclass(frozen=True)
class ManifestInput:
    key: str
    etag: str
    sha256: str | None
    rows: int
    version: str | None = None  # the ledger's batch version scored (None for direct scoring)
    source_key: str | None = None  # where the batch landed (``key`` is its validated copy)


@dataclass(frozen=True)
class ManifestOutput:
    key: str
    rows: int
    sha256: str | None
    input_key: str


@dataclass(frozen=True)
class FailedPartition:
    key: str
    error: str
    etag: str = ""


@dataclass(frozen=True)
class ScoringManifest:
    """One scoring run's record (see the module docstring for the JSON layout)."""

    model_name: str
    model_version: int
    run_id: str
    created_at: str
    inputs: list[ManifestInput]
    outputs: list[ManifestOutput]
    timings: dict[str, float]
    contract_dataset: str
    contract_version: str
    failed_partitions: list[FailedPartition] = field(default_factory=list)

    @property
    def status(self) -> RunStatus:
        return STATUS_PARTIAL if self.failed_partitions else STATUS_COMPLETE

    @property
    def key(self) -> str:
        return keys.scoring_manifest_key(self.model_name, self.model_version, self.run_id)

    @property
    def rows(self) -> int:
        return sum(output.rows for output in self.outputs)

    def to_json(self) -> dict[str, Any]:
        """The manifest as a JSON-serialisable dict (the stored format)."""
        value = asdict(self)
        value["status"] = self.status
        return value

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ScoringManifest:
        """Parse a stored manifest; raises ManifestError naming the missing field."""
        try:
            return cls(
                model_name=value["model_name"],
                model_version=int(value["model_version"]),
                run_id=value["run_id"],
                created_at=value["created_at"],
                inputs=[ManifestInput(**item) for item in value["inputs"]],
                outputs=[ManifestOutput(**item) for item in value["outputs"]],
                timings=dict(value.get("timings", {})),
                contract_dataset=value["contract_dataset"],
                contract_version=value["contract_version"],
                failed_partitions=[FailedPartition(**f) for f in value.get("failed_partitions", [])],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"scoring manifest is malformed: {exc!r}") from exc


class ManifestError(MlopsError):
    """A stored scoring manifest cannot be parsed."""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def part_name_for(input_key: str, input_etag: str) -> str:
    """Deterministic output part name for one input object (same input -> same name)."""
    return f"part-{_digest(input_key, input_etag)[:20]}.parquet"


def derive_run_id(
    model_name: str, model_version: int, inputs: Iterable[tuple[str, str]]
) -> str:
    """Run id from the model version and the input listing's ``(key, etag)`` pairs.

    Order-independent; any added, removed or rewritten input (new ETag) changes it.
    """
    listing = sorted(inputs)
    return "run-" + _digest(model_name, str(int(model_version)), *(f"{k}\t{e}" for k, e in listing))[:16]


def build_manifest(
    *,
    model_name: str,
    model_version: int,
    run_id: str,
    inputs: Sequence[ManifestInput],
    outputs: Sequence[ManifestOutput],
    failed_partitions: Sequence[FailedPartition],
    timings: dict[str, float],
    contract_dataset: str,
    contract_version: str,
    created_at: datetime | None = None,
) -> ScoringManifest:
    """Assemble a manifest (outputs and failures sorted by input key, stable across reruns)."""
    return ScoringManifest(
        model_name=model_name, model_version=int(model_version), run_id=run_id,
        created_at=iso_utc(created_at),
        inputs=sorted(inputs, key=lambda i: i.key),
        outputs=sorted(outputs, key=lambda o: o.input_key),
        timings={name: round(float(value), 6) for name, value in timings.items()},
        contract_dataset=contract_dataset, contract_version=contract_version,
        failed_partitions=sorted(failed_partitions, key=lambda f: f.key),
    )


def prune_stale_parts(store: ObjectStore, manifest: ScoringManifest) -> list[str]:
    """Delete objects under the run prefix that ``manifest`` does not list; return their keys.

    Call after :func:`write_manifest`: the published manifest never lists a deleted part, and
    what is pruned is exactly what the new manifest no longer references.
    """
    prefix = keys.predictions_run_prefix(manifest.model_name, manifest.model_version, manifest.run_id)
    listed = {output.key for output in manifest.outputs} | {manifest.key}
    stale = [info.key for info in store.list(prefix) if info.key not in listed]
    for key in stale:
        store.delete(key)
    return stale


def write_manifest(store: ObjectStore, manifest: ScoringManifest) -> str:
    """Publish the manifest (the run's last object), create-only; return its key.

    A ``partial`` manifest already there (an earlier attempt with failures) is replaced by
    compare-and-swap; a ``complete`` one never is. Raises ManifestError if an output it lists
    is missing from the store (never publish a manifest that points at nothing) or if the run
    is already complete (or another writer published it first).
    """
    for output in manifest.outputs:
        if not store.exists(output.key):
            raise ManifestError(
                f"run {manifest.run_id}: output {output.key!r} (from {output.input_key!r}) is "
                "missing from the store; manifest not written"
            )
    existing = store.read_pointer(manifest.key)
    if existing is not None and existing.value.get("status") != STATUS_PARTIAL:
        if existing.value.get("outputs") == manifest.to_json()["outputs"]:
            return manifest.key  # a retry of this very publication (its reply was lost)
        raise ManifestError(f"run {manifest.run_id} is already complete ({manifest.key}); a "
                            "complete run is immutable: rescore under a new run id")
    try:
        store.write_pointer(manifest.key, manifest.to_json(),
                            expected_token=existing.token if existing else None)
    except PointerConflictError as exc:
        raise ManifestError(f"run {manifest.run_id}: another writer published {manifest.key} "
                            "first; nothing overwritten") from exc
    return manifest.key


def read_manifest(store: ObjectStore, key: str) -> ScoringManifest:
    """Read and parse the manifest at ``key`` (ObjectNotFoundError if the run is incomplete,
    ManifestError naming the key and the problem when it is malformed)."""
    try:
        return ScoringManifest.from_json(store.get_json(key))
    except ManifestError as exc:
        raise ManifestError(f"{key}: {exc}; it was not written by mlops-onprem or was edited") from exc


def find_manifest(store: ObjectStore, model_name: str, model_version: int,
    run_id: str) -> ScoringManifest | None:
    """The manifest of one run, or None when the run never completed."""
    try:
        return read_manifest(store, keys.scoring_manifest_key(model_name, model_version, run_id))
    except ObjectNotFoundError:
        return None


def list_manifest_keys(store: ObjectStore, model_name: str) -> list[str]:
    """Keys of every completed (or partial) scoring run of ``model_name``, sorted."""
    return [
        info.key for info in store.list(keys.predictions_model_prefix(model_name))
        if info.key.rsplit("/", 1)[-1] == MANIFEST_NAME
    ]


def raise_if_failed(manifest: ScoringManifest | dict[str, Any]) -> None:
    """Gate: raise ScoringRunFailedError naming every failed partition, else return None."""
    if isinstance(manifest, dict):
        failed = [FailedPartition(**f) for f in manifest.get("failed_partitions", [])]
        run_id, key = manifest.get("run_id"), manifest.get("manifest_key") or manifest.get("key")
    else:
        failed, run_id, key = manifest.failed_partitions, manifest.run_id, manifest.key
    if failed:
        details = "; ".join(f"{f.key}: {f.error}" for f in failed)
        raise ScoringRunFailedError(
            f"scoring run {run_id}: {len(failed)} partition(s) failed (contract or format "
            f"failures are quarantined; manifest {key} lists them all): {details}"
        )


def dumps(manifest: ScoringManifest) -> str:
    """The manifest as pretty JSON text (CLI and artifacts)."""
    return json.dumps(manifest.to_json(), indent=2, sort_keys=True)


def manifest_from_results(
    *,
    model_name: str,
    model_version: int,
    run_id: str,
    partitions: Sequence[dict[str, Any]],
    results: Sequence[dict[str, Any] | BaseException],
    contract_dataset: str,
    contract_version: str,
    timings: dict[str, float],
) -> ScoringManifest:
    """Build the manifest from the listed partitions and what scoring each one returned.

    ``results[i]`` belongs to ``partitions[i]``: a record from ``scoring.score_object`` or
    the exception that partition failed with (it becomes a ``failed_partitions`` entry).
    """
    if len(partitions) != len(results):
        raise ValueError(f"{len(partitions)} partitions but {len(results)} results")
    inputs, outputs, failed = [], [], []
    for partition, result in zip(partitions, results, strict=True):
        if isinstance(result, BaseException) or not isinstance(result, dict):
            failed.append(FailedPartition(
                key=partition["key"], etag=partition.get("etag", ""),
                error=f"{type(result).__name__}: {result}",
            ))
            continue
        inputs.append(ManifestInput(key=partition["key"], etag=partition["etag"],
                                    sha256=result.get("input_sha256"), rows=int(result["rows"]),
                                    version=partition.get("version"),
                                    source_key=partition.get("source_key")))
        outputs.append(ManifestOutput(key=result["output_key"], rows=int(result["rows"]),
                                      sha256=result.get("output_sha256"), input_key=partition["key"]))
    return build_manifest(
        model_name=model_name, model_version=model_version, run_id=run_id, inputs=inputs,
        outputs=outputs, failed_partitions=failed, timings=timings,
        contract_dataset=contract_dataset, contract_version=contract_version,
    )
