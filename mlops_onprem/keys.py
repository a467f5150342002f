"""Object keys: validated here and built here, nowhere else (no f-string keys in tasks).

Layout of the bucket::

    incoming/<dataset>/<batch>.parquet                 raw labelled batches as they land (training)
    inbox/<dataset>/<batch>.parquet                    unlabelled batches waiting to be scored
    validated/<dataset>/<version>.parquet              training batch versions that passed their contract
    validated-scoring/<dataset>/<version>.parquet      scoring batch versions that passed (stage "scoring")
    quarantine/<dataset>/<version>/<original name>     rejected batches, byte-identical copy
    quarantine/<dataset>/<version>/validation.json     ... with the result that rejected them
    validation/<dataset>/<version>.json                full validation result of every training batch
    validation-scoring/<dataset>/<version>.json        ... and of every scoring-stage batch
    labels/<dataset>/<batch>.parquet                   delayed ground truth, joined on the row key
    models/<name>/<version>/...                        immutable model versions
    models/<name>/aliases/<alias>.json                 CAS pointer (champion, challenger)
    models/<name>/history/<event>.json                 append-only promotion history
    predictions/<model>/<version>/<run>/...            scoring outputs
    predictions/<model>/<version>/<run>/_manifest.json written last: the run is complete
    shadow/<model>/<version>/<run>/...                 a shadow challenger's predictions of a
                                                       champion run (never delivered);
                                                       ``_shadow.json`` written last
    monitoring/<model>/<run>/...                       drift reports (json, md, png)
    models/<name>/staging/<run>/...                    a candidate before it is registered
    control/retrain/<model>.json                       retrain debounce pointer (CAS)
    ledger/<dataset>/index.json                        batch ledger: compacted state (CAS)
    ledger/<dataset>/events/<version>/<event>.json     ... and its immutable events
    control/cas-probe/..., control/doctor/...          short-lived capability and speed probes
"""

from __future__ import annotations

import re

from mlops_onprem.errors import ImmutableObjectError, InvalidKeyError

_MAX_KEY_BYTES = 1024
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# names we build keys from (datasets, models, aliases, run ids, batch ids)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,127}$")


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise :class:`InvalidKeyError`.

    Rejects: empty keys, absolute paths, backslashes, ``.`` / ``..`` / empty segments,
    control characters, and keys longer than 1024 bytes.
    """
    if not isinstance(key, str) or key == "":
        raise InvalidKeyError(f"object key must be a non-empty string, got {key!r}")
    if len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        raise InvalidKeyError(f"object key longer than {_MAX_KEY_BYTES} bytes: {key[:80]!r}...")
    if _CONTROL_CHARS.search(key):
        raise InvalidKeyError(f"object key contains a control character: {key!r}")
    if key.startswith("/") or re.match(r"^[A-Za-z]:", key):
        raise InvalidKeyError(f"object key must be relative, got absolute path {key!r}")
    if "\\" in key:
        raise InvalidKeyError(f"object key must use '/' separators, got backslash in {key!r}")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKeyError(
                f"object key has an empty, '.' or '..' segment: {key!r}"
            )
    return key


# append-only records: each is written once by a create-only pointer write (``write_pointer`` with
# ``expected_token=None``), then never rewritten or deleted, whichever store method is asked to
_APPEND_ONLY = (
    (re.compile(r"^models/[^/]+/history/[^/]+$"), "registry history event"),
    (re.compile(r"^ledger/[^/]+/events/[^/]+/[^/]+$"), "ledger event"),
)


def append_only_kind(key: str) -> str | None:
    """What append-only record ``key`` is (``"registry history event"``, ``"ledger event"``), else None."""
    for pattern, kind in _APPEND_ONLY:
        if pattern.match(key):
            return kind
    return None


def refuse_rewrite(key: str, operation: str) -> None:
    """Raise :class:`ImmutableObjectError` when ``operation`` would change an append-only record.

    Stores call this on every write path (put, copy target, delete, pointer update); the one way to
    write such a key is the create-only pointer write, which fails if the key exists.
    """
    kind = append_only_kind(key)
    if kind is not None:
        raise ImmutableObjectError(
            f"{operation} refused on {key}: it is a {kind}, written once (create-only) and never "
            "rewritten or deleted")


def validate_prefix(prefix: str) -> str:
    """Validate a listing prefix: like a key, but may be empty or end with '/'."""
    if prefix == "":
        return prefix
    validate_key(prefix.rstrip("/") or "x")
    return prefix


def validate_name(name: str, what: str = "name") -> str:
    """Validate one key segment built from a user-supplied name (dataset, model, batch id...)."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise InvalidKeyError(
            f"invalid {what} {name!r}: use letters, digits, '.', '_', '-', '=' "
            "(start with a letter or digit, at most 128 characters)"
        )
    return name


