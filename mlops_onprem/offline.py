"""Process-wide defaults the kit sets before Prefect or Great Expectations read their settings
(``import mlops_onprem``, ``flows`` or ``tasks`` applies them), so ``python -m flows.<x>``, the
CLI and a user's own flow behave like ``make``; an operator can still override each one in the
environment:

- every third-party telemetry channel we know of: off (data stays in the building);
- the embedded (ephemeral) Prefect API server may take 120 s to start instead of Prefect's 20 s
  (a busy 2-core host takes longer, and the run then failed with "Timed out while attempting to
  connect to ephemeral Prefect API server").
"""

import os

# variable -> value that disables the channel
TELEMETRY_OFF: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # Prefect server usage analytics
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_EXPERIMENTS_LINEAGE_EVENTS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",  # Great Expectations usage statistics
    "DO_NOT_TRACK": "1",  # honoured by several libraries (e.g. Evidently)
    "EVIDENTLY_DISABLE_TELEMETRY": "1",
    "MPLBACKEND": "Agg",  # charts render headless
}


PREFECT_DEFAULTS: dict[str, str] = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def disable_third_party_telemetry() -> None:
    """Set every known telemetry switch to 'off' and the Prefect defaults above, unless the
    operator set them already."""
    for name, value in {**TELEMETRY_OFF, **PREFECT_DEFAULTS}.items():
        os.environ.setdefault(name, value)
