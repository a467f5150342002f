"""The conditional-write conformance probe of an S3 endpoint, and its cached per-endpoint verdict.

Compare-and-swap pointers (:mod:`mlops_onprem.store.s3_cas`) rely on conditional PUTs
(``If-None-Match: *`` / ``If-Match: <etag>``). :meth:`S3ConformanceProbe.probe_conditional_writes`
checks what the server does with them: create-if-absent on a missing and an existing key,
``If-Match`` with a fresh and a stale ETag, ``If-Match`` on a missing key and a race of
concurrent creates. The :class:`ConformanceReport` is cached once per process for each
endpoint and bucket; pointers are refused, naming the failed checks, on a server that failed
any of them. ``mlops doctor`` shows the same probe as a table.

A refusal (412, 404, 501, ...) is an answer; a transport failure, an auth failure, a missing
bucket or a 5xx other than 501 raises (no verdict is cached from an outage).
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from minio.error import S3Error

from mlops_onprem.errors import StoreCapabilityError, StoreError, StoreUnavailableError
from mlops_onprem.keys import cas_probe_key
from mlops_onprem.store.base import sha256_bytes
from mlops_onprem.store.s3_client import META_HEADER, S3Connection
from mlops_onprem.store.s3_errors import AUTH_CODES, reply_excerpt

PROBE_RACE_WRITERS = 8  # concurrent create-if-absent writers of the race check


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


class S3ConformanceProbe(S3Connection):
    """The conditional-write probe on top of the S3 connection (plain operations: the store)."""

    def _probe_put(self, key: str, data: bytes, condition: dict[str, str]) -> _Answer:
        """One conditional PUT of the probe; a refusal is an answer, a transport failure raises."""
        headers = {"Content-Type": "application/json", META_HEADER: sha256_bytes(data), **condition}
        error: StoreError | None = None
        try:
            result = self._cas_client._put_object(self.bucket, key, data, headers=headers)
        except S3Error as exc:
            status = getattr(exc.response, "status", None) or 0
            # no verdict from a broken request or a passing outage (501 is an answer: unsupported)
            if not (exc.code in AUTH_CODES or exc.code == "NoSuchBucket" or not exc.code
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
        (unreachable, auth, bucket missing) when the probe cannot run at all; after the
        endpoint stopped answering, the probe objects are left (harmless) rather than each
        delete waiting out another call budget.
        """
        self._ensure_bucket("probing conditional writes")
        token = uuid.uuid4().hex
        probe, missing, race = (cas_probe_key(f"{token}-{name}") for name in ("cas", "missing", "race"))

        def body(step: str) -> bytes:  # distinct bytes per write, so every write has its own ETag
            return json.dumps({"probe": step, "token": token}).encode()

        checks: list[ConformanceCheck] = []
        unavailable = False
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
        except StoreUnavailableError:
            unavailable = True  # deleting would wait out the call budget again, once per object
            raise
        finally:
            for key in () if unavailable else (probe, missing, race):
                try:
                    self.delete(key)
                except StoreUnavailableError:
                    break
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