def join(*segments: str) -> str:
    """Join key segments with '/' and validate the result."""
    return validate_key("/".join(segments))


# --- data batches -------------------------------------------------------------------------
def incoming_prefix(dataset: str) -> str:
    return join("incoming", validate_name(dataset, "dataset")) + "/"


def incoming_key(dataset: str, batch_id: str, suffix: str = ".parquet") -> str:
    return join("incoming", validate_name(dataset, "dataset"), validate_name(batch_id + suffix, "batch id"))


def scoring_inbox_prefix(dataset: str) -> str:
    """Where unlabelled batches land for scoring (the scoring flow checks each partition)."""
    return join("inbox", validate_name(dataset, "dataset")) + "/"


def scoring_inbox_key(dataset: str, batch_id: str) -> str:
    return join("inbox", validate_name(dataset, "dataset"), validate_name(batch_id + ".parquet", "batch id"))


def validated_prefix(dataset: str) -> str:
    return join("validated", validate_name(dataset, "dataset")) + "/"


def validated_key(dataset: str, batch_id: str) -> str:
    return join("validated", validate_name(dataset, "dataset"),
                validate_name(batch_id + ".parquet", "batch id"))


def validated_scoring_prefix(dataset: str) -> str:
    return join("validated-scoring", validate_name(dataset, "dataset")) + "/"


def validated_scoring_key(dataset: str, batch_id: str) -> str:
    """Where a batch validated at the scoring stage goes (never where training reads)."""
    return validated_scoring_prefix(dataset) + validate_name(batch_id + ".parquet", "batch id")


def validation_result_key(dataset: str, batch_id: str, stage: str = "training") -> str:
    """Full validation result of a batch; scoring-stage results live apart from training ones."""
    top = "validation" if stage == "training" else "validation-scoring"
    return join(top, validate_name(dataset, "dataset"), validate_name(batch_id + ".json", "batch id"))


def quarantine_prefix(dataset: str, batch_id: str) -> str:
    return join("quarantine", validate_name(dataset, "dataset"), validate_name(batch_id, "batch id")) + "/"


def quarantine_data_key(dataset: str, batch_id: str, original_name: str) -> str:
    return quarantine_prefix(dataset, batch_id) + validate_name(original_name, "file name")


def quarantine_result_key(dataset: str, batch_id: str) -> str:
    return quarantine_prefix(dataset, batch_id) + "validation.json"


def labels_prefix(dataset: str) -> str:
    return join("labels", validate_name(dataset, "dataset")) + "/"


def labels_key(dataset: str, batch_id: str) -> str:
    return join("labels", validate_name(dataset, "dataset"), validate_name(batch_id + ".parquet", "batch id"))


# --- model registry -----------------------------------------------------------------------
def model_prefix(name: str) -> str:
    return join("models", validate_name(name, "model name")) + "/"


def model_version_prefix(name: str, version: int) -> str:
    if not isinstance(version, int) or version < 1:
        raise InvalidKeyError(f"model version must be a positive integer, got {version!r}")
    return join("models", validate_name(name, "model name"), str(version)) + "/"


def model_file_key(name: str, version: int, filename: str) -> str:
    return model_version_prefix(name, version) + validate_name(filename, "file name")


def alias_key(name: str, alias: str) -> str:
    return join("models", validate_name(name, "model name"), "aliases",
                validate_name(alias, "alias") + ".json")


def history_prefix(name: str) -> str:
    return join("models", validate_name(name, "model name"), "history") + "/"


def history_key(name: str, event_id: str) -> str:
    return history_prefix(name) + validate_name(event_id + ".json", "event id")


# --- scoring ------------------------------------------------------------------------------
def predictions_run_prefix(model: str, version: int, run_id: str) -> str:
    return join(
        "predictions", validate_name(model, "model name"), str(int(version)), validate_name(run_id, "run id")
    ) + "/"


def prediction_part_key(model: str, version: int, run_id: str, part_name: str) -> str:
    return predictions_run_prefix(model, version, run_id) + validate_name(part_name, "part name")


def scoring_manifest_key(model: str, version: int, run_id: str) -> str:
    return predictions_run_prefix(model, version, run_id) + "_manifest.json"


def predictions_model_prefix(model: str) -> str:
    return join("predictions", validate_name(model, "model name")) + "/"


