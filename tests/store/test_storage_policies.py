"""The least-privilege MinIO policies in deployments/minio/policies, enforced for real.

Each policy file is loaded unchanged (only the bucket name is swapped for this module's bucket)
into moto's IAM, attached to a user of its own, and exercised through the project's S3Store with
that user's keys. moto checks signatures and evaluates the IAM policy on every S3 request, so an
operation a role is not granted fails here the way it fails on MinIO: AccessDenied.

What moto cannot prove: it ignores policy ``Condition`` blocks, and MinIO authorises HEAD bucket
as ``s3:ListBucket`` where moto uses ``s3:HeadBucket`` (the policies grant both).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from mlops_onprem import keys
from mlops_onprem.errors import StoreAuthError
from mlops_onprem.store.s3 import S3Store
from tests.fixtures.servers import MotoServer, s3_settings_for

pytestmark = pytest.mark.s3

POLICY_DIR = Path(__file__).resolve().parents[2] / "deployments" / "minio" / "policies"
ROLES = ("ingest", "training", "scoring", "monitoring")
DEFAULT_BUCKET_ARN = "arn:aws:s3:::mlops"
DATASET, MODEL = "demo", "demo-model"


def load_policy(role: str, bucket: str = "mlops") -> dict:
    """The role's policy document, re-targeted at ``bucket``."""
    text = (POLICY_DIR / f"{role}.json").read_text(encoding="utf-8")
    return json.loads(text.replace(DEFAULT_BUCKET_ARN, f"arn:aws:s3:::{bucket}"))


def _resources(policy: dict) -> list[str]:
    out: list[str] = []
    for statement in policy["Statement"]:
        resource = statement["Resource"]
        out.extend([resource] if isinstance(resource, str) else resource)
    return out


def _allowed(policy: dict, action: str) -> list[str]:
    """Resources on which ``policy`` allows ``action`` (exact action names only)."""
    out: list[str] = []
    for statement in policy["Statement"]:
        if statement["Effect"] == "Allow" and action in statement["Action"]:
            out.extend(statement["Resource"])
    return out


@pytest.fixture(scope="module")
def role_stores(moto_server: MotoServer, tmp_path_factory) -> Iterator[dict[str, S3Store]]:
    """A bucket created by the admin, plus one S3Store per role with that role's own IAM user."""
    import boto3

    bucket = f"policies-{uuid.uuid4().hex[:12]}"
    data_dir = tmp_path_factory.mktemp("policies")
    admin = S3Store(s3_settings_for(moto_server, bucket, data_dir=data_dir))
    admin.put_bytes("README.txt", b"created by the admin")  # creates the bucket
    iam = boto3.client(
        "iam", endpoint_url=moto_server.url, region_name="us-east-1",
        aws_access_key_id=moto_server.access_key, aws_secret_access_key=moto_server.secret_key,
    )
    stores: dict[str, S3Store] = {"admin": admin}
    suffix = bucket.split("-")[1]
    for role in ROLES:
        user = f"mlops-{role}-{suffix}"
        iam.create_user(UserName=user)
        arn = iam.create_policy(
            PolicyName=user, PolicyDocument=json.dumps(load_policy(role, bucket))
        )["Policy"]["Arn"]
        iam.attach_user_policy(UserName=user, PolicyArn=arn)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        settings = s3_settings_for(
            moto_server, bucket, data_dir=data_dir, s3_create_bucket=False,
            s3_access_key=SecretStr(key["AccessKeyId"]),
            s3_secret_key=SecretStr(key["SecretAccessKey"]),
        )
        stores[role] = S3Store(settings)
    yield stores


# --- the files themselves -----------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_policy_file_targets_only_the_mlops_bucket_and_grants_no_wildcard_actions(role):
    policy = load_policy(role)
    assert policy["Version"] == "2012-10-17"
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    for resource in _resources(policy):
        assert resource == DEFAULT_BUCKET_ARN or resource.startswith(DEFAULT_BUCKET_ARN + "/")
        assert resource != DEFAULT_BUCKET_ARN + "/*", f"{role} may touch every object"
    for statement in policy["Statement"]:
        assert all("*" not in action for action in statement["Action"]), statement["Sid"]
        assert not any(a.startswith("admin:") for a in statement["Action"])


def test_only_training_may_write_under_models():
    writers = [r for r in ROLES if any(
        res.startswith(DEFAULT_BUCKET_ARN + "/models/") for res in _allowed(load_policy(r), "s3:PutObject")
    )]
    assert writers == ["training"]
    deleters = {r: res for r in ROLES for res in _allowed(load_policy(r), "s3:DeleteObject")
                if res.startswith(DEFAULT_BUCKET_ARN + "/models/")}
    # training may only clean up its own staged candidates, never a registered version
    assert deleters == {"training": DEFAULT_BUCKET_ARN + "/models/*/staging/*"}


