"""Tests for uvs_analysis.logs.columns."""

from __future__ import annotations

import pyarrow as pa

from uvs_analysis.logs.columns import drop_duplicates, parse_timestamps, url_paths


def test_parse_timestamps_mixed_forms_and_bad_ones():
    """Offsets, Z and zone-less times parse to UTC; junk becomes null."""
    text = pa.array(["2025-09-15T03:00:00+02:00", "2025-09-15T01:00:00", "junk", None])
    parsed = parse_timestamps(text).to_pylist()
    assert parsed[0] == parsed[1] and parsed[0].isoformat() == "2025-09-15T01:00:00+00:00"
    assert parsed[2:] == [None, None]


def test_drop_duplicates_keeps_the_first_across_tables():
    """Rows repeating insert_id, timestamp and log_name are dropped; null ids are kept."""
    ts = pa.array([1, 1, 2], pa.timestamp("ns", tz="UTC"))
    first = pa.table({"insert_id": ["a", "a", "a"], "timestamp": ts, "log_name": ["l"] * 3})
    second = pa.table(
        {"insert_id": ["a", None, None], "timestamp": ts, "log_name": ["l", "l", "l"]}
    )
    tables = [first, second]
    assert drop_duplicates(tables) == 2
    assert [t.num_rows for t in tables] == [2, 2]


def test_url_paths():
    """The path of absolute and relative URLs; '/' for a bare host."""
    urls = pa.array(["https://h.example/ws?x=1", "/api/v1/websocket#f", "https://h.example", None])
    assert url_paths(urls).to_pylist() == ["/ws", "/api/v1/websocket", "/", None]
