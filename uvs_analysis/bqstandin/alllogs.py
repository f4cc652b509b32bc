"""Cloud Logging exports -> the ``_AllLogs`` table of a Log Analytics linked dataset, in DuckDB.

The files are the ones :class:`~uvs_analysis.logs.files.FileSource` reads (NDJSON or a JSON
array, optionally gzipped) and the same records become rows: every record the file loader
accepts as a LogEntry, duplicates included (the real view does not deduplicate either), while
the records it counts as bad are counted here too (``AllLogsBuild.skipped``). Files stream
through in parts of a few tens of MB: DuckDB parses the lines and builds the struct and JSON
columns in SQL, so a 1 GB export never sits in Python memory. Lines DuckDB cannot parse are
read by Python's ``json`` (as the loader does) and fed back.

Columns follow ``/tmp/alllogs_shape.md`` (snake_case ``_AllLogs``): ``timestamp`` and
``receive_timestamp`` are TIMESTAMPTZ (UTC, microseconds), ``json_payload`` and friends JSON.
Known differences from the loader: a key that occurs twice in one object counts once (DuckDB
reads the first, Python the last).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import duckdb

from uvs_analysis.bqstandin.exports import STAGED_TABLE, ExportWriter, read_export
from uvs_analysis.bqstandin.stage import ALLLOGS_SCHEMA, ddl, quote_name, size_sql
from uvs_analysis.errors import UsageError
from uvs_analysis.logs import files as _files
from uvs_analysis.logs.schema import BadRecord

__all__ = [
    "ALLLOGS_SCHEMA",
    "SIZES_TABLE",
    "AllLogsBuild",
    "build_alllogs",
    "column_bytes",
    "connect",
    "measure_columns",
    "replicate_alllogs",
]

#: The table that keeps each built table's per-column stored sizes (for dry-run estimates).
SIZES_TABLE: Final = "_uvs_column_bytes"


@dataclass(frozen=True)
class AllLogsBuild:
    """What a build read and wrote.

    Attributes:
        table: the DuckDB table written.
        rows: rows added by this build (one per accepted record, duplicates included).
        read: records read (rows + skipped; blank lines are not records).
        skipped: records that are not LogEntries (the file loader's bad records).
        bad_records: the first 1000 skipped records, with line and reason.
        files: the files read, in order.
        formats: file -> ``"ndjson"``, ``"json"`` or ``"empty"``.
    """

    table: str
    rows: int
    read: int
    skipped: int
    bad_records: tuple[BadRecord, ...] = ()
    files: tuple[str, ...] = ()
    formats: Mapping[str, str] = field(default_factory=dict)


def connect(
    database: Path | None = None, *, memory_limit: str | None = None, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection set up for the stand-in (UTC session, insertion order kept).

    Args:
        database: a database file (large tables spill to disk and survive); None for memory.
        memory_limit: DuckDB's ``memory_limit``, e.g. ``"2GB"``.
        threads: DuckDB threads (default: all cores).

    Raises:
        UsageError: the database cannot be opened or a setting is refused.
    """
    try:
        con = duckdb.connect(str(database) if database is not None else ":memory:")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET preserve_insertion_order = true")
        con.execute("SET enable_progress_bar = false")
        if memory_limit:
            con.execute("SET memory_limit = ?", [memory_limit])
        if threads:
            con.execute(f"SET threads = {int(threads)}")
    except duckdb.Error as exc:
        raise UsageError(
            f"cannot open the DuckDB database {database or ':memory:'} ({exc})",
            expected="a writable database file and a memory limit such as 2GB",
        ) from exc
    return con


def build_alllogs(
    con: duckdb.DuckDBPyConnection, paths: Sequence[Path], *, table: str = "_AllLogs"
) -> AllLogsBuild:
    """Create (or replace) ``table`` from Cloud Logging export files and measure its columns.

    Args:
        con: the DuckDB connection (see :func:`connect`).
        paths: export files, or directories of them (as ``FileSource`` takes them).
        table: the DuckDB table name.

    Raises:
        BadInputError: a file is missing or unreadable.
        NotALogExportError: a file is not a Cloud Logging export.
    """
    files = _files.expand_paths([Path(p) for p in paths])
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE OR REPLACE TABLE {quote_name(table)} ({ddl(ALLLOGS_SCHEMA)})")
    writer = ExportWriter(con, table)
    formats: dict[str, str] = {}
    for path in files:
        writer.source = str(path)
        formats[str(path)] = read_export(path, writer)
    con.execute(f"DROP TABLE IF EXISTS {STAGED_TABLE}")
    measure_columns(con, table)
    return AllLogsBuild(
        table=table,
        rows=writer.rows,
        read=writer.rows + writer.skipped,
        skipped=writer.skipped,
        bad_records=tuple(writer.bad),
        files=tuple(str(f) for f in files),
        formats=formats,
    )


def replicate_alllogs(
    con: duckdb.DuckDBPyConnection,
    table: str = "_AllLogs",
    times: int = 2,
    *,
    shift_seconds: float | None = None,
) -> int:
    """Grow ``table`` to ``times`` copies of its rows; returns the new row count.

    Copy ``k`` (1-based beyond the original) has its timestamps moved by ``k * shift_seconds``
    (default: the table's time span plus one second, so the copies follow one another) and
    ``~k`` appended to its insert ids, so no two rows are duplicates. Copies are written one at
    a time, so a database file spills instead of running out of memory.

    Raises:
        UsageError: ``times`` is below 1.
    """
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise UsageError(f"times={times!r} is not a copy count", expected="an integer >= 1")
    name = quote_name(table)
    if shift_seconds is None:
        span = con.execute(
            f"SELECT epoch(max(timestamp)) - epoch(min(timestamp)) FROM {name}"
        ).fetchall()[0]
        shift_seconds = float((span[0] if span and span[0] is not None else 0.0) or 0.0) + 1.0
    shift_us = round(shift_seconds * 1_000_000)
    original = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0]
    count = int(original[0]) if original else 0
    con.execute(f"CREATE OR REPLACE TEMP TABLE uvs_base AS SELECT * FROM {name}")
    try:
        for k in range(1, times):
            con.execute(
                f"INSERT INTO {name} SELECT * REPLACE ("
                f"timestamp + to_microseconds({k * shift_us}) AS timestamp, "
                f"receive_timestamp + to_microseconds({k * shift_us}) AS receive_timestamp, "
                f"insert_id || '~{k}' AS insert_id) FROM uvs_base"
            )
    finally:
        con.execute("DROP TABLE IF EXISTS uvs_base")
    measure_columns(con, table)
    return count * times


