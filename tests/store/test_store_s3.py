"""S3 backend failure modes against moto's server on loopback, through the real minio SDK."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from mlops_onprem.errors import BucketMissingError, StoreAuthError, StoreUnavailableError
from mlops_onprem.store import open_store
from mlops_onprem.store.s3 import S3Store
from tests.fixtures.servers import free_port, s3_settings_for


def test_open_store_picks_s3_when_an_endpoint_is_configured(s3_settings):
    assert isinstance(open_store(s3_settings), S3Store)


def test_endpoint_down_fails_fast_with_one_error_naming_the_endpoint(moto_server, s3_bucket):
    port = free_port()  # nothing listens here
    settings = s3_settings_for(moto_server, s3_bucket, s3_endpoint=f"127.0.0.1:{port}",
                               s3_max_retries=2, s3_connect_timeout_s=1.0)
    store = S3Store(settings)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{port}") as info:
        store.put_bytes("k", b"x")
    assert "after 2 retries" in str(info.value)
    assert time.monotonic() - started < 15


def test_wrong_secret_key_is_a_clear_auth_error(moto_server, s3_bucket):
    settings = s3_settings_for(moto_server, s3_bucket, s3_secret_key=SecretStr("wrong-secret-canary"))
    with pytest.raises(StoreAuthError, match=r"refused \((SignatureDoesNotMatch|AccessDenied)\)") as info:
        S3Store(settings).put_bytes("k", b"x")
    assert "wrong-secret-canary" not in str(info.value)


def test_unknown_access_key_is_a_clear_auth_error(moto_server, s3_bucket):
    settings = s3_settings_for(moto_server, s3_bucket, s3_access_key=SecretStr("AKIAUNKNOWN0000000000"))
    with pytest.raises(StoreAuthError, match=r"refused \((InvalidAccessKeyId|AccessDenied)\)"):
        S3Store(settings).get_bytes("k")


def test_missing_bucket_is_created_on_first_use_when_allowed(s3_settings):
    store = S3Store(s3_settings)
    store.put_bytes("first/object", b"x")
    assert store.get_bytes("first/object") == b"x"


def test_missing_bucket_is_a_clear_error_when_creation_is_not_allowed(moto_server, s3_bucket):
    settings = s3_settings_for(moto_server, s3_bucket, s3_create_bucket=False)
    with pytest.raises(BucketMissingError, match=s3_bucket):
        S3Store(settings).put_bytes("k", b"x")


def test_missing_credentials_fail_fast_naming_the_variables(moto_server, s3_bucket):
    settings = s3_settings_for(moto_server, s3_bucket, s3_access_key=None)
    with pytest.raises(StoreAuthError, match="MLOPS_S3_ACCESS_KEY"):
        S3Store(settings)


def test_server_side_copy_leaves_the_source_untouched(s3_store):
    s3_store.put_bytes("src/a.bin", b"payload")
    s3_store.copy("src/a.bin", "dst/a.bin")
    assert s3_store.get_bytes("dst/a.bin") == b"payload"
    assert s3_store.get_bytes("src/a.bin") == b"payload"
    assert s3_store.stat("dst/a.bin").sha256 == s3_store.stat("src/a.bin").sha256
