"""How a number reads in markdown reports, cards and artifacts: one rule for every table.

``None``, NaN and infinities are *missing* (a marker, never ``nan``); floats are shown with a
number of significant digits; anything else is ``str(value)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def format_number(value: Any, *, digits: int = 4, missing: str = "n/a") -> str:
    """``value`` as a table cell: ``missing`` for None / NaN / ±inf, floats (Python or numpy)
    to ``digits`` significant digits, anything else as ``str``."""
    if value is None:
        return missing
    if isinstance(value, float | np.floating):
        value = float(value)
        return f"{value:.{digits}g}" if math.isfinite(value) else missing
    return str(value)
