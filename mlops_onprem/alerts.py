"""Alerts through apprise (Slack, Teams, e-mail, webhooks, ...: any apprise URL).

The URLs come from ``Settings.alert_urls`` as ``SecretStr``: they often embed tokens, so
nothing here logs, returns or raises them; results carry counts and positions only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import SecretStr

from mlops_onprem.errors import MonitoringError

logger = logging.getLogger(__name__)


class AlertDeliveryError(MonitoringError):
    """An alert could not be delivered to one or more of the configured URLs."""


@dataclass(frozen=True)
class AlertResult:
    """What happened to one alert (URLs are referred to by position, never by value)."""

    title: str
    attempted: int
    delivered: int
    failed_positions: tuple[int, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.delivered == self.attempted

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def send_alert(
    urls: Sequence[SecretStr | str],
    title: str,
    body: str,
    *,
    notify_type: str = "warning",
    raise_on_failure: bool = False,
) -> AlertResult:
    """Send one alert to every URL, each on its own so one bad endpoint does not hide others.

    Takes apprise URLs (``SecretStr`` preferred), a title, a plain-text body and an apprise
    notify type (info | success | warning | failure). Returns an :class:`AlertResult`; with
    ``raise_on_failure`` raises :class:`AlertDeliveryError` (naming URL positions) when any
    delivery failed. No URL configured means nothing is sent (attempted 0).
    """
    import apprise

    failed: list[int] = []
    delivered = 0
    for position, url in enumerate(urls):
        secret = url.get_secret_value() if isinstance(url, SecretStr) else str(url)
        client = apprise.Apprise()
        if not client.add(secret):
            logger.warning("alert URL #%d is not a valid apprise URL; skipped", position)
            failed.append(position)
            continue
        if client.notify(body=body, title=title, notify_type=notify_type):
            delivered += 1
        else:
            logger.warning("alert %r not delivered to alert URL #%d", title, position)
            failed.append(position)
    result = AlertResult(title=title, attempted=len(urls), delivered=delivered,
                         failed_positions=tuple(failed))
    if raise_on_failure and failed:
        raise AlertDeliveryError(
            f"alert {title!r} failed for alert URL position(s) {failed} of {len(urls)} "
            "(MLOPS_ALERT_URLS; values not shown)"
        )
    return result


def drift_alert(
    *, model_name: str, model_version: int, decision: str, summary: str,
    rules_fired: Sequence[str], reasons: Sequence[str], report_key: str,
) -> tuple[str, str]:
    """(title, body) of the alert for a monitoring decision."""
    title = f"[mlops] {model_name} v{model_version}: {decision.replace('_', ' ')}"
    lines = [
        summary,
        f"decision: {decision}",
        f"rules fired: {', '.join(rules_fired) or 'none'}",
        *[f"- {reason}" for reason in reasons],
        f"report: {report_key}",
    ]
    return title, "\n".join(lines)


def retrain_alert(*, model_name: str, outcome: dict[str, Any]) -> tuple[str, str]:
    """(title, body) of the alert for a triggered retrain's outcome.

    ``outcome`` is the training flow's result (``version``, ``promoted``, ``decision`` with
    ``candidate_score``/``champion_score``/``metric``) or ``{"error": ...}`` when it failed.
    """
    if "error" in outcome:
        return (f"[mlops] {model_name}: retrain failed",
                f"the drift-triggered retrain of {model_name} failed: {outcome['error']}")
    decision = outcome.get("decision") or {}
    verdict = "promoted" if outcome.get("promoted") else "rejected"
    metric = decision.get("metric")
    title = f"[mlops] {model_name}: retrained v{outcome.get('version')} {verdict}"
    body = "\n".join([
        f"drift-triggered retrain of {model_name}: candidate v{outcome.get('version')} {verdict}",
        f"{metric}: candidate {decision.get('candidate_score')} vs champion "
        f"v{decision.get('champion_version')} {decision.get('champion_score')}",
        f"reason: {decision.get('reason', '')}",
        f"card: {outcome.get('card_key')}",
    ])
    return title, body
