"""The S3 store's connection: HTTP clients with a time budget per call, and SDK-call translation.

:class:`S3Connection` builds two ``minio`` clients from the settings (one for plain requests,
one for conditional PUTs, which the HTTP layer never retries once sent), runs SDK calls with
their failures translated (:mod:`mlops_onprem.store.s3_errors`) and checks the bucket once.

**Time budget per store call** (``MLOPS_S3_CALL_TIMEOUT_S``). Without it, an endpoint that
accepts connections and never answers costs (1 + retries) x read timeout per call (4 minutes
with the defaults). Each HTTP call the SDK makes gets a deadline ``now + budget`` when it
enters the pool manager (:class:`_BudgetPoolManager`), and the deadline bounds all of it:

* every attempt's connect and read timeouts are cut to what is left of the budget, with
  urllib3's ``Timeout(total=...)`` so connecting, sending the request and waiting for the
  answer share it (:class:`_BudgetTimeout`, cloned per attempt);
* the retry policy (:class:`_BudgetRetry`) starts no retry that the remaining budget cannot
  hold after its backoff or ``Retry-After`` pause; it raises urllib3's ``MaxRetryError`` with
  :class:`~mlops_onprem.store.s3_errors.CallBudgetExceeded` as the reason instead.

This is deadline propagation inside urllib3, not a watchdog thread: nothing is left running
in the background after the error (a conditional PUT abandoned mid-flight by a watchdog could
still commit later). Once an answer's body flows (a download), each socket read waits at most
what was left of the budget when the answer began, so a large object that keeps arriving is
not cut off. A multipart upload is one HTTP call per part (``MLOPS_S3_PART_SIZE_MIB``), each
with its own budget: over a slow link, raise the budget with the part size. A store method
on a hung endpoint therefore fails after one budget (plus at most 0.1 s), naming the
endpoint, the operation and the key; ``write_pointer`` re-reads once to learn its outcome,
so it can take two budgets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import certifi
import urllib3
from minio import Minio
from urllib3.exceptions import MaxRetryError
from urllib3.response import BaseHTTPResponse
from urllib3.util import Retry, Timeout

from mlops_onprem.errors import BucketMissingError, StoreAuthError, StoreError
from mlops_onprem.settings import Settings
from mlops_onprem.store.base import SHA256_META, ObjectInfo, ObjectStore
from mlops_onprem.store.s3_errors import CallBudgetExceeded, Endpoint, translate_error

T = TypeVar("T")
META_HEADER = "x-amz-meta-" + SHA256_META
MIN_ATTEMPT_S = 0.1  # an attempt is not started with less budget left than this


class _BudgetTimeout(Timeout):
    """Connect/read timeouts whose every per-attempt copy is cut to what is left of a deadline."""

    def __init__(self, connect_s: float, read_s: float, deadline: float) -> None:
        super().__init__(connect=connect_s, read=read_s)
        self._connect_s, self._read_s, self._deadline = connect_s, read_s, deadline

    def clone(self) -> Timeout:  # urllib3 clones the timeout for every attempt
        left = max(self._deadline - time.monotonic(), MIN_ATTEMPT_S)
        return Timeout(connect=min(self._connect_s, left), read=min(self._read_s, left), total=left)


class _BudgetRetry(Retry):
    """urllib3's retry policy, plus a deadline: no retry the remaining budget cannot hold."""

    deadline: float | None = None
    budget_s: float = 0.0

    def new(self, **kw: Any) -> _BudgetRetry:
        retry = super().new(**kw)
        retry.deadline, retry.budget_s = self.deadline, self.budget_s
        return retry

    def with_deadline(self, budget_s: float) -> _BudgetRetry:
        retry = self.new()
        retry.deadline, retry.budget_s = time.monotonic() + budget_s, budget_s
        return retry

    def increment(self, method: str | None = None, url: str | None = None,
                  response: BaseHTTPResponse | None = None, error: Exception | None = None,
                  _pool: Any = None, _stacktrace: Any = None) -> _BudgetRetry:
        self._check_budget(0.0, url, response, error, _pool)  # spent: say so, whatever the counts
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        pause = retry.get_backoff_time()
        if response is not None and self.respect_retry_after_header:
            pause = max(pause, self.get_retry_after(response) or 0.0)
        retry._check_budget(pause, url, response, error, _pool)
        return retry

    def _check_budget(self, pause: float, url: str | None, response: BaseHTTPResponse | None,
                      error: Exception | None, pool: Any) -> None:
        if self.deadline is None or self.deadline - time.monotonic() >= pause + MIN_ATTEMPT_S:
            return
        last = type(error).__name__ if error is not None else (
            f"HTTP {response.status}" if response is not None else "no answer")
        reason = CallBudgetExceeded(self.budget_s, len(self.history) + 1, last)
        raise MaxRetryError(pool, url or "", reason) from reason


