"""Tests for uvs_analysis.logs.duckread (NDJSON files through DuckDB, in parts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pytest

pytest.importorskip("duckdb")

from uvs_analysis.logs import duckread
from uvs_analysis.logs.files import load_file
from uvs_analysis.logs.normalize import normalize_records


def _odd_records(entries: list[dict[str, Any]]) -> list[Any]:
    """Entries with the odd ones SQL must hand to Python interleaved, many times over."""
    odd: list[Any] = [
        entries[1] | {"insertId": "num-sev", "severity": 500},
        entries[1]
        | {"insertId": "epoch", "timestamp": None}
        | {"jsonPayload": {"message": "epoch", "time": 1757898000.5}},
        {"logName": "x", "textPayload": "no time at all"},
        entries[0] | {"insertId": "str-status", "httpRequest": {"status": " 101"}},
        entries[1] | {"insertId": "float-id", "jsonPayload": {"message": "m", "user_id": 2.5}},
        entries[1] | {"insertId": "big", "jsonPayload": {"message": "m", "n": 0.25}},
    ]
    records: list[Any] = []
    for i in range(40):
        for entry in entries:
            records.append(entry | {"insertId": f"{entry.get('insertId')}-{i}"})
        records.append(odd[i % len(odd)] | {"insertId": f"odd-{i}"})
    return records


def _write(path: Path, records: list[Any], extra: dict[int, bytes]) -> Path:
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in records]
    for index, raw in sorted(extra.items()):
        lines.insert(index, raw)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_file_through_duckdb_equals_the_records_path(cloud_run_entries, tmp_path, monkeypatch):
    """Small parts, odd and bad lines interleaved: same frame and same bad records as Python."""
    assert duckread.available()
    monkeypatch.setattr(duckread, "_PART_BYTES", 4096)
    records = _odd_records(cloud_run_entries)
    bad_lines = {5: b"{not json", 50: b"", 120: b"\xff\xfe bad utf-8", 200: b"   "}
    path = _write(tmp_path / "x.ndjson", records, bad_lines)
    fast = load_file(path)

    expected_records: list[Any] = []
    numbers = []
    for number, raw in enumerate(path.read_bytes().split(b"\n")[:-1], start=1):
        if raw.strip():
            try:
                expected_records.append(json.loads(raw))
            except ValueError:
                continue
            numbers.append(number)
    slow = normalize_records(expected_records, source=str(path))
    pd.testing.assert_frame_equal(fast.frame, slow.frame)
    assert fast.read == len(records) + 2  # the two malformed lines; blank lines are not records
    assert fast.read == len(fast.frame) + fast.bad_total + fast.duplicates + fast.filtered_out
    slow_bad = [(numbers[b.line - 1], b.reason) for b in slow.bad_records]
    fast_bad = [(b.line, b.reason) for b in fast.bad_records if b.line not in (6, 121)]
    assert fast_bad == slow_bad
    assert {b.line for b in fast.bad_records} >= {6, 121}


def test_parts_on_several_engines_come_back_in_file_order(cloud_run_entries, tmp_path, monkeypatch):
    """Many small parts spread over four engines: rows and bad records keep the file's order."""
    monkeypatch.setattr(duckread, "_PART_BYTES", 2048)
    monkeypatch.setattr(duckread.os, "cpu_count", lambda: 4)
    records = _odd_records(cloud_run_entries)
    path = _write(tmp_path / "many.ndjson", records, {17: b"{broken", 90: b"[1]"})
    load = load_file(path)
    ids = [r["insertId"] for r in records]
    assert load.frame["insert_id"].tolist() == [i for i in ids if i in set(load.frame["insert_id"])]
    assert [b.line for b in load.bad_records] == sorted(b.line for b in load.bad_records)
    assert {18, 91} <= {b.line for b in load.bad_records}


@pytest.mark.parametrize(
    ("cores", "layout"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 1)), (8, (4, 2)), (64, (4, 16))]
)
def test_engine_layout_spreads_cores_over_at_most_four_parts(cores, layout):
    assert duckread.engine_layout(cores) == layout


