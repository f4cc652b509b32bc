"""Tests for uvs_analysis.logs.duckread (NDJSON files through DuckDB, in parts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
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
