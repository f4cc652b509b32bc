"""Tests for uvs_analysis.logs.columns."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

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


_ROW = st.tuples(
    st.sampled_from(["a", "b", "c", None]),
    st.integers(0, 3),
    st.sampled_from(["l", "m", None]),
)


def _table(rows: list[tuple[object, ...]], chunked: bool) -> pa.Table:
    table = pa.table(
        {
            "insert_id": pa.array([r[0] for r in rows], pa.string()),
            "timestamp": pa.array([r[1] for r in rows], pa.timestamp("ns", tz="UTC")),
            "log_name": pa.array([r[2] for r in rows], pa.string()),
        }
    )
    if chunked and len(rows) > 1:  # a chunk per row, as the loader's tables have many
        table = pa.concat_tables([table.slice(i, 1) for i in range(len(rows))])
    return table


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_ROW, max_size=8), min_size=1, max_size=4), st.booleans())
def test_drop_duplicates_matches_a_plain_first_seen_rule(parts, chunked):
    """Random tables: exactly the rows whose (id, time, name) an earlier row had are dropped."""
    tables = [_table(rows, chunked) for rows in parts]
    seen: set[tuple[object, ...]] = set()
    expected: list[list[tuple[object, ...]]] = []
    for rows in parts:
        kept = []
        for row in rows:
            key = (row[0], row[1], row[2] or "")
            if row[0] is not None and key in seen:
                continue
            seen.add(key)
            kept.append(row)
        expected.append(kept)
    dropped = drop_duplicates(tables)
    assert dropped == sum(len(r) for r in parts) - sum(len(k) for k in expected)
    got = [
        list(
            zip(
                t["insert_id"].to_pylist(),
                pc.cast(t["timestamp"], pa.int64()).to_pylist(),
                t["log_name"].to_pylist(),
                strict=True,
            )
        )
        for t in tables
    ]
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet="ab:/?#.+-1\n é", max_size=30))))
def test_url_paths_equal_the_path_pattern(urls):
    """Any text: the path is what URL_PATH_PATTERN's group takes ('/' when empty)."""
    import re

    from uvs_analysis.logs.extract import URL_PATH_PATTERN

    pattern = re.compile(URL_PATH_PATTERN)
    expected = [
        None if u is None else (pattern.match(u).group("path") or "/")  # type: ignore[union-attr]
        for u in urls
    ]
    assert url_paths(pa.array(urls, pa.string())).to_pylist() == expected


def test_url_paths():
    """The path of absolute and relative URLs; '/' for a bare host."""
    urls = pa.array(["https://h.example/ws?x=1", "/api/v1/websocket#f", "https://h.example", None])
    assert url_paths(urls).to_pylist() == ["/ws", "/api/v1/websocket", "/", None]


def test_parse_timestamps_beyond_nanosecond_range_are_null():
    """A time pandas can parse but nanoseconds cannot hold (year 2300, 1500) becomes null."""
    values = pa.array(["2300-01-01T00:00:00Z", "1500-06-01T00:00:00+02:00",
                       "2025-01-01T00:00:00+01:00"])
    parsed = parse_timestamps(values).to_pylist()
    assert parsed[:2] == [None, None]
    assert parsed[2].isoformat() == "2024-12-31T23:00:00+00:00"