class _BudgetPoolManager(urllib3.PoolManager):
    """A pool manager that gives every HTTP call a deadline of ``budget_s`` from its start."""

    def __init__(self, *, budget_s: float, connect_s: float, read_s: float, retries: _BudgetRetry,
                 **kw: Any) -> None:
        super().__init__(timeout=Timeout(connect=connect_s, read=read_s), retries=retries, **kw)
        self._budget_s, self._connect_s, self._read_s, self._retry = budget_s, connect_s, read_s, retries

    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> BaseHTTPResponse:
        if "retries" not in kw:  # a redirect comes back with its call's retries and timeout
            retry = self._retry.with_deadline(self._budget_s)
            kw["retries"] = retry
            kw.setdefault("timeout", _BudgetTimeout(self._connect_s, self._read_s,
                                                    retry.deadline or 0.0))
        return super().urlopen(method, url, redirect=redirect, **kw)


class S3Connection(ObjectStore):
    """The clients, endpoint and bucket of an S3 store, and SDK calls with translated failures."""

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
        self._budget_s = settings.s3_call_timeout_s
        self._part_size = settings.s3_part_size_mib * 1024 * 1024
        # what an error may say about this store; the secrets only to scrub them from excerpts
        self._at = Endpoint(endpoint=self.endpoint, bucket=self.bucket, retries=self._retries,
                            budget_s=self._budget_s,
                            secrets=(settings.s3_access_key, settings.s3_secret_key))

        def client(retries: _BudgetRetry) -> Minio:
            http = _BudgetPoolManager(
                budget_s=settings.s3_call_timeout_s, connect_s=settings.s3_connect_timeout_s,
                read_s=settings.s3_read_timeout_s, retries=retries, maxsize=16,
                cert_reqs="CERT_REQUIRED" if settings.s3_cert_check else "CERT_NONE",
                ca_certs=str(settings.s3_ca_file) if settings.s3_ca_file else certifi.where(),
            )
            return Minio(
                settings.s3_endpoint,  # type: ignore[arg-type]
                access_key=settings.s3_access_key.get_secret_value(),  # type: ignore[union-attr]
                secret_key=settings.s3_secret_key.get_secret_value(),  # type: ignore[union-attr]
                secure=settings.s3_secure,
                region=settings.s3_region,
                http_client=http,
                cert_check=settings.s3_cert_check,
            )

        self._client = client(_BudgetRetry(
            total=settings.s3_max_retries, connect=settings.s3_max_retries,
            read=settings.s3_max_retries, backoff_factor=0.2,
            status_forcelist=[500, 502, 503, 504], raise_on_status=False,
        ))
        # conditional PUTs: only a failed connect (nothing sent) is retried by the HTTP layer;
        # write_pointer retries itself, re-reading the pointer's writer nonce in between
        self._cas_client = client(_BudgetRetry(
            total=settings.s3_max_retries, connect=settings.s3_max_retries, read=0, status=0,
            other=0, redirect=0, raise_on_status=False,
        ))
        self._bucket_ready = False

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
        return translate_error(what, key, exc, self._at)

    def _ensure_bucket(self, what: str = "", key: str | None = None) -> None:
        """Check (or create) the bucket once; ``what``/``key``: the operation it precedes."""
        if self._bucket_ready:
            return
        before = (f" before {what} {key!r}" if key else f" before {what}") if what else ""
        exists = self._call(f"checking bucket{before}", None, lambda: self._client.bucket_exists(self.bucket))
        if not exists:
            if not self._create_bucket:
                raise BucketMissingError(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint} and "
                    "MLOPS_S3_CREATE_BUCKET is false: create it or allow creation"
                )
            try:
                self._call(f"creating bucket{before}", None, lambda: self._client.make_bucket(self.bucket))
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
