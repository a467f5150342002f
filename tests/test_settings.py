"""Settings: typed, from MLOPS_* variables, and credentials never leak."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from mlops_onprem.errors import StoreAuthError
from mlops_onprem.settings import Settings
from mlops_onprem.store import open_store
from mlops_onprem.store.local import LocalStore
from mlops_onprem.store.s3 import S3Store

CANARY = "canary-SECRET-7f3a9c"


def test_settings_read_mlops_prefixed_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLOPS_BUCKET", "analytics")
    monkeypatch.setenv("MLOPS_S3_MAX_RETRIES", "5")
    monkeypatch.setenv("MLOPS_ALERT_URLS", "json://127.0.0.1:1/a, json://127.0.0.1:2/b")
    settings = Settings(_env_file=None)
    assert settings.data_dir == tmp_path
    assert settings.bucket == "analytics"
    assert settings.s3_max_retries == 5
    assert [u.get_secret_value() for u in settings.alert_urls] == [
        "json://127.0.0.1:1/a", "json://127.0.0.1:2/b"]


def test_no_endpoint_means_the_embedded_local_store(tmp_path):
    store = open_store(Settings(_env_file=None, data_dir=tmp_path))
    assert isinstance(store, LocalStore)


def test_endpoint_with_scheme_is_rejected_with_a_clear_message():
    with pytest.raises(ValidationError, match="host:port without a scheme"):
        Settings(_env_file=None, s3_endpoint="http://minio:9000")


def test_secrets_never_appear_in_reprs_logs_or_errors(monkeypatch, caplog, moto_server, s3_bucket):
    monkeypatch.setenv("MLOPS_S3_ENDPOINT", moto_server.endpoint)
    monkeypatch.setenv("MLOPS_S3_ACCESS_KEY", moto_server.access_key)
    monkeypatch.setenv("MLOPS_S3_SECRET_KEY", CANARY)
    monkeypatch.setenv("MLOPS_S3_SECURE", "false")
    monkeypatch.setenv("MLOPS_BUCKET", s3_bucket)
    monkeypatch.setenv("MLOPS_ALERT_URLS", f"json://user:{CANARY}@127.0.0.1:9/hook")
    settings = Settings(_env_file=None)
    assert settings.s3_secret_key.get_secret_value() == CANARY  # the value is really there
    texts = [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())]
    store = S3Store(settings)
    texts.append(repr(store))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreAuthError) as info:  # wrong secret: the server refuses
        store.put_bytes("k", b"x")
    texts += [str(info.value), repr(info.value), caplog.text]
    for text in texts:
        assert CANARY not in text
