"""The Prefect flows (wiring only)."""

import mlops_onprem  # noqa: F401  (the kit's process defaults before Prefect starts)
