"""Tests for uvs_analysis.logs.arrowblock (the NDJSON fast path)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from uvs_analysis.logs.arrowblock import read_block
from uvs_analysis.logs.normalize import Normalizer, normalize_records


def _lines(records: list[Any]) -> list[bytes]:
    return [json.dumps(r, ensure_ascii=False).encode() for r in records]


def test_fast_path_gives_the_same_frame_as_records(cloud_run_entries):
    """A block through pyarrow gives exactly the per-record frame, bad records included."""
    records = [*cloud_run_entries, {"logName": "x", "jsonPayload": {"time": {"no": 1}}}]
    records.append({"logName": "x", "textPayload": "no time at all"})
    records.append(cloud_run_entries[1] | {"insertId": "pt", "timestamp": None})
    records[-1]["jsonPayload"] = records[-1]["jsonPayload"] | {"time": 1757898000.5}
    lines = _lines(records)
    table = read_block(lines)
    assert table is not None
    fast = Normalizer("f")
    fast.add_block(lines, table, 1)
    fast_load = fast.finish()
    slow_load = normalize_records(records, source="f")
    pd.testing.assert_frame_equal(fast_load.frame, slow_load.frame)
    assert [(b.line, b.reason) for b in fast_load.bad_records] == [
        (b.line, b.reason) for b in slow_load.bad_records
    ]


@pytest.mark.parametrize(
    "line",
    [
        b'{"timestamp": 5}',
        b'{"timestamp": "2025-09-15T01:00:00Z", "httpRequest": {"status": "101"}}',
        b'{"timestamp": "2025-09-15T01:00:00Z", "jsonPayload": "text"}',
        b'{"timestamp": "2025-09-15T01:00:00Z", "textPayload": "\xff"}',
        b"[1, 2]",
        b"{not json",
        b"   ",
    ],
)
def test_blocks_that_do_not_fit_are_refused(line):
    """Wrong types, invalid UTF-8, non-objects, bad JSON or blank lines send the block back."""
    good = b'{"timestamp": "2025-09-15T01:00:00Z", "textPayload": "ok"}'
    assert read_block([good, line]) is None
    assert read_block([good]) is not None
