"""MinIO/S3 object store through the ``minio`` SDK. MinIO-first: nothing here is moto-specific.

Timeouts and bounded retries are configured on the HTTP client (the SDK's default is 300 s).
Compare-and-swap pointers use conditional PUTs (``If-None-Match: *`` / ``If-Match: <etag>``),
sent through the SDK's low-level PUT because ``put_object`` cannot send them. The server's
support is probed (:meth:`S3Store.conditional_write_conformance`: create-if-absent, fresh and
stale ``If-Match``, ``If-Match`` on a missing key, a concurrent create race) once per process
for each endpoint and bucket; pointers are refused, naming the failed checks, on a server that
failed any of them. ``mlops doctor`` shows the same probe as a table.

A conditional PUT is never retried by the HTTP layer (only failed connects, where nothing was
sent): a write that committed but lost its response would come back as 412 and be reported as
a lost race. Each pointer write carries a writer nonce in user metadata (``x-amz-meta-`` +
``WRITER_META``; the JSON document is unchanged); after a 412 or a transport error the pointer
is re-read, and if it holds this write's nonce the write is reported as won.

Errors carry the HTTP status, the S3 error code and a bounded, sanitized excerpt of the reply
(:func:`reply_excerpt`): never request headers, credentials or signatures.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from xml.etree.ElementTree import ParseError as XMLParseError

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.util import Retry, Timeout

from mlops_onprem.errors import (
    BucketMissingError,
    IntegrityError,
    ObjectNotFoundError,
    PointerConflictError,
    StoreAuthError,
    StoreCapabilityError,
    StoreError,
    StoreUnavailableError,
)
from mlops_onprem.keys import cas_probe_key, validate_key, validate_prefix
from mlops_onprem.settings import Settings
from mlops_onprem.store.base import (
    SHA256_META,
    ObjectInfo,
    ObjectStore,
    Pointer,
    encode_pointer,
    sha256_bytes,
    sha256_file,
)

T = TypeVar("T")
_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
               "ExpiredToken", "AllAccessDisabled"}
_META_HEADER = "x-amz-meta-" + SHA256_META
WRITER_META = "mlops-writer"  # user metadata carrying the nonce of the pointer write that made it
_WRITER_HEADER = "x-amz-meta-" + WRITER_META
PROBE_RACE_WRITERS = 8  # concurrent create-if-absent writers of the race check
_EXCERPT_CHARS = 160
_CAS_BACKOFF_S = 0.2  # first pause before write_pointer retries a conditional PUT (then doubled)

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


@dataclass(frozen=True)
class ConformanceCheck:
    """One conditional-write check: what S3 does, what this server did, and whether that is safe."""

    name: str
    expected: str
    observed: str
    passed: bool


@dataclass(frozen=True)
class ConformanceReport:
    """The conditional-write checks of one endpoint and bucket, and the verdict for the registry."""

    endpoint: str
    bucket: str
    checks: tuple[ConformanceCheck, ...]

    @property
    def safe(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def verdict(self) -> str:
        return "registry safe" if self.safe else "refuse"

    @property
    def failed(self) -> tuple[ConformanceCheck, ...]:
        return tuple(check for check in self.checks if not check.passed)

    def finding(self) -> str:
        """One line naming each failed check, what S3 does and what this server did."""
        if self.safe:
            return f"all {len(self.checks)} conditional-write checks passed"
        return "; ".join(f"{check.name}: expected {check.expected}, server did {check.observed}"
                         for check in self.failed)

    def as_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "bucket": self.bucket, "verdict": self.verdict,
                "checks": [{"name": c.name, "expected": c.expected, "observed": c.observed,
                            "passed": c.passed} for c in self.checks]}


# one probe per process for each (endpoint, bucket): every store on it shares the verdict
_CONFORMANCE: dict[tuple[str, str], ConformanceReport] = {}
_CONFORMANCE_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Answer:
    """What the server answered to one probe PUT: HTTP status, S3 error code, ETag."""

    status: int
    code: str = ""
    etag: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def describe(self, success: str) -> str:
        return f"{self.status} {success}" if self.ok else f"{self.status} {self.code or 'no error code'}"


class S3Store(ObjectStore):
    """An :class:`ObjectStore` on MinIO or any S3-compatible server."""

    def __init__(self, settings: Settings) -> None:
        if settings.s3_endpoint is None:
            raise StoreError("S3Store needs MLOPS_S3_ENDPOINT (host:port)")
        if settings.s3_access_key is None or settings.s3_secret_key is None:
            raise StoreAuthError(
                f"S3 endpoint {settings.s3_endpoint} is configured but credentials are missing: "
                "set MLOPS_S3_ACCESS_KEY and MLOPS_S3_SECRET_KEY"
            )
        scheme = "https" if settings.s3_secure else "http"
        self.endpoint = f"{scheme}://{settings.s3_endpoint}"
        self.bucket = settings.bucket
        self.location = f"s3 bucket {self.bucket!r} at {self.endpoint}"
        self._create_bucket = settings.s3_create_bucket
        self._retries = settings.s3_max_retries
        self._part_size = settings.s3_part_size_mib * 1024 * 1024
        def pool(retries: Retry) -> urllib3.PoolManager:
            return urllib3.PoolManager(
                timeout=Timeout(connect=settings.s3_connect_timeout_s, read=settings.s3_read_timeout_s),
                maxsize=16,
                cert_reqs="CERT_REQUIRED" if settings.s3_cert_check else "CERT_NONE",
                ca_certs=str(settings.s3_ca_file) if settings.s3_ca_file else certifi.where(),
                retries=retries,
            )

        def client(http: urllib3.PoolManager) -> Minio:
            return Minio(
                settings.s3_endpoint,  # type: ignore[arg-type]
                access_key=settings.s3_access_key.get_secret_value(),  # type: ignore[union-attr]
                secret_key=settings.s3_secret_key.get_secret_value(),  # type: ignore[union-attr]
                secure=settings.s3_secure,
                region=settings.s3_region,
                http_client=http,
                cert_check=settings.s3_cert_check,
            )

        self._client = client(pool(Retry(
            total=settings.s3_max_retries, connect=settings.s3_max_retries,
            read=settings.s3_max_retries, backoff_factor=0.2,
            status_forcelist=[500, 502, 503, 504], raise_on_status=False,
        )))
        # conditional PUTs: only a failed connect (nothing sent) is retried by the HTTP layer;
        # write_pointer retries itself, re-reading the pointer's writer nonce in between
        self._cas_client = client(pool(Retry(
            total=settings.s3_max_retries, connect=settings.s3_max_retries, read=0, status=0,
            other=0, redirect=0, raise_on_status=False,
        )))
        # exact values an excerpt must never show, whatever a server pastes into its reply
        self._secrets = (settings.s3_access_key, settings.s3_secret_key)
        self._bucket_ready = False

    # --- error translation ------------------------------------------------------------------
    @property
    def _secret_values(self) -> tuple[str, ...]:
        return tuple(secret.get_secret_value() for secret in self._secrets if secret is not None)

    def _call(self, what: str, key: str | None, operation: Callable[[], T]) -> T:
        """Run one SDK call, translating its failures into our error families.

        The error is raised outside the ``except`` block, so neither its message nor its
        ``__context__`` carries the SDK's exception (which may hold the raw reply).
        """
        try:
            return operation()
        except Exception as exc:  # noqa: BLE001 (translated below; anything unknown is re-raised)
            error = self._translate(what, key, exc)
            if error is None:
                raise
        raise error

    def _translate(self, what: str, key: str | None, exc: Exception) -> StoreError | None:
        """Our error for an SDK/transport failure (None: not a store failure, re-raise it)."""
        target = f"{key!r} in {self.location}" if key else self.location
        if isinstance(exc, S3Error):
            code = exc.code or ""
            status = getattr(exc.response, "status", None)
            http = f"HTTP {status}" if status else "HTTP ?"
            if not code:
                excerpt = reply_excerpt(getattr(exc.response, "data", None), secrets=self._secret_values)
                return StoreError(
                    f"{what} {target}: the endpoint did not answer like S3 ({http}, an XML reply "
                    f"without an error code): is MLOPS_S3_ENDPOINT an S3 server? reply begins: {excerpt!r}"
                )
            if code in ("NoSuchKey", "NoSuchObject") or (code == "ResourceNotFound" and key):
                return ObjectNotFoundError(f"object {key!r} not found in {self.location}")
            if code == "NoSuchBucket":
                return BucketMissingError(f"bucket {self.bucket!r} does not exist at {self.endpoint}")
            if code in _AUTH_CODES:
                return StoreAuthError(
                    f"{what} {target} refused ({code}) with {http}: check MLOPS_S3_ACCESS_KEY / "
                    "MLOPS_S3_SECRET_KEY and the user's policy"
                )
            if code == "PreconditionFailed":
                return PointerConflictError(f"{what} {target}: precondition failed ({http})")
            message = reply_excerpt(exc.message, secrets=self._secret_values)
            return StoreError(f"{what} {target} failed ({http}): {reply_excerpt(code)}: {message}")
        if isinstance(exc, ServerError):
            return StoreUnavailableError(
                f"{what} {target}: server error (HTTP {exc.status_code}) after {self._retries} retries"
            )
        if isinstance(exc, InvalidResponseError):
            body = getattr(exc, "_body", None)
            content_type = reply_excerpt(getattr(exc, "_content_type", None) or "no content type",
                                         limit=60)
            return StoreError(
                f"{what} {target}: the endpoint did not answer like S3 (HTTP "
                f"{getattr(exc, '_code', '?')}, {content_type}, {len(body or '')} characters, not an "
                f"S3 XML reply): is MLOPS_S3_ENDPOINT an S3 server? reply begins: "
                f"{reply_excerpt(body, secrets=self._secret_values)!r}"
            )
        if isinstance(exc, XMLParseError):
            return StoreError(
                f"{what} {target}: the endpoint did not answer like S3 (its XML reply does not "
                "parse): is MLOPS_S3_ENDPOINT an S3 server?"
            )
        if isinstance(exc, (Urllib3HTTPError, ConnectionError, TimeoutError)):  # not local disk
            reason = getattr(exc, "reason", None) or exc
            return StoreUnavailableError(
                f"store endpoint {self.endpoint} unreachable ({what} {key or ''}) after "
                f"{self._retries} retries: {type(reason).__name__}"
            )
        if isinstance(exc, MinioException):
            return StoreError(
                f"{what} {target} failed: {type(exc).__name__}: "
                f"{reply_excerpt(str(exc), secrets=self._secret_values)}"
            )
        return None

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        exists = self._call("checking bucket", None, lambda: self._client.bucket_exists(self.bucket))
        if not exists:
            if not self._create_bucket:
                raise BucketMissingError(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint} and "
                    "MLOPS_S3_CREATE_BUCKET is false: create it or allow creation"
                )
            try:
                self._call("creating bucket", None, lambda: self._client.make_bucket(self.bucket))
            except StoreError as exc:
                if "BucketAlreadyOwnedByYou" not in str(exc) and "BucketAlreadyExists" not in str(exc):
                    raise
        self._bucket_ready = True

    def _info_from_stat(self, key: str, stat: Any) -> ObjectInfo:
        meta = {k.lower(): v for k, v in (stat.metadata or {}).items()}
        user_meta = {k[len("x-amz-meta-"):]: v for k, v in meta.items() if k.startswith("x-amz-meta-")}
        if "content-type" in meta:
            user_meta["content-type"] = meta["content-type"]
        return ObjectInfo(
            key=key, size=int(stat.size or 0), etag=(stat.etag or "").strip('"'),
            sha256=user_meta.get(SHA256_META), last_modified=stat.last_modified, metadata=user_meta,
        )

    # --- interface ------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream",
                  metadata: dict[str, str] | None = None) -> ObjectInfo:
        validate_key(key)
        self._ensure_bucket()
        sha = sha256_bytes(data)
        user_meta = {**(metadata or {}), SHA256_META: sha}
        result = self._call("writing", key, lambda: self._client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type,
            metadata=user_meta, part_size=self._part_size,
        ))
        return ObjectInfo(key=key, size=len(data), etag=result.etag or "", sha256=sha,
                          metadata={**user_meta, "content-type": content_type})

    def get_bytes(self, key: str, *, verify: bool = True) -> bytes:
        validate_key(key)
        self._ensure_bucket()

        def read() -> tuple[bytes, str | None]:
            response = self._client.get_object(self.bucket, key)
            try:
                return response.read(), response.headers.get(_META_HEADER)
            finally:
                response.close()
                response.release_conn()

        data, expected = self._call("reading", key, read)
        if verify and expected and sha256_bytes(data) != expected:
            raise IntegrityError(
                f"object {key!r} in {self.location} does not match its recorded SHA-256 "
                f"{expected[:12]}...: the stored bytes were altered or truncated"
            )
        return data

    def put_file(self, key: str, path: Path, *, content_type: str = "application/octet-stream",
                 metadata: dict[str, str] | None = None) -> ObjectInfo:
        validate_key(key)
        source = Path(path)
        if not source.is_file():
            raise StoreError(f"cannot upload {source} to {key!r}: not a file")
        self._ensure_bucket()
        sha = sha256_file(source)
        user_meta = {**(metadata or {}), SHA256_META: sha}
        result = self._call("uploading", key, lambda: self._client.fput_object(
            self.bucket, key, str(source), content_type=content_type, metadata=user_meta,
            part_size=self._part_size,
        ))
        return ObjectInfo(key=key, size=source.stat().st_size, etag=result.etag or "", sha256=sha,
                          metadata={**user_meta, "content-type": content_type})

    def get_file(self, key: str, path: Path, *, verify: bool = True) -> ObjectInfo:
        validate_key(key)
        self._ensure_bucket()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            stat = self._call("downloading", key, lambda: self._client.fget_object(
                self.bucket, key, str(tmp)))
            info = self._info_from_stat(key, stat)
            if verify and info.sha256 and sha256_file(tmp) != info.sha256:
                raise IntegrityError(
                    f"object {key!r} in {self.location} does not match its recorded SHA-256"
                )
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        return info

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        self._ensure_bucket()
        objects = self._call("listing", prefix or "/", lambda: [
            obj for obj in self._client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
            if not obj.is_dir
        ])
        return iter(sorted(
            (ObjectInfo(key=o.object_name, size=int(o.size or 0), etag=(o.etag or "").strip('"'),
                        last_modified=o.last_modified) for o in objects),
            key=lambda info: info.key,
        ))

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        self._ensure_bucket()
        stat = self._call("inspecting", key, lambda: self._client.stat_object(self.bucket, key))
        return self._info_from_stat(key, stat)

    def delete(self, key: str) -> None:
        validate_key(key)
        self._ensure_bucket()
        self._call("deleting", key, lambda: self._client.remove_object(self.bucket, key))

    def copy(self, source_key: str, target_key: str) -> ObjectInfo:
        """Server-side copy: the bytes never travel through this process."""
        from minio.commonconfig import CopySource

        validate_key(source_key)
        validate_key(target_key)
        self._ensure_bucket()
        self._call("copying", source_key, lambda: self._client.copy_object(
            self.bucket, target_key, CopySource(self.bucket, source_key)))
        return self.stat(target_key)

    # --- compare-and-swap pointers --------------------------------------------------------
    def _read_pointer_and_writer(self, key: str) -> tuple[Pointer | None, str | None]:
        """The pointer at ``key`` and the nonce of the write that made it (None if absent)."""

        def read() -> tuple[bytes, str, str | None]:
            response = self._client.get_object(self.bucket, key)
            try:
                return (response.read(), response.headers.get("etag", "").strip('"'),
                        response.headers.get(_WRITER_HEADER))
            finally:
                response.close()
                response.release_conn()

        try:
            data, etag, writer = self._call("reading pointer", key, read)
        except ObjectNotFoundError:
            return None, None
        return Pointer(key=key, value=json.loads(data), token=etag), writer

    def read_pointer(self, key: str) -> Pointer | None:
        validate_key(key)
        self._ensure_bucket()
        return self._read_pointer_and_writer(key)[0]

    def _conditional_put(self, key: str, data: bytes, condition: dict[str, str],
                         writer: str | None = None) -> str:
        """One conditional PUT, never retried by the HTTP layer once its request was sent."""
        headers = {
            "Content-Type": "application/json",
            _META_HEADER: sha256_bytes(data),
            **({_WRITER_HEADER: writer} if writer else {}),
            **condition,
        }
        result = self._call("conditional write of", key, lambda: self._cas_client._put_object(
            self.bucket, key, data, headers=headers))
        return (result.etag or "").strip('"')

    def _probe_put(self, key: str, data: bytes, condition: dict[str, str]) -> _Answer:
        """One conditional PUT of the probe; a refusal is an answer, a transport failure raises."""
        headers = {"Content-Type": "application/json", _META_HEADER: sha256_bytes(data), **condition}
        error: StoreError | None = None
        try:
            result = self._cas_client._put_object(self.bucket, key, data, headers=headers)
        except S3Error as exc:
            status = getattr(exc.response, "status", None) or 0
            # no verdict from a broken request or a passing outage (501 is an answer: unsupported)
            if not (exc.code in _AUTH_CODES or exc.code == "NoSuchBucket" or not exc.code
                    or (status >= 500 and status != 501)):
                return _Answer(status=status, code=reply_excerpt(exc.code, limit=60))
            error = self._translate("probing conditional writes with", key, exc) or StoreError(
                f"probing conditional writes with {key!r} in {self.location}: HTTP {status} "
                f"{reply_excerpt(exc.code, limit=60)}")
        except Exception as exc:  # noqa: BLE001 (translated; anything unknown is re-raised)
            error = self._translate("probing conditional writes with", key, exc)
            if error is None:
                raise
        if error is not None:  # raised outside the except blocks: no SDK reply in __context__
            raise error
        return _Answer(status=200, etag=(result.etag or "").strip('"'))

    def _probe_body(self, key: str) -> bytes:
        return self._call("reading probe", key, lambda: self._read_probe(key))

    def _read_probe(self, key: str) -> bytes:
        response = self._client.get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def _probe_race(self, key: str, writers: int) -> ConformanceCheck:
        """``writers`` threads create ``key`` with ``If-None-Match: *`` at once: one must win."""
        barrier = threading.Barrier(writers)
        answers: list[_Answer | StoreError | None] = [None] * writers

        def write(index: int) -> None:
            body = json.dumps({"probe": "race", "writer": index}).encode()
            barrier.wait(timeout=30)
            try:
                answers[index] = self._probe_put(key, body, {"If-None-Match": "*"})
            except StoreError as exc:
                answers[index] = exc

        threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        errors = [a for a in answers if not isinstance(a, _Answer)]
        if errors:
            raise errors[0] if isinstance(errors[0], StoreError) else StoreUnavailableError(
                f"conditional-write race probe on {self.location}: a writer did not finish")
        winners = [i for i, a in enumerate(answers) if isinstance(a, _Answer) and a.ok]
        refusals = sorted({a.describe("") for a in answers if isinstance(a, _Answer) and not a.ok})
        observed = f"{len(winners)} of {writers} succeeded" + (
            f", the others got {', '.join(refusals)}" if refusals else "")
        passed = len(winners) == 1
        if passed:  # the stored object must be the winner's, not a loser's that slipped through
            stored = json.loads(self._probe_body(key))
            if stored.get("writer") != winners[0]:
                observed += f", but the object holds writer {stored.get('writer')}'s bytes"
                passed = False
        return ConformanceCheck(f"concurrent create race ({writers} writers)",
                                "exactly 1 succeeds, the others 412/409", observed, passed)

    def probe_conditional_writes(self, *, writers: int = PROBE_RACE_WRITERS) -> ConformanceReport:
        """Probe, now, what the server does with conditional PUTs, and cache the report.

        Runs create-if-absent on a missing and an existing key, ``If-Match`` with a fresh and a
        stale ETag, ``If-Match`` on a missing key and a race of ``writers`` concurrent creates,
        all under ``control/cas-probe/``, and deletes the probe objects. Returns the report
        (also cached for this endpoint and bucket, process-wide). Raises :class:`StoreError`
        (unreachable, auth, bucket missing) when the probe cannot run at all.
        """
        self._ensure_bucket()
        token = uuid.uuid4().hex
        probe, missing, race = (cas_probe_key(f"{token}-{name}") for name in ("cas", "missing", "race"))

        def body(step: str) -> bytes:  # distinct bytes per write, so every write has its own ETag
            return json.dumps({"probe": step, "token": token}).encode()

        checks: list[ConformanceCheck] = []
        try:
            created = self._probe_put(probe, body("create"), {"If-None-Match": "*"})
            checks.append(ConformanceCheck("create-if-absent, missing key", "200 created",
                                           created.describe("created"), created.ok))
            again = self._probe_put(probe, body("create-again"), {"If-None-Match": "*"})
            checks.append(ConformanceCheck("create-if-absent, existing key", "412",
                                           again.describe("overwrote the object"),
                                           again.status == 412))
            if not created.ok:  # the update checks still need an object to work on
                created = _Answer(status=200, etag=self.put_bytes(probe, body("create")).etag.strip('"'))
            current = self.stat(probe).etag
            fresh = self._probe_put(probe, body("update"), {"If-Match": f'"{current}"'})
            checks.append(ConformanceCheck("update-if-match, fresh etag", "200 updated",
                                           fresh.describe("updated"), fresh.ok))
            stale_etag = created.etag or "0123456789abcdef0123456789abcdef"
            stale = self._probe_put(probe, body("stale"), {"If-Match": f'"{stale_etag}"'})
            checks.append(ConformanceCheck("update-if-match, stale etag", "412",
                                           stale.describe("overwrote the object"),
                                           stale.status == 412))
            absent = self._probe_put(missing, body("missing"),
                                     {"If-Match": '"0123456789abcdef0123456789abcdef"'})
            checks.append(ConformanceCheck("if-match, missing key", "404 or 412",
                                           absent.describe("created the object"),
                                           absent.status in (404, 412)))
            checks.append(self._probe_race(race, writers))
        finally:
            for key in (probe, missing, race):
                try:
                    self.delete(key)
                except StoreError:
                    pass  # a leftover probe is harmless; never mask the real outcome
        report = ConformanceReport(endpoint=self.endpoint, bucket=self.bucket, checks=tuple(checks))
        with _CONFORMANCE_LOCK:
            _CONFORMANCE[(self.endpoint, self.bucket)] = report
        return report

    def conditional_write_conformance(self) -> ConformanceReport:
        """The cached probe report of this endpoint and bucket, probing once per process."""
        with _CONFORMANCE_LOCK:
            report = _CONFORMANCE.get((self.endpoint, self.bucket))
        return report if report is not None else self.probe_conditional_writes()

    def _require_conditional_writes(self) -> None:
        """Refuse to move pointers on a server that failed the conformance probe."""
        report = self.conditional_write_conformance()
        if not report.safe:
            raise StoreCapabilityError(
                f"{self.location} failed the conditional-write probe (verdict: refuse): "
                f"{report.finding()}. Pointer compare-and-swap would silently lose races, so "
                "pointers are not moved here; run `mlops doctor` for the full table and use a "
                "server that passes every check."
            )

    def write_pointer(self, key: str, value: dict[str, Any], *, expected_token: str | None) -> Pointer:
        """Compare-and-swap through a conditional PUT that cannot misreport its outcome.

        The write carries a fresh nonce (user metadata, the document is unchanged). After a
        412/404, or a transport or server error (the write may have committed with its
        response lost), the pointer is re-read: if it holds this write's nonce the write won.
        A transport error with the pointer not (yet) ours is retried up to
        ``s3_max_retries`` times, still conditionally, so it is never applied twice.
        Raises :class:`PointerConflictError` when another writer won,
        :class:`StoreUnavailableError` when the outcome could not be learned, and
        :class:`StoreCapabilityError` (naming the failed checks) when the server failed the
        conditional-write probe (:meth:`conditional_write_conformance`).
        """
        validate_key(key)
        self._ensure_bucket()
        self._require_conditional_writes()
        data = encode_pointer(value)
        writer = uuid.uuid4().hex
        condition = {"If-None-Match": "*"} if expected_token is None else {"If-Match": f'"{expected_token}"'}
        attempt = 0
        while True:
            try:
                etag = self._conditional_put(key, data, condition, writer)
                return Pointer(key=key, value=json.loads(data), token=etag)
            except (PointerConflictError, ObjectNotFoundError) as exc:
                refused: StoreError = exc
            except StoreUnavailableError as exc:
                refused = exc
            current, current_writer = self._read_pointer_and_writer(key)
            if current is not None and current_writer == writer:
                return current  # committed; only its response was lost
            if isinstance(refused, StoreUnavailableError):
                if attempt < self._retries:
                    attempt += 1
                    time.sleep(_CAS_BACKOFF_S * 2 ** (attempt - 1))
                    continue
                raise StoreUnavailableError(
                    f"conditional write of pointer {key!r} in {self.location} did not complete "
                    f"after {attempt + 1} attempt(s) and the pointer does not hold it: {refused}"
                ) from None
            if current is None and expected_token is not None:
                raise PointerConflictError(
                    f"pointer {key!r} in {self.location} was deleted since it was read"
                ) from None
            state = "already exists" if expected_token is None else "changed"
            raise PointerConflictError(
                f"pointer {key!r} in {self.location} {state} since it was read: "
                "another writer won the race; re-read it and decide again"
            ) from None
