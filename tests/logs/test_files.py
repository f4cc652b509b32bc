"""Tests for uvs_analysis.logs.files."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from uvs_analysis.errors import BadInputError, NotALogExportError
from uvs_analysis.logs import files
from uvs_analysis.logs.files import FileSource, load_file
from uvs_analysis.logs.normalize import normalize_records
from uvs_analysis.logs.query import LogQuery
from uvs_analysis.logs.schema import COLUMNS, LogLoad


def _accounted(load: LogLoad) -> bool:
    return load.read == len(load.frame) + load.bad_total + load.duplicates + load.filtered_out


def _records_of(path: Path) -> list[Any]:
    """The file's records, read the plain way (the reference)."""
    data = path.read_bytes()
    text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode()
    if text.lstrip().startswith("["):
        records: list[Any] = json.loads(text)
        return records
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _many(entries: list[dict[str, Any]], copies: int) -> list[dict[str, Any]]:
    return [e | {"insertId": f"{e['insertId']}-{i}"} for i in range(copies) for e in entries]


@pytest.mark.parametrize("fmt", ["ndjson", "json", "compact"])
@pytest.mark.parametrize("gz", [False, True])
def test_every_export_format_gives_the_records_frame(cloud_run_entries, export_writer, fmt, gz):
    """NDJSON, gcloud's indented array and a compact array, plain or gzipped, load the same."""
    path = export_writer(f"export.{fmt}{'.gz' if gz else ''}", cloud_run_entries, fmt, gz=gz)
    load = load_file(path)
    pd.testing.assert_frame_equal(load.frame, normalize_records(_records_of(path)).frame)
    assert load.read == len(cloud_run_entries) and load.bad_total == 0
    assert load.meta["formats"][str(path)] == ("ndjson" if fmt == "ndjson" else "json")


@pytest.mark.parametrize("fmt", ["ndjson", "json", "compact"])
def test_small_blocks_give_the_same_result(cloud_run_entries, export_writer, monkeypatch, fmt):
    """Records split across many read blocks (fast and per-record paths mixed) load the same."""
    entries = _many(cloud_run_entries, 30)
    path = export_writer(f"big.{fmt}", entries, fmt)
    monkeypatch.setattr(files, "_BLOCK", 1500)
    load = load_file(path)
    pd.testing.assert_frame_equal(load.frame, normalize_records(_records_of(path)).frame)


def test_malformed_lines_are_counted_with_line_numbers(cloud_run_entries, tmp_path):
    """A broken NDJSON line is skipped and reported with its line; blank lines are ignored."""
    lines = [json.dumps(e) for e in cloud_run_entries]
    lines[2] = lines[2][:40]
    lines.insert(4, "")
    path = tmp_path / "broken.ndjson"
    path.write_text("\n".join(lines) + "\n")
    load = load_file(path)
    assert load.bad_total == 1 and len(load.frame) == len(cloud_run_entries) - 1
    bad = load.bad_records[0]
    assert (bad.source, bad.line) == (str(path), 3)
    assert "line 3" in bad.reason and "not valid JSON" in bad.reason and "expected" in bad.reason
    assert _accounted(load)


def test_wrong_types_and_missing_timestamp_are_bad_records(cloud_run_entries, tmp_path):
    """Valid JSON that is not a LogEntry (wrong types, no timestamp, a number) is a bad record."""
    records: list[Any] = list(cloud_run_entries)
    records.append({"logName": "x", "textPayload": "no time"})
    records.append(cloud_run_entries[0] | {"insertId": "t", "httpRequest": "GET /"})
    records.append(42)
    path = tmp_path / "mixed.ndjson"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    load = load_file(path)
    n = len(cloud_run_entries)
    assert load.bad_total == 3 and len(load.frame) == n
    assert [b.line for b in load.bad_records] == [n + 1, n + 2, n + 3]
    assert "no timestamp" in load.bad_records[0].reason
    assert "'httpRequest'" in load.bad_records[1].reason


def test_duplicates_in_a_file_are_counted(cloud_run_entries, export_writer):
    """The same entry twice (same insertId, timestamp, logName) loads once."""
    path = export_writer("dups.ndjson", cloud_run_entries + cloud_run_entries[:3], "ndjson")
    load = load_file(path)
    assert load.duplicates == 3 and len(load.frame) == len(cloud_run_entries)
    assert _accounted(load)


