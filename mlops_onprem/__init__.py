"""mlops-onprem: the library behind the flows and tasks (no Prefect, no store client imports here)."""

from mlops_onprem import offline as _offline

_offline.disable_third_party_telemetry()

__version__ = "0.1.0"
