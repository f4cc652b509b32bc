"""Streaming Cloud Logging export files into a DuckDB table through the stage query.

Files are read as the file loader reads them (:mod:`uvs_analysis.logs.files`): gzip by
content, a JSON array element by element, NDJSON in blocks cut at newlines and handed to DuckDB
as Arrow batches without copying the text. Each part runs the stage query; accepted rows are
appended to the table, refused ones counted with their line and reason. Lines DuckDB cannot
parse are read with Python's ``json`` like the loader does and fed back, and timestamps DuckDB
cannot parse are parsed with the loader's own function.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa

from uvs_analysis.bqstandin.stage import (
    ALLLOGS_SCHEMA,
    INPUT_SCHEMA,
    LINES_VIEW,
    STAGE_SQL,
    quote_name,
)
from uvs_analysis.errors import NotALogExportError
from uvs_analysis.logs import files as _files
from uvs_analysis.logs.columns import parse_timestamps
from uvs_analysis.logs.duckread import LineFeed, group_parts
from uvs_analysis.logs.jsonarray import iter_array
from uvs_analysis.logs.schema import BadRecord

__all__ = ["MAX_BAD_DETAILS", "STAGED_TABLE", "ExportWriter", "read_export"]

#: How many skipped records are kept with their reason (all are counted).
MAX_BAD_DETAILS: Final = 1000
#: The temporary table each part is staged in.
STAGED_TABLE: Final = "uvs_staged"
_PART_BYTES: Final = 32 << 20
_ARRAY_BATCH: Final = 20_000


class ExportWriter:
    """Runs the stage query over parts of lines and appends the accepted rows to ``table``.

    Attributes:
        source: the file being read (named in bad records).
        rows: rows appended.
        skipped: records refused.
        bad: the first ``MAX_BAD_DETAILS`` refused records.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, table: str) -> None:
        self.con = con
        self.table = table
        self.source = ""
        self.rows = 0
        self.skipped = 0
        self.bad: list[BadRecord] = []
        self.raw: dict[int, bytes] = {}

    def record_bad(self, line: int, reason: str) -> None:
        self.skipped += 1
        if len(self.bad) < MAX_BAD_DETAILS:
            self.bad.append(BadRecord(self.source, line, reason))

    def write(self, lines: pa.Table, *, retry: bool = True) -> int:
        """Stage ``lines`` (INPUT_SCHEMA), insert the accepted rows; returns the records seen."""
        con = self.con
        con.register(LINES_VIEW, lines)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {STAGED_TABLE} AS {STAGE_SQL}")
        finally:
            con.unregister(LINES_VIEW)
        names = ", ".join(quote_name(name) for name in ALLLOGS_SCHEMA)
        con.execute(
            f"INSERT INTO {quote_name(self.table)} SELECT {names} FROM {STAGED_TABLE} "
            "WHERE valid AND reason IS NULL"
        )
        counts = con.execute(
            f"SELECT count(*) FILTER (valid AND reason IS NULL), count(*) FILTER (valid) "
            f"FROM {STAGED_TABLE}"
        ).fetchall()[0]
        added, records = (int(counts[0]), int(counts[1])) if counts else (0, 0)
        self.rows += added
        rejected = con.execute(
            f"SELECT lineno, valid, reason, line, ts_text FROM {STAGED_TABLE} "
            "WHERE NOT valid OR reason IS NOT NULL ORDER BY lineno"
        ).fetchall()
        invalid: list[tuple[int, str]] = []
        odd_times: list[tuple[int, str, str, str]] = []
        for lineno, valid, reason, line, ts_text in rejected:
            if not valid:
                invalid.append((int(lineno), str(line)))
            elif ts_text is not None and retry:
                odd_times.append((int(lineno), str(line), str(ts_text), str(reason)))
            else:
                self.record_bad(int(lineno), str(reason))
        if invalid:
            records += self._reread(invalid, retry)
        if odd_times:
            self._retime(odd_times)
        return records

    def _retime(self, rows: list[tuple[int, str, str, str]]) -> None:
        """Timestamps DuckDB could not parse: parse them as the loader does, refeed the rows."""
        parsed = _parse_times([text for _, _, text, _ in rows])
        fixed = []
        for (lineno, line, _, reason), stamp in zip(rows, parsed, strict=True):
            if stamp is None:
                self.record_bad(lineno, reason)
            else:
                fixed.append((lineno, line, stamp))
        if fixed:
            self.write(_lines_table(*zip(*fixed, strict=True)), retry=False)

    def _reread(self, invalid: list[tuple[int, str]], retry: bool) -> int:
        """Lines DuckDB could not parse: read with Python's json like the loader, refeed."""
        fixed: list[tuple[int, str]] = []
        records = 0

        def refeed(value: object, lineno: int) -> None:
            if retry:
                fixed.append((lineno, _dumps(value)))
            else:
                self.record_bad(lineno, f"line {lineno} could not be read as JSON")

        for lineno, text in invalid:
            raw = self.raw.pop(lineno, None)
            data: bytes | str = raw if raw is not None else text
            if not data.strip():
                continue
            records += 1
            _files.read_json_line(data, lineno, self.record_bad, refeed)
        if fixed:
            records += self.write(_lines_table(*zip(*fixed, strict=True))) - len(fixed)
        return records