def shadow_prefix(model: str) -> str:
    return join("shadow", validate_name(model, "model name")) + "/"


def shadow_model_prefix(model: str, version: int) -> str:
    """A shadow challenger's predictions (never delivered): ``shadow/<model>/<version>/``."""
    return shadow_prefix(model) + str(int(version)) + "/"


def shadow_run_prefix(model: str, version: int, run_id: str) -> str:
    return shadow_model_prefix(model, version) + validate_name(run_id, "run id") + "/"


def shadow_part_key(model: str, version: int, run_id: str, part_name: str) -> str:
    return shadow_run_prefix(model, version, run_id) + validate_name(part_name, "part name")


def shadow_manifest_key(model: str, version: int, run_id: str) -> str:
    return shadow_run_prefix(model, version, run_id) + "_shadow.json"


# --- monitoring ---------------------------------------------------------------------------
def monitoring_run_prefix(model: str, run_id: str) -> str:
    return join("monitoring", validate_name(model, "model name"), validate_name(run_id, "run id")) + "/"


def monitoring_file_key(model: str, run_id: str, filename: str) -> str:
    return monitoring_run_prefix(model, run_id) + validate_name(filename, "file name")


def window_profile_key(model: str, model_version: int, batch_version: str, run_id: str) -> str:
    """The counts of one scored batch over ``model``@``model_version``'s reference bins (a cache
    monitoring fills once per scoring run, so windows merge counts instead of reading rows)."""
    return join("monitoring", validate_name(model, "model name"), "profiles",
                f"v{int(model_version)}", validate_name(batch_version, "batch version"),
                validate_name(run_id, "run id") + ".json")


def monitoring_state_key(model: str) -> str:
    """The recent windows' signals of ``model`` (for the persistence rule)."""
    return control_key("monitoring", validate_name(model, "model name") + ".json")


def retrain_pointer_key(model: str) -> str:
    """The CAS pointer that debounces drift-triggered retrains of ``model``."""
    return control_key("retrain", validate_name(model, "model name") + ".json")


def doctor_probe_key(token: str) -> str:
    """A throwaway object `mlops doctor` uploads and downloads to measure the store."""
    return control_key("doctor", validate_name(f"probe-{token}.bin", "probe name"))


def cas_probe_key(token: str) -> str:
    """A throwaway object the conditional-write probe creates, races on and deletes."""
    return control_key("cas-probe", validate_name(f"probe-{token}.json", "probe name"))


def scoring_quarantine_key(dataset: str, run_id: str, batch_id: str, original_name: str) -> str:
    """Where scoring quarantines a bad partition: apart from the ingest gate's quarantine."""
    return (quarantine_prefix(dataset, batch_id) + "scoring/" + validate_name(run_id, "run id") + "/"
            + validate_name(original_name, "file name"))


def ledger_index_key(dataset: str) -> str:
    """The batch ledger's compacted index of ``dataset`` (a CAS pointer)."""
    return join("ledger", validate_name(dataset, "dataset"), "index.json")


def ledger_events_prefix(dataset: str, version: str | None = None) -> str:
    base = join("ledger", validate_name(dataset, "dataset"), "events") + "/"
    return base if version is None else base + validate_name(version, "batch version") + "/"


def ledger_event_key(dataset: str, version: str, event_id: str) -> str:
    return ledger_events_prefix(dataset, version) + validate_name(event_id + ".json", "event id")


def control_key(*names: str) -> str:
    return join("control", *(validate_name(n, "control name") for n in names))


# --- model registry: files of one version, and staging of candidates (training) ----------
def model_card_key(name: str, version: int) -> str:
    """``card.json``: written last, the commit marker of a model version."""
    return model_file_key(name, version, "card.json")


def model_onnx_key(name: str, version: int) -> str:
    return model_file_key(name, version, "model.onnx")


def reference_profile_key(name: str, version: int) -> str:
    """The monitoring reference profile of a model version."""
    return model_file_key(name, version, "reference_profile.json")


def model_version_marker_key(name: str, version: int) -> str:
    """Created with CAS-create to allocate a version number (never reused)."""
    return model_file_key(name, version, "allocated.json")


def model_staging_prefix(name: str, run_id: str) -> str:
    """Candidate artifacts of one training run before registration."""
    return join("models", validate_name(name, "model name"), "staging", validate_name(run_id, "run id")) + "/"


def model_staging_key(name: str, run_id: str, filename: str) -> str:
    return model_staging_prefix(name, run_id) + validate_name(filename, "file name")
