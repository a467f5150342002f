"""The Prefect tasks: thin wrappers around the library."""

import mlops_onprem  # noqa: F401  (the kit's process defaults before Prefect starts)
