"""The entries an emulator serves: loaded from export files or memory, checked, sorted once.

Files may be NDJSON (one LogEntry per line), a JSON array (``gcloud logging read
--format=json``), a single LogEntry object or an ``entries:list`` response, each optionally
gzipped. Entries the real client could not read (no ``logName``, no or bad ``timestamp``) are
skipped and counted as ``BadRecord``s; timestamps are rewritten to the Z-normalized form the
real API emits.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from uvs_analysis.errors import BadInputError, NotALogExportError
from uvs_analysis.logs.filter_lang import format_timestamp_ns, parse_timestamp_ns
from uvs_analysis.logs.schema import BadRecord

__all__ = ["EntrySource", "EntryStore", "StoredEntry", "build_store", "open_store"]

EntrySource = str | os.PathLike[str] | Mapping[str, Any]
_Z_FORM: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")
_TIME_KEYS: Final = ("timestamp", "receiveTimestamp")


@dataclass(frozen=True)
class StoredEntry:
    """One servable entry.

    Attributes:
        timestamp_ns: the entry's timestamp, nanoseconds since the epoch.
        insert_id: ``insertId`` ("" when absent), the tie-breaker of the API's order.
        log_name: ``logName`` as stored (URL-encoded).
        entry: the LogEntry dict with Z-normalized timestamps.
        blob: ``entry`` serialized as JSON.
    """

    timestamp_ns: int
    insert_id: str
    log_name: str
    entry: Mapping[str, Any]
    blob: bytes


@dataclass(frozen=True)
class EntryStore:
    """Entries sorted by (timestamp, insertId), with the accounting of how they were read.

    ``read == len(entries) + len(skipped)`` always holds.
    """

    entries: tuple[StoredEntry, ...]
    sources: tuple[str, ...]
    read: int
    skipped: tuple[BadRecord, ...]

    def describe(self) -> dict[str, object]:
        """The accounting as plain JSON-able values."""
        return {
            "sources": list(self.sources),
            "read": self.read,
            "entries": len(self.entries),
            "skipped": [
                {"source": b.source, "line": b.line, "reason": b.reason} for b in self.skipped
            ],
        }


def open_store(sources: EntryStore | Iterable[EntrySource]) -> EntryStore:
    """Build a store from file paths and/or in-memory LogEntry dicts (or pass a store through).

    Raises:
        BadInputError: a file is missing or unreadable.
        NotALogExportError: a file holds records but none is a LogEntry.
    """
    if isinstance(sources, EntryStore):
        return sources
    records: list[tuple[str, int, object]] = []
    names: list[str] = []
    memory = 0
    for item in sources:
        if isinstance(item, Mapping):
            memory += 1
            records.append(("<memory>", memory, item))
        else:
            path = Path(item)
            names.append(str(path))
            records.extend(_read_file(path))
    if memory:
        names.append("<memory>")
    return build_store(records, sources=tuple(names))


def build_store(
    records: Iterable[tuple[str, int, object]], *, sources: tuple[str, ...] = ()
) -> EntryStore:
    """Check, normalize and sort ``(source, line, record)`` triples into a store."""
    kept: list[StoredEntry] = []
    skipped: list[BadRecord] = []
    read = 0
    for source, line, record in records:
        read += 1
        result = _check(record)
        if isinstance(result, str):
            skipped.append(BadRecord(source=source, line=line, reason=result))
        else:
            kept.append(result)
    kept.sort(key=lambda e: (e.timestamp_ns, e.insert_id))
    return EntryStore(entries=tuple(kept), sources=sources, read=read, skipped=tuple(skipped))


def _check(record: object) -> StoredEntry | str:
    if isinstance(record, _NotJson):
        return f"not JSON ({record.error}); expected one LogEntry object per line"
    if not isinstance(record, Mapping):
        return f"not a JSON object but {type(record).__name__}; expected one LogEntry"
    log_name = record.get("logName")
    if not isinstance(log_name, str) or not log_name:
        return "no logName; every LogEntry has one (projects/P/logs/LOG_ID)"
    entry = dict(record)
    stamps: dict[str, int] = {}
    for key in _TIME_KEYS:
        value = entry.get(key)
        if value is None and key == "receiveTimestamp":
            continue
        ns = parse_timestamp_ns(value)
        if ns is None:
            return f"{key} {value!r} is not an RFC 3339 time such as 2024-05-14T09:01:05.871Z"
        stamps[key] = ns
        if not (isinstance(value, str) and _Z_FORM.fullmatch(value)):
            entry[key] = format_timestamp_ns(ns)
    insert_id = entry.get("insertId")
    return StoredEntry(
        timestamp_ns=stamps["timestamp"],
        insert_id=insert_id if isinstance(insert_id, str) else "",
        log_name=log_name,
        entry=entry,
        blob=orjson.dumps(entry),
    )


def _read_file(path: Path) -> list[tuple[str, int, object]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise BadInputError(
            f"log file {path} does not exist",
            expected="an NDJSON or JSON export of LogEntry objects",
            hint="check the path given to --logs",
        ) from exc
    except OSError as exc:
        raise BadInputError(
            f"log file {path} cannot be read ({exc.strerror or exc})",
            expected="a readable file",
            hint="check the path and its permissions",
        ) from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise NotALogExportError(
                f"log file {path} looks gzipped but does not decompress ({exc})",
                expected="a complete .gz file",
                hint="re-download or re-export it",
            ) from exc
    source = str(path)
    head = raw.lstrip()[:1]
    if head in (b"[", b"{"):
        try:
            whole = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if head == b"[":
                raise NotALogExportError(
                    f"log file {path} starts like a JSON array but is not valid JSON ({exc})",
                    expected="a JSON array of LogEntry objects",
                    hint="check that the export finished writing",
                ) from exc
        else:
            if isinstance(whole, list):
                return [(source, i, rec) for i, rec in enumerate(whole, start=1)]
            if isinstance(whole, dict) and isinstance(whole.get("entries"), list):
                return [(source, i, rec) for i, rec in enumerate(whole["entries"], start=1)]
            return [(source, 1, whole)]
    return _read_ndjson(path, raw)


def _read_ndjson(path: Path, raw: bytes) -> list[tuple[str, int, object]]:
    source = str(path)
    out: list[tuple[str, int, object]] = []
    parsed = 0
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((source, number, orjson.loads(line)))
            parsed += 1
        except orjson.JSONDecodeError as exc:
            out.append((source, number, _NotJson(str(exc))))
    if out and not parsed:
        raise NotALogExportError(
            f"log file {path} has no JSON record on any of its {len(out)} non-empty lines",
            expected="NDJSON (one LogEntry object per line) or a JSON array",
            hint="export with `gcloud logging read --format=json`, or write one object per line",
        )
    return out


class _NotJson:
    """Stands in for a line that is not JSON, so its reason reaches the BadRecord."""

    def __init__(self, error: str) -> None:
        self.error = error
