"""A failed alert delivery is visible: a WARNING in the run's logs and an ``alert-delivery``
artifact, naming the URL by position only (the URL carries a token)."""

from __future__ import annotations

import logging

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from mlops_onprem.settings import get_settings
from tasks.monitoring import send_drift_alert

RECORD = {"model_name": "alerted", "model_version": 3, "decision": "drift", "summary": "s",
          "rules_fired": ["feature_drift"], "reasons": ["num_00 drifted"], "report_key": "k"}


def test_a_failed_delivery_is_a_warning_and_an_artifact_without_the_url(local_env, monkeypatch,
                                                                       caplog):
    monkeypatch.setenv("MLOPS_ALERT_URLS", "json://127.0.0.1:1/hook?token=never-shown")
    get_settings.cache_clear()

    @flow
    def alerting() -> dict:
        return send_drift_alert(RECORD)

    with caplog.at_level(logging.INFO):
        result = alerting()
    assert (result["attempted"], result["delivered"]) == (1, 0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and "alert NOT delivered" in r.getMessage()]
    assert warnings and "position(s) 0" in warnings[0].getMessage()
    assert "never-shown" not in caplog.text

    async def read() -> list:
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["alert-delivery-alerted"])))

    import asyncio

    artifacts = asyncio.run(read())
    assert artifacts and "delivery FAILED" in artifacts[0].data
    assert "never-shown" not in artifacts[0].data
