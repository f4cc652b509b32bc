"""Loading entries for the emulator from files and memory (uvs_analysis.emulator.store)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from uvs_analysis.emulator.store import open_store
from uvs_analysis.errors import BadInputError, NotALogExportError


def _entry(i: int, stamp: str, **extra: Any) -> dict[str, Any]:
    return {
        "insertId": f"i{i}",
        "logName": "projects/p/logs/run.googleapis.com%2Fstdout",
        "timestamp": stamp,
        **extra,
    }


def test_ndjson_file_with_bad_lines_counted(tmp_path: Path) -> None:
    """NDJSON loads line by line; non-JSON lines and unusable entries are counted, not lost."""
    good = [_entry(1, "2024-05-14T09:00:01Z"), _entry(2, "2024-05-14T09:00:00Z")]
    lines = [
        json.dumps(good[0]),
        "",
        "{not json",
        json.dumps({"insertId": "x", "timestamp": "2024-05-14T09:00:00Z"}),
        json.dumps(_entry(3, "last tuesday")),
        json.dumps([1, 2]),
        json.dumps(good[1]),
    ]
    path = tmp_path / "logs.ndjson"
    path.write_text("\n".join(lines) + "\n")
    store = open_store([path])
    assert [e.insert_id for e in store.entries] == ["i2", "i1"]
    assert store.read == 6
    assert [(b.line, b.reason.split(" ")[0]) for b in store.skipped] == [
        (3, "not"),
        (4, "no"),
        (5, "timestamp"),
        (6, "not"),
    ]
    assert all(b.source == str(path) for b in store.skipped)
    assert store.read == len(store.entries) + len(store.skipped)


def test_json_array_gzipped_and_response_dump(tmp_path: Path) -> None:
    """A gcloud JSON array, a gzipped NDJSON and a saved entries:list response all load."""
    array = tmp_path / "export.json"
    array.write_text(json.dumps([_entry(1, "2024-05-14T09:00:00Z")], indent=2))
    zipped = tmp_path / "export.ndjson.gz"
    zipped.write_bytes(gzip.compress(json.dumps(_entry(2, "2024-05-14T09:00:01Z")).encode()))
    dump = tmp_path / "page.json"
    dump.write_text(json.dumps({"entries": [_entry(3, "2024-05-14T09:00:02Z")]}))
    single = tmp_path / "one.json"
    single.write_text(json.dumps(_entry(4, "2024-05-14T09:00:03Z"), indent=2))
    store = open_store([array, zipped, dump, single])
    assert [e.insert_id for e in store.entries] == ["i1", "i2", "i3", "i4"]
    assert store.sources == tuple(str(p) for p in (array, zipped, dump, single))


def test_memory_entries_and_ordering_ties(tmp_path: Path) -> None:
    """In-memory dicts mix with files; equal timestamps are ordered by insertId."""
    path = tmp_path / "a.ndjson"
    path.write_text(json.dumps(_entry(2, "2024-05-14T09:00:00Z")) + "\n")
    store = open_store([path, _entry(1, "2024-05-14T11:00:00+02:00"), _entry(3, "2024-05-14")])
    assert [e.insert_id for e in store.entries] == ["i3", "i1", "i2"]
    assert store.sources == (str(path), "<memory>")


def test_timestamps_are_z_normalized_and_inputs_untouched() -> None:
    """Offsets become Z forms with the same instant; Z forms and the caller's dicts are kept."""
    original = _entry(
        1, "2024-05-14T11:00:00.5+02:00", receiveTimestamp="2024-05-14T09:00:01.123456789Z"
    )
    store = open_store([original])
    served = store.entries[0].entry
    assert served["timestamp"] == "2024-05-14T09:00:00.500Z"
    assert served["receiveTimestamp"] == "2024-05-14T09:00:01.123456789Z"
    assert original["timestamp"] == "2024-05-14T11:00:00.5+02:00"
    assert json.loads(store.entries[0].blob) == served


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    """A missing file raises BadInputError naming it."""
    with pytest.raises(BadInputError, match="does not exist") as info:
        open_store([tmp_path / "nope.ndjson"])
    assert "nope.ndjson" in info.value.message


def test_file_without_any_json_is_not_an_export(tmp_path: Path) -> None:
    """A text file with no JSON record is refused as not a log export."""
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    with pytest.raises(NotALogExportError, match="no JSON record"):
        open_store([path])


def test_truncated_array_is_not_an_export(tmp_path: Path) -> None:
    """A JSON array cut short is refused with a hint about unfinished exports."""
    path = tmp_path / "cut.json"
    path.write_text('[{"logName": "projects/p/logs/x", "timestamp": "2024-05-14T09:00:00Z"},')
    with pytest.raises(NotALogExportError, match="not valid JSON"):
        open_store([path])


def test_empty_file_loads_nothing(tmp_path: Path) -> None:
    """An empty file is a valid export with no entries."""
    path = tmp_path / "empty.ndjson"
    path.write_text("")
    store = open_store([path])
    assert (store.entries, store.read, store.skipped) == ((), 0, ())