def measure_columns(
    con: duckdb.DuckDBPyConnection,
    table: str = "_AllLogs",
    schema: Mapping[str, Any] = ALLLOGS_SCHEMA,
) -> dict[str, int]:
    """Compute and store (in ``SIZES_TABLE``) the bytes each top-level column holds.

    Sizes follow BigQuery's data size rules: STRING 2 + UTF-8 bytes, INT64/FLOAT64/TIMESTAMP
    8, BOOL 1, JSON the bytes of its text, STRUCT the sum of its fields, NULL 0.
    """
    exprs = [f"sum({size_sql(quote_name(name), kind)})::BIGINT" for name, kind in schema.items()]
    row = con.execute(f"SELECT {', '.join(exprs)} FROM {quote_name(table)}").fetchall()[0]
    sizes = {name: int(value or 0) for name, value in zip(schema, row or (), strict=False)}
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {SIZES_TABLE} "
        "(table_name VARCHAR, column_name VARCHAR, bytes BIGINT)"
    )
    con.execute(f"DELETE FROM {SIZES_TABLE} WHERE table_name = ?", [table])
    con.executemany(
        f"INSERT INTO {SIZES_TABLE} VALUES (?, ?, ?)",
        [[table, name, size] for name, size in sizes.items()],
    )
    return sizes


def column_bytes(con: duckdb.DuckDBPyConnection, table: str = "_AllLogs") -> dict[str, int]:
    """The stored per-column sizes of ``table`` (measured now if none were stored)."""
    try:
        rows = con.execute(
            f"SELECT column_name, bytes FROM {SIZES_TABLE} WHERE table_name = ?", [table]
        ).fetchall()
    except duckdb.CatalogException:
        rows = []
    return {str(n): int(b) for n, b in rows} if rows else measure_columns(con, table)
