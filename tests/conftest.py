"""Shared fixtures: a real S3 server on loopback (moto, auth on) and a real Prefect API.

Both are started once per test session. Every S3 test gets a fresh bucket.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

# moto reads this when it is imported: the first requests (the IAM bootstrap below) skip
# auth, every later request must carry a valid signature and pass IAM policy checks.
MOTO_BOOTSTRAP_REQUESTS = 4
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(MOTO_BOOTSTRAP_REQUESTS)
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import pytest  # noqa: E402

import mlops_onprem  # noqa: E402,F401  (switches telemetry off before Prefect is imported)
from mlops_onprem.settings import Settings, get_settings  # noqa: E402
from mlops_onprem.store.local import LocalStore  # noqa: E402
from mlops_onprem.store.s3 import S3Store  # noqa: E402
from tests.fixtures.servers import MotoServer, free_port, s3_settings_for  # noqa: E402,F401

ADMIN_POLICY = """{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}]}"""


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's S3/IAM server on a free loopback port, with signature and policy checks on."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    iam = boto3.client("iam", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    # exactly MOTO_BOOTSTRAP_REQUESTS unauthenticated calls: user, policy, attach, key
    iam.create_user(UserName="mlops-admin")
    policy = iam.create_policy(PolicyName="mlops-admin", PolicyDocument=ADMIN_POLICY)
    iam.attach_user_policy(UserName="mlops-admin", PolicyArn=policy["Policy"]["Arn"])
    key = iam.create_access_key(UserName="mlops-admin")["AccessKey"]
    yield MotoServer(host=host, port=port, access_key=key["AccessKeyId"],
                     secret_key=key["SecretAccessKey"])
    server.stop()


@pytest.fixture
def s3_bucket() -> str:
    return f"test-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def s3_settings(moto_server: MotoServer, s3_bucket: str, tmp_path: Path) -> Settings:
    """Settings pointing at the moto server, with a bucket of this test's own."""
    return s3_settings_for(moto_server, s3_bucket, data_dir=tmp_path / "data")


@pytest.fixture
def s3_store(s3_settings: Settings) -> S3Store:
    return S3Store(s3_settings)


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "local-store")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest):
    """The same test against both backends."""
    if request.param == "local":
        return request.getfixturevalue("local_store")
    return request.getfixturevalue("s3_store")


@pytest.fixture
def s3_env(s3_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Point code that reads settings from the environment (tasks, flows) at the S3 fixture."""
    env = {
        "MLOPS_S3_ENDPOINT": s3_settings.s3_endpoint,
        "MLOPS_S3_ACCESS_KEY": s3_settings.s3_access_key.get_secret_value(),
        "MLOPS_S3_SECRET_KEY": s3_settings.s3_secret_key.get_secret_value(),
        "MLOPS_S3_SECURE": "false",
        "MLOPS_S3_REGION": "us-east-1",
        "MLOPS_BUCKET": s3_settings.bucket,
        "MLOPS_DATA_DIR": str(s3_settings.data_dir),
        "MLOPS_S3_MAX_RETRIES": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def local_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Point tasks and flows at a fresh embedded local store."""
    for name in list(os.environ):
        if name.startswith("MLOPS_S3_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> Iterator[None]:
    """One real Prefect API (the test harness's server) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
