"""Keep data in the building: switch off every third-party telemetry channel we know of.

Set as process-wide defaults before Prefect or Great Expectations read their settings;
an operator can still override each one explicitly in the environment.
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


def disable_third_party_telemetry() -> None:
    """Set every known telemetry switch to 'off' unless the operator set it already."""
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