# --- each role can do its job -------------------------------------------------------------
def test_ingest_role_lands_validates_and_quarantines_batches(role_stores):
    ingest = role_stores["ingest"]
    ingest.put_bytes(keys.incoming_key(DATASET, "b001"), b"raw parquet bytes")
    assert ingest.get_bytes(keys.incoming_key(DATASET, "b001")) == b"raw parquet bytes"
    ingest.copy(keys.incoming_key(DATASET, "b001"), keys.validated_key(DATASET, "b001"))
    ingest.put_json(keys.validation_result_key(DATASET, "b001"), {"success": True})
    ingest.put_bytes(keys.quarantine_data_key(DATASET, "b002", "b002.parquet"), b"bad batch")
    ingest.put_json(keys.quarantine_result_key(DATASET, "b002"), {"success": False})
    ingest.put_bytes(keys.labels_key(DATASET, "b001"), b"labels")
    ingest.put_bytes(keys.scoring_inbox_key(DATASET, "u001"), b"unlabelled rows to score")
    ingest.put_bytes(keys.validated_scoring_key(DATASET, "u001"), b"validated rows to score")
    ingest.put_json(keys.validation_result_key(DATASET, "u001", "scoring"), {"success": True})

    assert [o.key for o in ingest.list(keys.validated_prefix(DATASET))] == [
        keys.validated_key(DATASET, "b001")
    ]
    with pytest.raises(StoreAuthError, match="AccessDenied"):  # landed data is never deleted
        ingest.delete(keys.incoming_key(DATASET, "b001"))
    assert ingest.exists(keys.incoming_key(DATASET, "b001"))
    assert role_stores["admin"].get_json(keys.validation_result_key(DATASET, "b001")) == {
        "success": True
    }


def test_training_role_reads_validated_data_and_writes_a_model_version_and_alias(role_stores):
    admin, training = role_stores["admin"], role_stores["training"]
    admin.put_bytes(keys.validated_key(DATASET, "t001"), b"training rows")
    admin.put_bytes(keys.labels_key(DATASET, "t001"), b"training labels")

    assert training.get_bytes(keys.validated_key(DATASET, "t001")) == b"training rows"
    assert training.get_bytes(keys.labels_key(DATASET, "t001")) == b"training labels"
    training.put_bytes(keys.model_file_key(MODEL, 1, "model.onnx"), b"onnx v1")
    training.put_json(keys.model_file_key(MODEL, 1, "card.json"), {"version": 1})
    training.write_pointer(keys.history_key(MODEL, "e0001-promote"), {"version": 1}, expected_token=None)
    staged = keys.model_staging_key(MODEL, "run1", "candidate.json")
    training.put_json(staged, {"run": "run1"})
    training.delete(staged)
    with pytest.raises(StoreAuthError, match="AccessDenied"):
        training.delete(keys.model_file_key(MODEL, 1, "model.onnx"))
    pointer = training.write_pointer(
        keys.alias_key(MODEL, "champion"), {"version": 1}, expected_token=None
    )

    assert training.read_pointer(keys.alias_key(MODEL, "champion")).token == pointer.token
    assert admin.get_bytes(keys.model_file_key(MODEL, 1, "model.onnx")) == b"onnx v1"
    assert [o.key for o in training.list(keys.model_version_prefix(MODEL, 1))] == [
        keys.model_file_key(MODEL, 1, "card.json"), keys.model_file_key(MODEL, 1, "model.onnx"),
    ]


def test_scoring_role_reads_model_and_batch_and_writes_predictions(role_stores):
    admin, scoring = role_stores["admin"], role_stores["scoring"]
    admin.put_bytes(keys.model_file_key(MODEL, 2, "model.onnx"), b"onnx v2")
    admin.put_bytes(keys.validated_key(DATASET, "s001"), b"rows to score")
    admin.put_bytes(keys.incoming_key(DATASET, "s002"), b"unvalidated rows")
    admin.put_bytes(keys.scoring_inbox_key(DATASET, "s003"), b"inbox rows")

    assert scoring.get_bytes(keys.model_file_key(MODEL, 2, "model.onnx")) == b"onnx v2"
    assert scoring.get_bytes(keys.validated_key(DATASET, "s001")) == b"rows to score"
    assert scoring.get_bytes(keys.incoming_key(DATASET, "s002")) == b"unvalidated rows"
    inbox = [o.key for o in scoring.list(keys.scoring_inbox_prefix(DATASET))]
    assert keys.scoring_inbox_key(DATASET, "s003") in inbox
    scoring.put_bytes(keys.prediction_part_key(MODEL, 2, "run1", "part-00000.parquet"), b"preds")
    scoring.put_json(keys.scoring_manifest_key(MODEL, 2, "run1"), {"parts": 1})
    scoring.put_bytes(keys.quarantine_data_key(DATASET, "s002", "s002.parquet"), b"unvalidated rows")
    stale = keys.prediction_part_key(MODEL, 2, "run1", "part-00009.parquet")
    scoring.put_bytes(stale, b"left over from an earlier attempt")
    scoring.delete(stale)  # a rerun prunes parts its manifest does not list

    assert admin.get_json(keys.scoring_manifest_key(MODEL, 2, "run1")) == {"parts": 1}
    assert scoring.exists(keys.scoring_manifest_key(MODEL, 2, "run1"))


