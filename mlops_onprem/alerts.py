"""Alerts through apprise (Slack, Teams, e-mail, webhooks, ...: any apprise URL).

The URLs come from ``Settings.alert_urls`` as ``SecretStr``: they often embed tokens, so
nothing here logs, returns or raises them; results carry counts and positions only. Apprise
itself logs service URLs (tokens included, e.g. ``Slack POST URL: .../<token>``) at DEBUG:
its logger is kept at INFO or above, and a filter on it (and on urllib3's connection-pool
logger, which logs each request's path at DEBUG) masks every fragment of the URLs sent so far.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import SecretStr

from mlops_onprem.errors import MonitoringError

logger = logging.getLogger(__name__)

APPRISE_LOGGER = "apprise"  # the one logger apprise and its plugins log to
# loggers that can see an alert URL: apprise's, and urllib3's (request paths, at DEBUG)
_MASKED_LOGGERS = (APPRISE_LOGGER, "urllib3.connectionpool")
_MIN_SECRET_CHARS = 6  # shorter URL fragments ("hook", "json") are left readable


def _secret_fragments(url: str) -> set[str]:
    """The parts of an apprise URL that may be credentials: the URL itself, user, password,
    a dotless host (``slack://<token>/...``), path segments and query values."""
    fragments = {url}
    try:
        parts = urlsplit(url)
        candidates = [parts.username, parts.password,
                      parts.hostname if parts.hostname and "." not in parts.hostname else None,
                      *parts.path.split("/"), *(value for _, value in parse_qsl(parts.query))]
    except ValueError:
        return fragments
    for candidate in candidates:
        if candidate and len(candidate) >= _MIN_SECRET_CHARS:
            fragments.update({candidate, unquote(candidate)})
    return fragments


class _MaskAlertSecrets(logging.Filter):
    """Masks the fragments of every alert URL used in this process in apprise's records."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._fragments: tuple[str, ...] = ()

    def add(self, url: str) -> None:
        with self._lock:
            merged = set(self._fragments) | _secret_fragments(url)
            self._fragments = tuple(sorted(merged, key=len, reverse=True))  # longest first

    def filter(self, record: logging.LogRecord) -> bool:
        fragments = self._fragments
        if not fragments:
            return True
        message = record.getMessage()
        masked = message
        for fragment in fragments:
            masked = masked.replace(fragment, "***")
        if masked != message:
            record.msg, record.args = masked, None
        return True


_mask = _MaskAlertSecrets()


def _guard_apprise_logging(urls: Sequence[str]) -> None:
    """Keep apprise's logger above DEBUG and mask these URLs in whatever is still logged."""
    for url in urls:
        _mask.add(url)
    apprise_logger = logging.getLogger(APPRISE_LOGGER)
    if apprise_logger.getEffectiveLevel() < logging.INFO:
        apprise_logger.setLevel(logging.INFO)
    for name in _MASKED_LOGGERS:
        masked = logging.getLogger(name)
        if _mask not in masked.filters:
            masked.addFilter(_mask)


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

    secrets = [url.get_secret_value() if isinstance(url, SecretStr) else str(url) for url in urls]
    _guard_apprise_logging(secrets)
    failed: list[int] = []
    delivered = 0
    for position, secret in enumerate(secrets):
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
