"""Tests for uvs_analysis.logs.extract."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from uvs_analysis.logs.extract import (
    CLOSE_TEXT_PATTERNS,
    close_code_of,
    close_from_text,
    infer_severity,
    latency_seconds,
    status_code,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("close 1011 (internal error)", (1011, "internal error")),
        ("received 1011 (internal error) keepalive ping timeout", (1011, "keepalive ping timeout")),
        ("code=1011", (1011, None)),
        ("code=1008 reason=Authentication failed", (1008, "Authentication failed")),
        ('close(1011, "Service initialization failed")', (1011, "Service initialization failed")),
        ("WebSocket closed with code 1008: Authentication failed", (1008, "Authentication failed")),
        ("HTTP 503 in 1011 ms", (None, None)),
        ("code=200", (None, None)),
    ],
)
def test_close_from_text(text, expected):
    """Close code and reason are read from the documented message shapes."""
    assert close_from_text(text) == expected


def test_close_patterns_compile_in_re2_too():
    """Every pattern runs in pyarrow's RE2 and finds the same code as Python's re."""
    text = "x received 1006 (abnormal closure) y"
    for pattern in CLOSE_TEXT_PATTERNS:
        found = pc.extract_regex(pa.array([text]), pattern)[0].as_py()
        python = re.search(pattern, text)
        assert (found is None) == (python is None)
        if python:
            assert found["code"] == python["code"]


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("Traceback (most recent call last):", "ERROR"),
        ("RuntimeError: boom", "ERROR"),
        ("CRITICAL something", "CRITICAL"),
        ("the worker hit a CRITICAL failure", "ERROR"),
        ("WARNING: careful", "WARNING"),
        ("[INFO] started", "INFO"),
        ("DeprecationWarning: old", "WARNING"),
        ("all good", None),
    ],
)
def test_infer_severity(text, severity):
    """A leading level wins; otherwise error words, then warning words."""
    assert infer_severity(text) == severity


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3599.871254s", 3599.871254),
        ({"seconds": "1", "nanos": 5e8}, 1.5),
        (2, 2.0),
        ("-1s", None),
        ("abc", None),
        (None, None),
        (float("inf"), None),
    ],
)
def test_latency_seconds(value, seconds):
    """Durations as strings, dicts and numbers; negative or junk is None."""
    assert latency_seconds(value) == seconds


@pytest.mark.parametrize(
    ("value", "code", "status"),
    [
        (1011, 1011, None),
        (1011.0, 1011, None),
        ("1008", 1008, None),
        (101, None, 101),
        ("503", None, 503),
        (1011.5, None, None),
        (True, None, None),
        ("x", None, None),
    ],
)
def test_close_code_and_status_coercion(value, code, status):
    """Codes and statuses accept ints, integral floats and digit strings in their ranges."""
    assert close_code_of(value) == code
    assert status_code(value) == status
