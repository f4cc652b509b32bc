"""Tests for uvs_analysis.logs.duckblock (the DuckDB fast path: SQL columns and flags)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

pytest.importorskip("duckdb")

from uvs_analysis.logs.duckblock import Engine, batch_columns, input_batch
from uvs_analysis.logs.normalize import normalize_records

GOOD = {
    "timestamp": "2025-09-15T01:00:00Z",
    "logName": "projects/p/logs/run.googleapis.com%2Fstdout",
    "jsonPayload": {"message": "hello", "context": {"connection_id": "c-1"}},
}


def _run(lines: list[str]) -> pa.Table:
    batch = input_batch(pa.array(range(1, len(lines) + 1), pa.int64()), pa.array(lines))
    table = pa.Table.from_batches([batch])
    engine = Engine(threads=1)
    try:
        return engine.run(table).sort_by("lineno")
    finally:
        engine.close()


def _flags(records: list[Any]) -> list[bool]:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    return _run(lines).column("flag").to_pylist()


def test_ordinary_entries_are_not_flagged(cloud_run_entries):
    """The hand-written Cloud Run entries all go through SQL, none is sent to Python."""
    assert not any(_flags(cloud_run_entries))


@pytest.mark.parametrize(
    "record",
    [
        GOOD | {"severity": 200},
        GOOD | {"insertId": 7},
        GOOD | {"timestamp": 1757898000.5},
        GOOD | {"timestamp": None, "jsonPayload": {"message": "no time"}},
        GOOD | {"resource": "cloud_run_revision"},
        GOOD | {"httpRequest": {"status": "101 "}},
        GOOD | {"httpRequest": {"latency": {"seconds": 3}}},
        GOOD | {"jsonPayload": {"message": {"nested": True}}},
        GOOD | {"jsonPayload": {"message": "x", "user_id": 1.5}},
        GOOD | {"jsonPayload": {"message": "x", "close_code": " 1011"}},
        GOOD | {"jsonPayload": {"message": "x", "close_reason": None}},
        GOOD | {"severity": "ınfo"},
        "[1, 2]",
        "{not json",
        "   ",
        '{"timestamp": "2025-09-15T01:00:00Z", "jsonPayload": {"v": NaN}}',
        # JSON DuckDB reads and Python refuses (or reads as infinity)
        '{"timestamp": "2025-09-15T01:00:00Z", "jsonPayload": {"v": nan}}',
        '{"timestamp": "2025-09-15T01:00:00Z", "jsonPayload": {"v": -INF}}',
        '{"timestamp": "2025-09-15T01:00:00Z", "jsonPayload": {"v": "x",}}',
        '{"timestamp": "2025-09-15T01:00:00Z", "jsonPayload": {"v": ["x"], }}',
        '{"timestamp": "2025-09-15T01:00:00Z", "jsonPayload": {"v": 2 ,}}',
        '{"timestamp": "2025-09-15T01:00:00Z", "jsonPayload": {"v": 1.5e400}}',
        '{"timestamp": "2025-09-15T01:00:00Z", "jsonPayload": {"v": [1, -Infinity]}}',
        '{"timestamp": "2025-09-15T01:00:00Z", "jsonPayload": {"v": ["a", NaN]}}',
        '{"timestamp": "2025-09-15T01:00:00Z", "jsonPayload": {"v": [[2.5, inf]]}}',
    ],
)
def test_lines_sql_could_read_differently_are_flagged(record):
    """Odd types, missing times, bad or lenient JSON, blank lines and NaN go back to Python."""
    assert _flags([GOOD, record, GOOD]) == [False, True, False]


def test_columns_follow_the_record_rules():
    """Aliases by container priority, close code with its own reason, payload text, severity."""
    record = {
        "timestamp": "2025-09-15T01:00:00Z",
        "logName": "projects/p/logs/run.googleapis.com%2Fstdout",
        "labels": {"instanceId": "i-1", "user_id": "from-labels", "connection_id": "lab"},
        "jsonPayload": {
            "message": "closing",
            "severity": "warning",
            "error": {"code": 1006, "reason": "error reason"},
            "context": {"closeCode": "4001", "connection_id": "ctx"},
            "connectionId": "top",
            "thread_id": 42,
        },
    }
    result = _run([json.dumps(record)])
    arrays, numbers, flagged = batch_columns(result.to_batches()[0])
    row = {name: values[0].as_py() for name, values in arrays.items()}
    assert not flagged and numbers.to_pylist() == [1]
    assert row["connection_id"] == "top"  # the payload's top level wins over its containers
    assert row["user_id"] == "from-labels"
    assert row["thread_id"] == "42"
    assert row["ws_close_code"] == 4001 and row["ws_close_reason"] is None
    assert row["severity"] == "WARNING" and row["message"] == "closing"
    assert json.loads(row["payload"]) == record["jsonPayload"]
    assert row["log_kind"] == "stdout" and row["log_name"].endswith("run.googleapis.com/stdout")
    expected = normalize_records([record]).frame.iloc[0]
    for name in ("connection_id", "user_id", "thread_id", "ws_close_code", "severity", "payload"):
        assert row[name] == expected[name] or (row[name] is None and pd.isna(expected[name]))


def test_flagged_lines_come_back_with_their_text():
    """A flagged line is returned whole, with its line number, for the record-by-record path."""
    result = _run([json.dumps(GOOD), "{broken"])
    _, numbers, flagged = batch_columns(result.to_batches()[0])
    assert numbers.to_pylist() == [1]
    assert flagged == [(2, b"{broken")]
