"""Strict JSON (jsonio), UTC time (clock) and number cells (number_format): the shared helpers."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from mlops_onprem import clock, jsonio
from mlops_onprem.contracts import Task
from mlops_onprem.number_format import format_number


def test_jsonable_maps_nan_and_infinity_to_null_and_numpy_to_python():
    value = {"a": float("nan"), "b": np.float32("inf"), "c": (np.int64(3), -math.inf), 4: [np.nan]}
    assert jsonio.jsonable(value) == {"a": None, "b": None, "c": [3, None], "4": [None]}


def test_dumps_writes_strict_json_that_a_strict_reader_accepts():
    text = jsonio.dumps({"score": float("nan"), "task": Task.BINARY, "at": datetime(2026, 1, 2, tzinfo=UTC)})
    parsed = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in strict JSON"))
    assert parsed == {"score": None, "task": "binary_classification", "at": "2026-01-02T00:00:00+00:00"}


def test_plain_keeps_non_finite_values_for_display():
    assert jsonio.plain([np.float64("inf"), np.int32(2)]) == [math.inf, 2]


def test_iso_utc_round_trips_through_parse_utc_and_stamps_sort_as_text():
    moment = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
    assert clock.iso_utc(moment) == "2026-11-02T08:30:00Z"
    assert clock.iso_utc(moment, timespec="microseconds") == "2026-11-02T08:30:00.000000Z"
    assert clock.parse_utc("2026-11-02T09:30:00+01:00") == moment
    assert clock.parse_utc("2026-11-02T08:30:00") == moment  # naive text is UTC
    assert clock.compact_utc(moment) == "20261102T083000Z"
    assert clock.compact_utc(moment, microseconds=True) == "20261102T083000000000Z"


def test_format_number_marks_missing_and_non_finite_values():
    assert format_number(0.123456) == "0.1235"
    assert format_number(np.float32(2.5), digits=6) == "2.5"
    assert format_number(None) == format_number(float("nan")) == "n/a"
    assert format_number(math.inf, missing="-") == "-"
    assert format_number(12) == "12"
