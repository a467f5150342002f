"""S3 store errors: sanitized reply excerpts and the translation of SDK/transport failures.

:func:`reply_excerpt` cuts a server reply down to a short excerpt safe for errors, logs and
reports: never request headers, credentials or signatures. :func:`translate_error` turns what
the ``minio`` SDK or urllib3 raised into the :mod:`mlops_onprem.errors` store family, naming the
operation, the key and the endpoint; :class:`CallBudgetExceeded` is the reason urllib3 reports
when a store call ran out of its time budget (``MLOPS_S3_CALL_TIMEOUT_S``, see
:mod:`mlops_onprem.store.s3_client`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import ParseError as XMLParseError

from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from pydantic import SecretStr
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from mlops_onprem.errors import (
    BucketMissingError,
    ObjectNotFoundError,
    PointerConflictError,
    StoreAuthError,
    StoreError,
    StoreUnavailableError,
)

AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
              "ExpiredToken", "AllAccessDisabled"}
_EXCERPT_CHARS = 160

# what a reply excerpt must never show: signing material, wherever a server pastes it
_SECRET_PATTERNS = [
    re.compile(r"AWS4-HMAC-SHA256[^\r\n]*", re.IGNORECASE),
    re.compile(r"Credential\s*=\s*[^,&\s<\"']*", re.IGNORECASE),
    re.compile(r"Signature\s*=\s*[^,&\s<\"']*", re.IGNORECASE),
    re.compile(r"SignedHeaders\s*=\s*[^,&\s<\"']*", re.IGNORECASE),
    re.compile(r"X-Amz-[A-Za-z-]+\s*[=:]\s*[^&\s<\"']*", re.IGNORECASE),
    re.compile(r"<(AWSAccessKeyId|SignatureProvided|StringToSign|StringToSignBytes|"
               r"CanonicalRequest|CanonicalRequestBytes)>.*?</\1>", re.IGNORECASE | re.DOTALL),
]
# "Name: value" lines (request or response headers echoed back) are dropped whole
_HEADER_LINE = re.compile(r"^\s*[A-Za-z0-9_-]{1,64}\s*:\s.*$", re.MULTILINE)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]{0,400}>")


def reply_excerpt(text: str | bytes | None, *, secrets: tuple[str, ...] = (),
                  limit: int = _EXCERPT_CHARS) -> str:
    """A short, sanitized excerpt of a server reply, safe for errors, logs and reports.

    Header-like lines (``Name: value``) are dropped, signing material (``Credential=``,
    ``Signature=``, ``AWS4-HMAC-SHA256 ...``, ``X-Amz-*``) and the given ``secrets`` are
    replaced by ``***``, an HTML page is reduced to its title, whitespace is collapsed and the
    result is cut to ``limit`` characters.
    """
    if not text:
        return ""
    if isinstance(text, bytes):
        text = text[: 64 * 1024].decode("utf-8", errors="replace")
    text = text[: 64 * 1024]
    title = _HTML_TITLE.search(text)
    if title and "<html" in text.lower():
        text = "HTML page titled " + title.group(1)
    text = _HEADER_LINE.sub(" ", text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub("***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _TAG.sub(" ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CallBudgetExceeded(Urllib3HTTPError):
    """One HTTP call of the store ran out of its time budget (connect, send, wait, retries).

    Raised by the budget-aware retry policy as the ``reason`` of urllib3's ``MaxRetryError``;
    it carries only the budget, the attempts and the last failure's type, never a URL or header.
    """

    def __init__(self, budget_s: float, attempts: int, last: str) -> None:
        self.budget_s = budget_s
        self.attempts = attempts
        self.last = last
        super().__init__(f"no answer within {budget_s:g} s ({attempts} attempt(s), last: {last})")


@dataclass(frozen=True)
class Endpoint:
    """What an error message may say about the store it came from (no credentials)."""

    endpoint: str  # scheme://host:port
    bucket: str
    retries: int
    budget_s: float
    # exact values an excerpt must never show (kept as SecretStr: no repr shows them)
    secrets: tuple[SecretStr, ...] = field(default=(), repr=False)

    @property
    def secret_values(self) -> tuple[str, ...]:
        return tuple(secret.get_secret_value() for secret in self.secrets)

    @property
    def location(self) -> str:
        return f"s3 bucket {self.bucket!r} at {self.endpoint}"


def translate_error(what: str, key: str | None, exc: Exception, at: Endpoint) -> StoreError | None:
    """Our error for an SDK/transport failure of ``what`` on ``key`` (None: not a store failure)."""
    target = f"{key!r} in {at.location}" if key else at.location
    if isinstance(exc, S3Error):
        code = exc.code or ""
        status = getattr(exc.response, "status", None)
        http = f"HTTP {status}" if status else "HTTP ?"
        if not code:
            excerpt = reply_excerpt(getattr(exc.response, "data", None), secrets=at.secret_values)
            return StoreError(
                f"{what} {target}: the endpoint did not answer like S3 ({http}, an XML reply "
                f"without an error code): is MLOPS_S3_ENDPOINT an S3 server? reply begins: {excerpt!r}"
            )
        if code in ("NoSuchKey", "NoSuchObject") or (code == "ResourceNotFound" and key):
            return ObjectNotFoundError(f"object {key!r} not found in {at.location}")
        if code == "NoSuchBucket":
            return BucketMissingError(f"bucket {at.bucket!r} does not exist at {at.endpoint}")
        if code in AUTH_CODES:
            return StoreAuthError(
                f"{what} {target} refused ({code}) with {http}: check MLOPS_S3_ACCESS_KEY / "
                "MLOPS_S3_SECRET_KEY and the user's policy"
            )
        if code == "PreconditionFailed":
            return PointerConflictError(f"{what} {target}: precondition failed ({http})")
        message = reply_excerpt(exc.message, secrets=at.secret_values)
        return StoreError(f"{what} {target} failed ({http}): {reply_excerpt(code)}: {message}")
    if isinstance(exc, ServerError):
        return StoreUnavailableError(
            f"{what} {target}: server error (HTTP {exc.status_code}) after {at.retries} retries"
        )
    if isinstance(exc, InvalidResponseError):
        body = getattr(exc, "_body", None)
        content_type = reply_excerpt(getattr(exc, "_content_type", None) or "no content type", limit=60)
        return StoreError(
            f"{what} {target}: the endpoint did not answer like S3 (HTTP "
            f"{getattr(exc, '_code', '?')}, {content_type}, {len(body or '')} characters, not an "
            f"S3 XML reply): is MLOPS_S3_ENDPOINT an S3 server? reply begins: "
            f"{reply_excerpt(body, secrets=at.secret_values)!r}"
        )
    if isinstance(exc, XMLParseError):
        return StoreError(
            f"{what} {target}: the endpoint did not answer like S3 (its XML reply does not "
            "parse): is MLOPS_S3_ENDPOINT an S3 server?"
        )
    if isinstance(exc, (Urllib3HTTPError, ConnectionError, TimeoutError)):  # not local disk
        reason = getattr(exc, "reason", None) or exc
        doing = f"{what} {key}" if key else what
        if isinstance(reason, CallBudgetExceeded):
            return StoreUnavailableError(
                f"store endpoint {at.endpoint} unreachable ({doing}): no answer within "
                f"MLOPS_S3_CALL_TIMEOUT_S = {reason.budget_s:g} s, the time budget of one store call "
                f"({reason.attempts} attempt(s), last: {reason.last})"
            )
        return StoreUnavailableError(
            f"store endpoint {at.endpoint} unreachable ({doing}) after {at.retries} retries: "
            f"{type(reason).__name__}"
        )
    if isinstance(exc, MinioException):
        return StoreError(
            f"{what} {target} failed: {type(exc).__name__}: "
            f"{reply_excerpt(str(exc), secrets=at.secret_values)}"
        )
    return None