def test_parts_out_of_order_still_give_file_order(cloud_run_entries, tmp_path, monkeypatch):
    """Rows come back in file order whatever order the engine hands them out in."""
    monkeypatch.setattr(duckread, "_PART_BYTES", 1 << 30)
    records = [
        entry | {"insertId": f"{i}-{j}"}
        for i in range(300)
        for j, entry in enumerate(cloud_run_entries)
    ]
    path = _write(tmp_path / "order.ndjson", records, {})
    load = load_file(path)
    assert load.frame["insert_id"].tolist() == [r["insertId"] for r in records]


#: Values of every JSON type, and strings that look like other types once written as text.
_ODD_VALUES: tuple[Any, ...] = (
    "s",
    "",
    "true",
    "false",
    "null",
    "12",
    "-3",
    "1.5",
    "1e5",
    "1011",
    " 1011",
    "١٠١١",
    '{"a": 1}',
    "{x}",
    "[1]",
    "[INFO] x",
    "2025-09-15T01:30:00Z",
    12,
    -3,
    0,
    1011,
    200,
    1.5,
    1011.0,
    1e20,
    12345678901234567890123,
    True,
    False,
    None,
    {},
    {"a": 1},
    {"code": 1011, "reason": "r"},
    [],
    [1, "x"],
)
#: Where the normalizer reads a value: (path, whether the entry keeps its own timestamp).
_READ_PATHS: tuple[tuple[tuple[str, ...], bool], ...] = (
    *(((key,), True) for key in ("logName", "severity", "insertId", "trace", "spanId")),
    *(((key,), True) for key in ("textPayload", "timestamp", "receiveTimestamp")),
    *(((key,), True) for key in ("resource", "labels", "httpRequest", "jsonPayload")),
    (("protoPayload",), True),
    (("resource", "labels"), True),
    *((("resource", "labels", key), True) for key in ("service_name", "location")),
    *((("labels", key), True) for key in ("instanceId", "code", "reason", "userId", "trace")),
    *(
        (("httpRequest", key), True)
        for key in ("requestMethod", "requestUrl", "status", "latency", "userAgent", "remoteIp")
    ),
    *((("jsonPayload", key), True) for key in ("message", "severity", "timestamp")),
    *((("jsonPayload", key), False) for key in ("message", "timestamp", "time")),
    *(
        (("jsonPayload", key), True)
        for key in ("close_code", "closeReason", "connection_id", "runId", "trace_id", "error")
    ),
    *((("jsonPayload", "context", key), True) for key in ("code", "reason", "threadId")),
    (("jsonPayload", "labels", "logging.googleapis.com/trace"), True),
)


def _numbers_as_floats(payloads: pd.Series) -> list[Any]:
    """Payload texts read back, every number as a float: the DuckDB path may write a huge or
    exponent number in the other form of the same value (see ``duckblock``)."""
    return [None if pd.isna(text) else json.loads(text, parse_int=float) for text in payloads]