def test_monitoring_role_reads_predictions_models_labels_and_writes_reports_and_control(
    role_stores,
):
    admin, monitoring = role_stores["admin"], role_stores["monitoring"]
    admin.put_bytes(keys.scoring_manifest_key(MODEL, 3, "run9"), b'{"parts": 0}')
    admin.put_bytes(keys.model_file_key(MODEL, 3, "reference_bins.json"), b"{}")
    admin.put_bytes(keys.labels_key(DATASET, "m001"), b"labels")

    assert monitoring.get_bytes(keys.scoring_manifest_key(MODEL, 3, "run9")) == b'{"parts": 0}'
    assert monitoring.get_bytes(keys.model_file_key(MODEL, 3, "reference_bins.json")) == b"{}"
    assert monitoring.get_bytes(keys.labels_key(DATASET, "m001")) == b"labels"
    monitoring.put_json(keys.monitoring_file_key(MODEL, "mon1", "drift.json"), {"drift": True})
    debounce = monitoring.write_pointer(
        keys.control_key("retrain", MODEL), {"last": "mon1"}, expected_token=None
    )
    monitoring.write_pointer(
        keys.control_key("retrain", MODEL), {"last": "mon2"}, expected_token=debounce.token
    )

    assert admin.get_json(keys.monitoring_file_key(MODEL, "mon1", "drift.json")) == {"drift": True}
    assert monitoring.read_pointer(keys.control_key("retrain", MODEL)).value == {"last": "mon2"}


# --- and nothing more ---------------------------------------------------------------------
def test_scoring_role_cannot_overwrite_or_delete_a_model(role_stores):
    admin, scoring = role_stores["admin"], role_stores["scoring"]
    model_key = keys.model_file_key(MODEL, 4, "model.onnx")
    admin.put_bytes(model_key, b"the real model")
    admin.put_json(keys.alias_key(MODEL, "staging"), {"version": 4})

    with pytest.raises(StoreAuthError, match="AccessDenied"):
        scoring.put_bytes(model_key, b"tampered")
    with pytest.raises(StoreAuthError, match="AccessDenied"):
        scoring.put_json(keys.alias_key(MODEL, "staging"), {"version": 999})
    with pytest.raises(StoreAuthError, match="AccessDenied"):
        scoring.delete(model_key)

    assert admin.get_bytes(model_key) == b"the real model"
    assert admin.get_json(keys.alias_key(MODEL, "staging")) == {"version": 4}


@pytest.mark.parametrize(
    ("role", "key"),
    [
        ("ingest", keys.model_file_key(MODEL, 5, "model.onnx")),
        ("ingest", keys.prediction_part_key(MODEL, 5, "r", "part-0.parquet")),
        ("training", keys.validated_key(DATASET, "forged")),
        ("training", keys.prediction_part_key(MODEL, 5, "r", "part-0.parquet")),
        ("scoring", keys.validated_key(DATASET, "forged")),
        ("scoring", keys.scoring_inbox_key(DATASET, "forged")),
        ("scoring", keys.monitoring_file_key(MODEL, "r", "drift.json")),
        ("monitoring", keys.model_file_key(MODEL, 5, "model.onnx")),
        ("monitoring", keys.prediction_part_key(MODEL, 5, "r", "part-0.parquet")),
        ("monitoring", keys.labels_key(DATASET, "forged")),
    ],
)
def test_role_cannot_write_outside_its_prefixes(role_stores, role, key):
    with pytest.raises(StoreAuthError, match="AccessDenied"):
        role_stores[role].put_bytes(key, b"not yours")
    assert not role_stores["admin"].exists(key)


@pytest.mark.parametrize(
    ("role", "key"),
    [
        ("ingest", keys.model_file_key(MODEL, 6, "model.onnx")),
        ("training", keys.scoring_manifest_key(MODEL, 6, "r")),
        ("scoring", keys.labels_key(DATASET, "l6")),
        ("monitoring", keys.quarantine_result_key(DATASET, "q6")),
    ],
)
def test_role_cannot_read_outside_its_prefixes(role_stores, role, key):
    role_stores["admin"].put_bytes(key, b"secret-ish")
    with pytest.raises(StoreAuthError, match="AccessDenied"):
        role_stores[role].get_bytes(key)