@pytest.mark.parametrize("content", [b"", b"  \n\n", b"[]", b"[ ]\n", b"\xef\xbb\xbf[]"])
def test_empty_exports_have_zero_entries(tmp_path, content):
    """An empty file, blank lines or an empty array is a valid export with no entries."""
    path = tmp_path / "empty.json"
    path.write_bytes(content)
    load = load_file(path)
    assert load.read == 0 and load.frame.empty and list(load.frame.columns) == list(COLUMNS)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"foo": 1}\n', ["line 1", "'foo'"]),
        (b"[1, 2, 3]", ["element 1", "number"]),
        (b'["a", "b"]', ["element 1", "string"]),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", ["starts with"]),
        (b"2025-09-15 ERROR something broke\n", ["starts with '2025"]),
        ("[]".encode("utf-16"), ["UTF-16"]),
        (b'{\n  "foo": 1\n}\n', ["none of its lines"]),
    ],
)
def test_files_that_are_not_exports_raise_a_clear_error(tmp_path, content, words):
    """Other JSON, binary junk and text name the file and say what was expected."""
    path = tmp_path / "other.json"
    path.write_bytes(content)
    with pytest.raises(NotALogExportError) as info:
        load_file(path)
    message = info.value.message
    assert str(path) in message and "Expected a Cloud Logging export" in message
    for word in words:
        assert word in message
    assert info.value.exit_code == 2


def test_truncated_gzip_keeps_what_came_before(cloud_run_entries, tmp_path):
    """A cut gzip keeps the complete lines and records the cut as a bad record."""
    entries = _many(cloud_run_entries, 20)
    data = gzip.compress("".join(json.dumps(e) + "\n" for e in entries).encode())
    path = tmp_path / "cut.ndjson.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    load = load_file(path)
    assert 0 < len(load.frame) < len(entries) and load.bad_total == 1
    assert "gzip stream ends early" in load.bad_records[0].reason
    assert load.meta["cuts"] and _accounted(load)


def test_corrupt_gzip_is_recorded_not_raised(cloud_run_entries, tmp_path):
    """Garbage inside the gzip data ends the read with a recorded cut."""
    entries = [
        e | {"blob": hashlib.sha256(str(i).encode()).hexdigest() * 4}
        for i, e in enumerate(_many(cloud_run_entries, 300))
    ]
    data = bytearray(gzip.compress("".join(json.dumps(e) + "\n" for e in entries).encode()))
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff" * 64
    path = tmp_path / "corrupt.json.gz"
    path.write_bytes(bytes(data))
    load = load_file(path)
    assert 0 < len(load.frame) < len(entries)
    assert load.bad_total >= 1 and "gzip data is corrupt" in load.bad_records[-1].reason


def test_array_cut_midway_keeps_complete_elements(cloud_run_entries, tmp_path):
    """A gcloud array cut inside an element loads the elements before it."""
    text = json.dumps(cloud_run_entries, indent=2)
    cut = text.index('"insertId": "gcp-1"')
    path = tmp_path / "cut.json"
    path.write_text(text[:cut])
    load = load_file(path)
    assert list(load.frame["insert_id"]) == ["req-1", "app-1", "err-1"]
    assert load.bad_total == 1 and load.bad_records[0].line == 4
    assert "cut off" in load.bad_records[0].reason and "line" in load.bad_records[0].reason


def test_array_without_closing_bracket_is_recorded(cloud_run_entries, tmp_path):
    """All elements complete but no closing ']' is loaded, and the cut is recorded."""
    path = tmp_path / "open.json"
    path.write_text(json.dumps(cloud_run_entries, indent=2).rstrip()[:-1])
    load = load_file(path)
    assert len(load.frame) == len(cloud_run_entries) and load.bad_total == 1
    assert "no closing ']'" in load.bad_records[0].reason


def test_malformed_array_element_is_skipped(cloud_run_entries, tmp_path):
    """A broken element in an indented array is reported and the next ones still load."""
    text = json.dumps(cloud_run_entries, indent=2).replace('"insertId": "err-1"', '"insertId": err')
    path = tmp_path / "broken.json"
    path.write_text(text)
    load = load_file(path)
    assert len(load.frame) == len(cloud_run_entries) - 1 and load.bad_total == 1
    assert load.bad_records[0].line == 3 and "not valid JSON" in load.bad_records[0].reason


def test_a_10_mb_record_loads(cloud_run_entries, export_writer):
    """One 10 MB record (a huge message) loads in NDJSON and in an array."""
    big = cloud_run_entries[2] | {"insertId": "big", "textPayload": "x" * (10 << 20)}
    for fmt in ("ndjson", "json"):
        load = load_file(export_writer(f"big.{fmt}", [cloud_run_entries[0], big], fmt))
        assert len(load.frame) == 2
        assert len(load.frame.set_index("insert_id").loc["big", "message"]) == 10 << 20


