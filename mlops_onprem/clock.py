"""UTC time as we store and parse it: one place for "now", ISO-8601 text and compact stamps.

Every timestamp we write is UTC with a ``Z`` suffix (``2026-11-02T08:30:00.123456Z``); parsing
accepts ``Z`` or any offset and returns an aware UTC datetime. Compact stamps
(``20261102T083000Z``) go into ids and keys, where they sort as text.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def iso_utc(moment: datetime | None = None, *, timespec: str = "auto") -> str:
    """``moment`` (default: now) as ISO-8601 UTC text with a ``Z`` suffix; ``timespec`` as in
    :meth:`datetime.isoformat` ("microseconds" always writes the fraction)."""
    return (moment or utc_now()).astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def utc_now_iso() -> str:
    """Now as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always with microseconds: the stamps of cards,
    decisions and pointers, which sort as text)."""
    return iso_utc(timespec="microseconds")


def parse_utc(text: str) -> datetime:
    """ISO-8601 (``Z`` or offset; naive text is read as UTC) to an aware UTC datetime.

    Raises ValueError quoting the text when it is not ISO-8601."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def compact_utc(moment: datetime | None = None, *, microseconds: bool = False) -> str:
    """``moment`` (default: now) as ``YYYYMMDDTHHMMSSZ`` (with ``ffffff`` before the ``Z`` when
    ``microseconds``): for ids and keys."""
    return (moment or utc_now()).astimezone(UTC).strftime(
        "%Y%m%dT%H%M%S%fZ" if microseconds else "%Y%m%dT%H%M%SZ")