def _with_value(entry: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    record = json.loads(json.dumps(entry))
    inner = record
    for key in path[:-1]:
        if not isinstance(inner.get(key), dict):
            inner[key] = {}
        inner = inner[key]
    inner[path[-1]] = value
    return record


def test_every_type_of_every_read_field_equals_the_records_path(cloud_run_entries, tmp_path):
    """Each field the normalizer reads, given a value of each JSON type: same rows, same bad."""
    app = next(e for e in cloud_run_entries if "jsonPayload" in e)
    request = next(e for e in cloud_run_entries if "httpRequest" in e)
    records: list[Any] = []
    for path, own_time in _READ_PATHS:
        base = request if path[0] in ("httpRequest", "resource") else app
        if not own_time:
            base = _with_value(base, ("timestamp",), None) | {"severity": None}
            base = _with_value(base, ("jsonPayload", "time"), "2025-09-15T01:40:00Z")
        for value in _ODD_VALUES:
            record = _with_value(base, path, value)
            record["insertId"] = record["insertId"] if path == ("insertId",) else str(len(records))
            records.append(record)
    path = _write(tmp_path / "types.ndjson", records, {})
    fast = load_file(path)
    # The reader's own record-by-record parse: orjson (which reads a huge int as a float).
    slow = normalize_records(
        [orjson.loads(line) for line in path.read_bytes().splitlines()], source=str(path)
    )
    pd.testing.assert_frame_equal(
        fast.frame.drop(columns="payload"), slow.frame.drop(columns="payload")
    )
    assert _numbers_as_floats(fast.frame["payload"]) == _numbers_as_floats(slow.frame["payload"])
    assert [(b.line, b.reason) for b in fast.bad_records] == [
        (b.line, b.reason) for b in slow.bad_records
    ]


@pytest.mark.parametrize("seed", range(6))
def test_line_feed_cuts_any_blocks_into_the_file_lines(seed):
    """Blocks cut anywhere (mid-line, several blocks per line, mid-character) give the lines."""
    import random

    rng = random.Random(seed)
    lines = [
        ("é" * rng.randint(0, 30) + "x" * rng.randint(0, 200)).encode() for _ in range(60)
    ]
    lines[7] = b"\xff\xfe not utf-8"
    lines[8] = b""
    text = b"\n".join(lines) + (b"\n" if seed % 2 else b"\ntail without newline")
    cuts = sorted(rng.sample(range(1, len(text)), 25))
    blocks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    heads: list[tuple[list[bytes], int]] = []
    feed = duckread.LineFeed(lambda head, before: bool(heads.append((list(head), before))))

    numbers, texts = [], []
    for number_array, line_array in feed.lines(bytearray(b) if seed % 3 else b for b in blocks):
        assert len(number_array) == len(line_array) > 0
        numbers += number_array.to_pylist()
        texts += line_array.to_pylist()
    assert numbers == list(range(1, len(lines) + 1))
    expected = [(line + b"\n").decode() if line != lines[7] else "" for line in lines]
    assert texts == expected
    assert feed.raw == {8: lines[7]} and type(feed.raw[8]) is bytes
    assert feed.lineno == len(lines)
    assert feed.carry == (b"" if seed % 2 else b"tail without newline")
    assert isinstance(feed.carry, bytes)
    assert [line for head, _ in heads for line in head] == lines  # every line shown until checked
    assert all(type(line) is bytes for head, _ in heads for line in head)


@pytest.mark.parametrize("step", [1, 7, 64, 1 << 20])
def test_cut_lines_finds_the_same_lines_whatever_the_search_step(step):
    """The newline search in steps of the scratch array's size finds every line once."""
    import numpy as np

    text = b"".join(b"x" * (i % 13) + b"\n" for i in range(200)) + b"tail"
    plain = duckread.cut_lines(text, 5, 1, {})
    stepped = duckread.cut_lines(text, 5, 1, {}, np.empty(step, np.bool_))
    assert plain is not None and stepped is not None
    assert plain[0] == stepped[0] == len(text) - 4
    assert plain[2].equals(stepped[2]) and plain[1].equals(stepped[1])
    expected = [line + "\n" for line in text[5:-4].decode().split("\n")[:-1]]
    assert stepped[2].to_pylist() == expected


def test_parts_grow_from_the_first_size_to_the_limit():
    """Parts start small and double up to the limit; every batch is in exactly one part."""
    schema = pa.schema([("n", pa.int64())])
    batches = [
        pa.record_batch([pa.array(range(i, i + 100), pa.int64())], schema) for i in range(40)
    ]
    per_batch = batches[0].nbytes
    parts = list(duckread.group_parts(batches, schema, per_batch * 8, first_bytes=per_batch))
    assert [p.num_rows // 100 for p in parts] == [1, 2, 4, 8, 8, 8, 8, 1]
    assert pa.concat_tables(parts).column("n").to_pylist() == [
        n for b in batches for n in b.column(0).to_pylist()
    ]


def test_an_error_while_reading_surfaces_as_itself(cloud_run_entries, monkeypatch):
    """A read error midway, parts in flight: the error itself, and the engines stop cleanly."""
    from uvs_analysis.errors import BadInputError
    from uvs_analysis.logs.files import _read_line
    from uvs_analysis.logs.normalize import Normalizer

    monkeypatch.setattr(duckread, "_PART_BYTES", 2048)
    monkeypatch.setattr(duckread, "_FIRST_PART_BYTES", 1024)
    block = b"".join(json.dumps(e).encode() + b"\n" for e in cloud_run_entries * 10)

    def blocks():
        yield block
        yield block
        raise BadInputError("log file x could not be read (I/O error)", expected="a readable file")

    import threading

    threads = threading.active_count()
    with pytest.raises(BadInputError, match="I/O error"):
        duckread.read_lines(blocks(), Normalizer("x"), None, lambda lines, n: True, _read_line)
    assert threading.active_count() == threads