def test_invalid_utf8_line_is_a_bad_record(cloud_run_entries, tmp_path):
    """A line with invalid UTF-8 is counted, the others load."""
    lines = [json.dumps(e).encode() for e in cloud_run_entries]
    lines[1] = lines[1].replace(b"websocket closed", b"websocket \xff\xfe closed")
    path = tmp_path / "latin.ndjson"
    path.write_bytes(b"\n".join(lines))
    load = load_file(path)
    assert load.bad_total == 1 and load.bad_records[0].line == 2
    assert len(load.frame) == len(cloud_run_entries) - 1


def test_bad_lines_in_reused_blocks_are_reported_alike(cloud_run_entries, tmp_path, monkeypatch):
    """Bad lines deep in a file (blocks read into reused buffers) get the same records."""
    lines = [json.dumps(e).encode() for e in _many(cloud_run_entries, 20)]
    lines[61] = b'{"timestamp": "2025-09-15T01:00:00Z", "textPayload": "caf\xe9"}'
    lines[97] = b'{"timestamp": 12, broken'
    path = tmp_path / "deep.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    whole = load_file(path)
    monkeypatch.setattr(files, "_BLOCK", 300)
    small = load_file(path)
    assert small.bad_records == whole.bad_records and len(whole.bad_records) == 2
    pd.testing.assert_frame_equal(small.frame, whole.frame)


def test_missing_file_names_the_path(tmp_path):
    """A missing file is a BadInputError that names it."""
    with pytest.raises(BadInputError, match=r"does-not-exist\.json"):
        load_file(tmp_path / "does-not-exist.json")


def test_directory_and_several_files_load_as_one_source(cloud_run_entries, tmp_path):
    """A directory expands to its export files; duplicates across files are counted."""
    from tests.logs.conftest import write_export

    write_export(tmp_path / "a.ndjson", cloud_run_entries[:4], "ndjson")
    write_export(tmp_path / "b.json.gz", cloud_run_entries[2:], "json", gz=True)
    (tmp_path / "notes.txt").write_text("not read")
    source = FileSource([tmp_path])
    load = source.load()
    assert len(load.frame) == len(cloud_run_entries) and load.duplicates == 2
    assert len(load.meta["files"]) == 2 and str(tmp_path) in source.describe()


def test_empty_directory_is_an_error(tmp_path):
    """A directory without export files is refused with what was expected."""
    with pytest.raises(BadInputError, match=r"\*\.ndjson"):
        FileSource([tmp_path]).load()


def test_query_filters_file_rows_and_progress_reports(cloud_run_entries, export_writer):
    """A query filters rows (counted), and progress ends at the number of records read."""
    path = export_writer("q.ndjson", cloud_run_entries, "ndjson")
    query = LogQuery(
        project="netra-staging",
        start="2025-09-15T01:00:00Z",
        end="2025-09-15T02:00:00Z",
        log_kinds=("stderr",),
    )
    seen: list[int] = []
    load = FileSource([path]).load(query, progress=seen.append)
    assert sorted(load.frame["insert_id"]) == ["err-1", "err-2"]
    assert load.filtered_out == len(cloud_run_entries) - 2 and _accounted(load)
    assert seen and seen[-1] == load.read and seen == sorted(seen)


def test_query_extra_filter_on_files(cloud_run_entries, export_writer):
    """extra_filter is evaluated on the raw entries read from a file."""
    path = export_writer("q.ndjson", cloud_run_entries, "ndjson")
    query = LogQuery(
        project="netra-staging",
        start="2025-09-15T00:00:00Z",
        end="2025-09-16T00:00:00Z",
        extra_filter='jsonPayload.user_id="user-9"',
    )
    load = load_file(path, query)
    assert list(load.frame["insert_id"]) == ["uni-1"] and _accounted(load)


def test_bundled_sample_loads_cleanly():
    """The package's bundled sample is a valid export with no bad records."""
    from uvs_analysis.logs.sample import BUNDLED_SAMPLE

    load = load_file(Path(BUNDLED_SAMPLE))
    assert len(load.frame) > 0 and load.bad_total == 0 and _accounted(load)


def test_reused_blocks_are_kept_while_held_and_reused_once_dropped(tmp_path, monkeypatch):
    """With reuse on, a block someone still holds is never overwritten; a dropped one is."""
    monkeypatch.setattr(files, "_BLOCK", 64)
    data = bytes(range(256)) * 20
    path = tmp_path / "data.ndjson"
    path.write_bytes(data)

    held_blocks = files.Blocks(path)
    held_blocks.reuse_buffers()
    held = list(held_blocks)
    assert b"".join(held) == data  # every block intact after the others were read
    assert len({id(block) for block in held}) == len(held)

    dropped_blocks = files.Blocks(path)
    dropped_blocks.reuse_buffers()
    copies, ids = [], set()
    for block in dropped_blocks:
        copies.append(bytes(block))
        ids.add(id(block))
        del block
    assert b"".join(copies) == data
    assert len(ids) < len(copies) // 4
