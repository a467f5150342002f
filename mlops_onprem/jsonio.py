"""Strict JSON for everything we store or publish: one conversion, one writer.

:func:`jsonable` turns results into plain JSON values: numpy scalars and arrays to Python,
timestamps to ISO text, tuples and sets to lists, mapping keys to strings, anything else to
``str``; NaN and ±Infinity become ``null`` (strict JSON has neither, and a reader such as a
browser's ``JSON.parse`` refuses them). :func:`dumps` writes with ``allow_nan=False``, so a
non-finite number that slipped through fails loudly instead of writing ``NaN``.
:func:`plain` is the same walk for display text: it keeps NaN and Infinity (``nan``, ``inf``).
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd


def _walk(value: Any, finite_only: bool) -> Any:
    if isinstance(value, dict):
        return {str(k): _walk(v, finite_only) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray):
        return [_walk(v, finite_only) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if finite_only and not math.isfinite(value) else value
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON values, NaN and ±Infinity as None (see the module docstring)."""
    return _walk(value, finite_only=True)


def plain(value: Any) -> Any:
    """``value`` with numpy and pandas scalars as Python values, non-finite floats kept: for
    display text, never for stored JSON."""
    return _walk(value, finite_only=False)


def dumps(value: Any, *, indent: int | None = None, sort_keys: bool = False) -> str:
    """Strict JSON text of :func:`jsonable` ``(value)`` (``allow_nan=False``)."""
    return json.dumps(jsonable(value), indent=indent, sort_keys=sort_keys, allow_nan=False)