def _lines_table(
    numbers: Sequence[int], texts: Sequence[str], fixes: Sequence[Any] | None = None
) -> pa.Table:
    """An ``INPUT_SCHEMA`` table (``fixes``: Python-parsed timestamps, default none)."""
    return pa.table(
        {
            "lineno": pa.array(numbers, pa.int64()),
            "line": pa.array(texts, pa.string()),
            "ts_fix": pa.array(fixes, INPUT_SCHEMA.field("ts_fix").type)
            if fixes is not None
            else pa.nulls(len(numbers), INPUT_SCHEMA.field("ts_fix").type),
        },
        schema=INPUT_SCHEMA,
    )


def _parse_times(texts: list[str]) -> list[Any]:
    """The loader's timestamp parsing (``parse_timestamps``), value by value if it fails."""
    try:
        return list(
            parse_timestamps(pa.array(texts, pa.string()))
            .cast(pa.timestamp("us", tz="UTC"), safe=False)
            .to_pylist()
        )
    except Exception:  # pandas refuses some out-of-range values for the whole array
        out = []
        for text in texts:
            try:
                out.extend(parse_timestamps(pa.array([text], pa.string())).to_pylist())
            except Exception:
                out.append(None)
        return out


def _dumps(value: object) -> str:
    """JSON text DuckDB reads as Python read it: NaN stays NaN, lone surrogates become '?'."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode()
    return text


def read_export(path: Path, writer: ExportWriter) -> str:
    """Write one file's records through ``writer``; returns its format (ndjson, json, empty).

    Raises:
        BadInputError: the file cannot be read.
        NotALogExportError: the file is not a Cloud Logging export.
    """
    opened = _files.open_export(path)
    if opened.format == "json":
        _read_array(path, opened.blocks, writer, opened.source)
    elif opened.format == "ndjson":
        _read_ndjson(path, opened.blocks, writer, opened.source)
    return opened.format


def _read_array(
    path: Path, blocks: Iterator[bytes], writer: ExportWriter, source: _files.Blocks
) -> None:
    checked = False
    numbers: list[int] = []
    texts: list[str] = []
    for item in iter_array(blocks):
        if item.problem is not None:
            problem = f"{item.problem} ({source.cut})" if item.cut and source.cut else item.problem
            writer.record_bad(item.index, problem)
            continue
        if not checked:
            _files.check_first_record(path, item.value, f"element 1 (line {item.line})")
            checked = True
        numbers.append(item.index)
        texts.append(_dumps(item.value))
        if len(texts) >= _ARRAY_BATCH:
            writer.write(_lines_table(numbers, texts))
            numbers, texts = [], []
    if texts:
        writer.write(_lines_table(numbers, texts))


def _read_ndjson(
    path: Path, blocks: Iterable[bytes], writer: ExportWriter, source: _files.Blocks
) -> None:
    feed = LineFeed(lambda lines, before: _files.check_head(path, lines, before), writer.raw)
    records = 0
    for part in group_parts(_batches(feed, blocks), INPUT_SCHEMA, _PART_BYTES):
        records += writer.write(part)
    carry = feed.carry
    lineno = feed.lineno
    if carry.strip():
        lineno += 1
        if source.cut:
            writer.record_bad(lineno, f"line {lineno} is cut off: {source.cut}")
            records += 1
        else:
            if not feed.checked:
                feed.checked = _files.check_head(path, [carry], lineno - 1)
            try:
                text = carry.decode()
            except UnicodeDecodeError:
                text = ""  # read again (and refused) with the raw bytes
                writer.raw[lineno] = carry
            records += writer.write(_lines_table([lineno], [text]))
    elif source.cut:
        writer.record_bad(lineno + 1, f"the data ends early after line {lineno}: {source.cut}")
    if not feed.checked and records:
        first = writer.bad[0].reason if writer.bad else "no line is JSON"
        raise NotALogExportError(
            f"{path} is not a log export: none of its lines is a JSON object (first: {first})",
            expected=_files.EXPECTED_EXPORT,
        )


def _batches(feed: LineFeed, blocks: Iterable[bytes]) -> Iterator[pa.RecordBatch]:
    """The feed's lines as ``INPUT_SCHEMA`` batches (no timestamp fixes yet)."""
    ts_fix = INPUT_SCHEMA.field("ts_fix").type
    for numbers, lines in feed.lines(blocks):
        yield pa.record_batch([numbers, lines, pa.nulls(len(numbers), ts_fix)], schema=INPUT_SCHEMA)
