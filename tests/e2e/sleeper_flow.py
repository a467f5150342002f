"""A flow that only waits: the e2e zombie test's victim (its process is killed while it runs)."""

from __future__ import annotations

import time

from prefect import flow


@flow(name="e2e-sleeper", log_prints=True)
def sleeper(seconds: float = 900.0) -> None:
    print("sleeping; kill me")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(1)
