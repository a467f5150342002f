"""Infrastructure inventory for an on-prem rollout: what this host and its services offer.

Each check returns a :class:`Check`; ``run_checks`` runs them all and never raises, so one
missing piece does not hide the others. The conditional-write check also carries its
per-check table (:class:`~mlops_onprem.store.s3.ConformanceReport`), the same probe the
registry relies on before it moves a pointer.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_onprem import keys
from mlops_onprem.errors import MlopsError, StoreUnavailableError
from mlops_onprem.settings import Settings

if TYPE_CHECKING:
    from mlops_onprem.store.s3 import ConformanceReport

KEY_PACKAGES = ("prefect", "pandas", "pyarrow", "scikit-learn", "xgboost-cpu", "onnxruntime",
                "onnx", "great-expectations", "minio")
MIN_CORES = 2
MIN_RAM_GIB = 4.0
MIN_FREE_DISK_GIB = 2.0


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    conformance: ConformanceReport | None = None  # the conditional-write table, on that check
    unreachable: bool = False  # the endpoint did not answer within a call budget


def check_cpu() -> Check:
    cores = os.cpu_count() or 0
    status = Status.OK if cores >= MIN_CORES else Status.WARN
    return Check("cpu cores", status, f"{cores} (recommended >= {MIN_CORES})")


def check_memory() -> Check:
    import psutil

    total = psutil.virtual_memory().total / 2**30
    status = Status.OK if total >= MIN_RAM_GIB else Status.FAIL
    return Check("memory", status, f"{total:.1f} GiB total (need >= {MIN_RAM_GIB:.0f} GiB)")


def check_disk(data_dir: Path) -> Check:
    probe = Path(data_dir)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 2**30
    status = Status.OK if free >= MIN_FREE_DISK_GIB else Status.FAIL
    return Check("free disk", status,
                 f"{free:.1f} GiB free under {data_dir} (need >= {MIN_FREE_DISK_GIB:.0f} GiB)")


def check_python() -> Check:
    version = platform.python_version()
    status = Status.OK if sys.version_info[:2] == (3, 11) else Status.WARN
    return Check("python", status, f"{version} (tested on 3.11)")


def check_packages() -> Check:
    found, missing = [], []
    for name in KEY_PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return Check("packages", Status.FAIL, "missing: " + ", ".join(missing))
    return Check("packages", Status.OK, "; ".join(found))


def check_prefect_api() -> Check:
    """Reachability of the configured Prefect API, or ephemeral mode when none is set."""
    import httpx
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        return Check("prefect api", Status.OK,
                     "ephemeral mode (no PREFECT_API_URL: runs use a local database)")
    try:
        response = httpx.get(url.rstrip("/") + "/health", timeout=3.0)
    except httpx.HTTPError as exc:
        return Check("prefect api", Status.FAIL, f"{url} unreachable: {type(exc).__name__}")
    if response.status_code != 200:
        return Check("prefect api", Status.FAIL, f"{url}/health answered HTTP {response.status_code}")
    return Check("prefect api", Status.OK, f"{url} healthy")


def check_store(settings: Settings, probe_mib: int) -> Check:
    """Upload and download a ``probe_mib`` MiB object, report MB/s, and remove it."""
    from mlops_onprem.store import open_store

    try:
        store = open_store(settings)
    except MlopsError as exc:
        return Check("object store", Status.FAIL, str(exc))
    key = keys.doctor_probe_key(uuid.uuid4().hex)
    size = probe_mib * 2**20
    with tempfile.TemporaryDirectory(prefix="mlops-doctor-") as scratch:
        source = Path(scratch) / "probe.bin"
        source.write_bytes(os.urandom(size))
        try:
            started = time.perf_counter()
            store.put_file(key, source)
            put_s = time.perf_counter() - started
            started = time.perf_counter()
            store.get_file(key, Path(scratch) / "back.bin")
            get_s = time.perf_counter() - started
        except StoreUnavailableError as exc:
            # no clean-up delete: it would wait out another call budget on a hung endpoint
            return Check("object store", Status.FAIL, str(exc), unreachable=True)
        except MlopsError as exc:
            store_failure = Check("object store", Status.FAIL, str(exc))
        else:
            store_failure = None
        try:
            store.delete(key)
        except MlopsError:
            pass  # reported by the failure above if the store is down
        if store_failure is not None:
            return store_failure
    mb = size / 1e6
    return Check("object store", Status.OK,
                 f"{store.location}: {probe_mib} MiB probe up {mb / put_s:.0f} MB/s, "
                 f"down {mb / get_s:.0f} MB/s")


def check_conditional_writes(settings: Settings) -> Check:
    """Probe the S3 endpoint's conditional writes now (not the cached verdict) and judge it.

    OK with verdict "registry safe" when every check passed; FAIL with verdict "refuse" and
    the failed checks named otherwise (the registry then refuses to move pointers there).
    """
    name = "conditional writes"
    if not settings.uses_s3:
        return Check(name, Status.OK, "local directory store: no S3 conditional writes to probe")
    from mlops_onprem.store.s3 import S3Store

    try:
        report = S3Store(settings).probe_conditional_writes()
    except MlopsError as exc:
        return Check(name, Status.FAIL, f"probe could not run: {exc}")
    status = Status.OK if report.safe else Status.FAIL
    detail = f"verdict: {report.verdict}" + ("" if report.safe else
                                               f" (pointer moves are refused): {report.finding()}")
    return Check(name, status, detail, conformance=report)


def run_checks(settings: Settings, *, probe_mib: int = 64,
               prefect_check: Callable[[], Check] = check_prefect_api) -> list[Check]:
    """Run every check; a check that crashes is reported as FAIL instead of stopping the others."""
    results: list[Check] = []

    def conditional_writes() -> Check:
        if any(r.unreachable for r in results):  # one call budget per hung endpoint is enough
            return Check("conditional writes", Status.FAIL,
                         "not probed: the object store did not answer (see the object store check)")
        return check_conditional_writes(settings)

    checks: list[Callable[[], Check]] = [
        check_cpu, check_memory, lambda: check_disk(settings.data_dir), check_python,
        check_packages, prefect_check, lambda: check_store(settings, probe_mib), conditional_writes,
    ]
    for check in checks:
        try:
            results.append(check())
        except Exception as exc:  # noqa: BLE001 - an inventory must report, not crash
            results.append(Check(getattr(check, "__name__", "check"), Status.FAIL,
                                 f"{type(exc).__name__}: {exc}"))
    return results


def render_conformance(report: ConformanceReport) -> str:
    """The conditional-write table: one row per check, what S3 does, what the server did."""
    rows = [(c.name, c.expected, c.observed, "pass" if c.passed else "FAIL") for c in report.checks]
    headers = ("conditional write", "S3 answers", "server did", "result")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(values: tuple[str, ...]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([f"conditional writes at {report.endpoint}, bucket {report.bucket!r}",
                      line(headers), line(tuple("-" * w for w in widths)),
                      *(line(row) for row in rows), f"verdict: {report.verdict}"])


def render_table(results: list[Check]) -> str:
    """The checks as a table, followed by the conditional-write table when it was probed."""
    width = max(len(r.name) for r in results)
    lines = [f"{'check'.ljust(width)}  status  detail", f"{'-' * width}  ------  ------"]
    lines += [f"{r.name.ljust(width)}  {r.status.value.ljust(6)}  {r.detail}" for r in results]
    lines += ["\n" + render_conformance(r.conformance) for r in results if r.conformance is not None]
    return "\n".join(lines)
