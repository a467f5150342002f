"""Alerts end to end: apprise json:// to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from mlops_onprem.alerts import AlertDeliveryError, drift_alert, retrain_alert, send_alert


class Receiver:
    """A loopback webhook that records every JSON body it receives."""

    def __init__(self) -> None:
        self.payloads: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = int(self.headers.get("Content-Length", 0))
                receiver.payloads.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:  # keep test output quiet
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> SecretStr:
        return SecretStr(f"json://127.0.0.1:{self.port}/hook?token=s3cr3t-token")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_drift_alert_reaches_the_webhook_with_summary_decision_and_report_key(receiver):
    title, body = drift_alert(
        model_name="demo", model_version=3, decision="drift", summary="demo v3: drift (5000 rows)",
        rules_fired=["feature_share"], reasons=["3/10 features drifted"],
        report_key="monitoring/demo/mon-1/report.json",
    )
    result = send_alert([receiver.url], title, body)
    assert result.ok and result.delivered == 1
    [payload] = receiver.payloads
    assert payload["title"] == "[mlops] demo v3: drift"
    assert "rules fired: feature_share" in payload["message"]
    assert "monitoring/demo/mon-1/report.json" in payload["message"]
    assert payload["type"] == "warning"


def test_retrain_outcome_alert_carries_both_scores(receiver):
    outcome = {"version": 4, "promoted": False, "card_key": "models/demo/4/card.json",
               "decision": {"metric": "roc_auc", "candidate_score": 0.81, "champion_score": 0.83,
                            "champion_version": 3, "reason": "champion kept"}}
    title, body = retrain_alert(model_name="demo", outcome=outcome)
    send_alert([receiver.url], title, body, notify_type="info")
    [payload] = receiver.payloads
    assert payload["title"] == "[mlops] demo: retrained v4 rejected"
    assert "candidate 0.81" in payload["message"] and "0.83" in payload["message"]


def test_failed_delivery_is_counted_and_never_logs_the_url(receiver, caplog):
    dead = SecretStr("json://127.0.0.1:1/hook?token=dead-secret")
    with caplog.at_level(logging.DEBUG):
        result = send_alert([dead, receiver.url], "t", "b")
    assert (result.attempted, result.delivered, result.failed_positions) == (2, 1, (0,))
    assert "dead-secret" not in caplog.text and "s3cr3t-token" not in caplog.text
    with pytest.raises(AlertDeliveryError, match=r"position\(s\) \[0\]") as info:
        send_alert([dead], "t", "b", raise_on_failure=True)
    assert "dead-secret" not in str(info.value)


def test_no_configured_url_sends_nothing():
    result = send_alert([], "t", "b")
    assert (result.attempted, result.delivered) == (0, 0) and result.ok


def test_a_token_bearing_url_never_reaches_the_logs_even_at_debug(receiver, caplog):
    # Mattermost webhooks carry their token in the path; apprise logs "Mattermost POST URL:
    # http://host/hooks/<token>" at DEBUG and urllib3 logs the request path at DEBUG
    token = "mmost-token-canary-4f1d0c9b2e"
    live = SecretStr(f"mmost://127.0.0.1:{receiver.port}/{token}")
    dead = SecretStr(f"mmost://127.0.0.1:1/{token}-dead")
    with caplog.at_level(logging.DEBUG):
        result = send_alert([live, dead], "t", "b")
    assert (result.delivered, result.failed_positions) == (1, (1,))
    assert receiver.payloads and "b" in receiver.payloads[0]["text"]
    assert any(record.name == "apprise" for record in caplog.records)  # apprise was heard
    assert token not in caplog.text
    assert logging.getLogger("apprise").getEffectiveLevel() > logging.DEBUG
