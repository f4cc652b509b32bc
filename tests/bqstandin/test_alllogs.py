"""The _AllLogs table built from export files (uvs_analysis.bqstandin.alllogs)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from uvs_analysis.bqstandin.alllogs import (
    ALLLOGS_SCHEMA,
    SIZES_TABLE,
    AllLogsBuild,
    build_alllogs,
    column_bytes,
    connect,
    replicate_alllogs,
)
from uvs_analysis.errors import BadInputError, NotALogExportError, UsageError
from uvs_analysis.logs.files import load_file
from uvs_analysis.logs.sample import generate
from uvs_analysis.logs.schema import LogLoad

_BASE: dict[str, Any] = {
    "logName": "projects/p/logs/run.googleapis.com%2Fstdout",
    "resource": {"type": "cloud_run_revision", "labels": {"service_name": "s"}},
}


def _entry(**fields: Any) -> str:
    return json.dumps({**_BASE, **fields})


#: Records the file loader accepts or refuses for every reason it has.
EDGE_LINES = [
    _entry(timestamp="2024-05-14T10:00:00Z", insertId="a"),
    _entry(timestamp="2024-05-14T10:00:00Z", insertId="a"),
    _entry(timestamp="2024-05-14T10:00:00+02:00", severity=500),
    _entry(timestamp="2024-05-14T10:00:00", severity="warning"),
    _entry(timestamp="2024-05-14", severity=123),
    _entry(timestamp="garbage"),
    _entry(timestamp=1715680000),
    _entry(timestamp=1715680000.5),
    _entry(timestamp=True),
    _entry(timestamp={"a": 1}),
    _entry(jsonPayload={"timestamp": "2024-05-14T10:00:00Z", "m": 1}),
    _entry(jsonPayload={"time": "2024-05-14T10:00:00Z"}),
    _entry(jsonPayload={"timestamp": None, "time": 1715680000}),
    _entry(jsonPayload={"m": 1}),
    _entry(timestamp=None, jsonPayload={"timestamp": "2024-05-14T10:00:00Z"}),
    _entry(timestamp="2024-05-14T10:00:00Z", logName=5),
    _entry(timestamp="2024-05-14T10:00:00Z", labels="x"),
    _entry(timestamp="2024-05-14T10:00:00Z", httpRequest={"status": "200", "latency": "1.5s"}),
    _entry(timestamp="2024-05-14T10:00:00.123456789Z", jsonPayload=[1]),
    "{}",
    "[]",
    '"x"',
    "null",
    "not json",
    "",
    '{"timestamp": "2024-05-14T10:00:00Z", "x": NaN}',
    '{"timestamp": NaN}',
    '{"timestamp": "2024-05-14T10:00:00Z", "x": 123456789012345678901234567890}',
    '{"timestamp": "2024-05-14T10:00:00Z", "x": "\\ud800"}',
    _entry(timestamp="2024-05-14T10:00:00 +0000"),
    _entry(timestamp="2024-13-14T10:00:00Z"),
]


def _build(*paths: Path) -> tuple[duckdb.DuckDBPyConnection, AllLogsBuild]:
    con = connect()
    return con, build_alllogs(con, list(paths))


def _rows(con: duckdb.DuckDBPyConnection, order: str = "insert_id, timestamp") -> pd.DataFrame:
    frame: pd.DataFrame = con.sql(f'SELECT * FROM "_AllLogs" ORDER BY {order}').df()
    return frame


def _same_records(load: LogLoad, build: AllLogsBuild) -> None:
    assert build.rows == len(load.frame) + load.duplicates
    assert build.skipped == load.bad_total
    assert build.read == build.rows + build.skipped
    assert {(b.line, b.reason) for b in build.bad_records} == {
        (b.line, b.reason) for b in load.bad_records
    }


def test_sample_rows_match_the_file_loader(
    sample_db: tuple[duckdb.DuckDBPyConnection, AllLogsBuild], sample_load: LogLoad
) -> None:
    """Every entry of the bundled sample is a row, duplicates included; nothing is skipped."""
    con, build = sample_db
    _same_records(sample_load, build)
    assert sample_load.duplicates > 0
    stored = con.execute('SELECT count(*) FROM "_AllLogs"').fetchall()[0]
    assert stored is not None and stored[0] == build.rows
    dups = con.execute(
        'SELECT count(*) - count(DISTINCT (insert_id, timestamp, log_name)) FROM "_AllLogs"'
    ).fetchall()[0]
    assert dups is not None and dups[0] == sample_load.duplicates


def test_sample_fields_match_the_file_loader(
    sample_db: tuple[duckdb.DuckDBPyConnection, AllLogsBuild], sample_load: LogLoad
) -> None:
    """Status, latency, trace, severity, log id and payload agree with the loader, row by row."""
    con, _ = sample_db
    table = con.sql(
        "SELECT DISTINCT ON (insert_id) insert_id, http_request.status AS status, "
        "http_request.latency.seconds + http_request.latency.nanos / 1e9 AS latency, "
        "trace, severity, log_id, text_payload, json_payload::VARCHAR AS payload, "
        "resource.labels ->> '$.revision_name' AS revision "
        'FROM "_AllLogs"'
    ).df()
    frame = sample_load.frame
    merged = frame.merge(table, on="insert_id", how="inner")
    assert len(merged) == frame["insert_id"].nunique()
    requests = merged[merged["http_status"].notna()]
    assert len(requests) > 100
    assert (requests["status"] == requests["http_status"]).all()
    assert (requests["latency"] - requests["http_latency_s"]).abs().max() < 1e-6
    has_severity = merged[merged["severity_y"].notna()]
    assert (has_severity["severity_x"] == has_severity["severity_y"]).all()
    traced = merged[merged["trace_y"].notna()]
    assert len(traced) > 100 and (traced["trace_x"] == traced["trace_y"]).all()
    assert (merged["log_name"] == "projects/netra-staging/logs/" + merged["log_id"]).all()
    texts = merged[merged["text_payload"].notna()]
    assert (texts["message"] == texts["text_payload"]).all()
    payloads = merged[merged["payload_y"].notna()]
    assert len(payloads) > 100
    assert all(
        json.loads(a) == json.loads(b)
        for a, b in zip(payloads["payload_x"], payloads["payload_y"], strict=True)
    )
    assert (merged["revision_x"] == merged["revision_y"]).all()


def test_columns_have_the_shared_types(
    sample_db: tuple[duckdb.DuckDBPyConnection, AllLogsBuild],
) -> None:
    """The table's columns are those of the _AllLogs contract, with its types."""
    con, _ = sample_db
    described = {row[0]: row[1] for row in con.sql('DESCRIBE "_AllLogs"').fetchall()}
    assert list(described) == list(ALLLOGS_SCHEMA)
    assert described["timestamp"] == "TIMESTAMP WITH TIME ZONE"
    assert described["json_payload"] == "JSON"
    assert described["http_request"].startswith("STRUCT(request_method VARCHAR")
    assert 'latency STRUCT("seconds" BIGINT, nanos BIGINT)' in described["http_request"]
    assert described["resource"] == 'STRUCT("type" VARCHAR, labels JSON)'


def test_edge_records_match_the_loader_in_ndjson(tmp_path: Path) -> None:
    """Odd records are kept or skipped exactly as the loader does, with the same reasons."""
    path = tmp_path / "edge.ndjson"
    body = (
        "\n".join(EDGE_LINES).encode() + b'\n{"timestamp": "2024-05-14T10:00:00Z", "x": "\xff"}\n'
    )
    path.write_bytes(body + _entry(timestamp="2024-05-14T11:00:00Z").encode())
    con, build = _build(path)
    _same_records(load_file(path), build)
    assert build.skipped >= 10 and build.formats == {str(path): "ndjson"}
    row = con.sql(
        'SELECT severity, severity_number FROM "_AllLogs" '
        "WHERE timestamp = '2024-05-14 08:00:00+00'"
    ).fetchall()
    assert ("ERROR", 500) in row


def test_edge_records_match_the_loader_in_a_gzipped_array(tmp_path: Path) -> None:
    """A gzipped JSON array is read like NDJSON: same accepted records and reasons."""
    path = tmp_path / "edge.json.gz"
    items = [line for line in EDGE_LINES if line.strip() and line != "not json"]
    path.write_bytes(gzip.compress(("[" + ",\n".join(items) + "]").encode()))
    _, build = _build(path)
    _same_records(load_file(path), build)
    assert build.formats == {str(path): "json"}


def test_http_request_struct_from_text_values(tmp_path: Path) -> None:
    """Sizes and status given as text become INT64; latency text becomes seconds and nanos."""
    path = tmp_path / "http.ndjson"
    http = {"status": "503", "latency": "12.0345s", "requestSize": "77", "protocol": "HTTP/1.1"}
    path.write_text(_entry(timestamp="2024-05-14T10:00:00Z", httpRequest=http) + "\n")
    con, _ = _build(path)
    got = con.execute('SELECT http_request FROM "_AllLogs"').fetchall()[0]
    assert got is not None
    assert got[0]["status"] == 503 and got[0]["request_size"] == 77
    assert got[0]["latency"] == {"seconds": 12, "nanos": 34_500_000}
    assert got[0]["response_size"] is None and got[0]["protocol"] == "HTTP/1.1"


def test_ndjson_and_gzipped_array_give_the_same_table(tmp_path: Path) -> None:
    """The same entries as NDJSON and as a gzipped pretty array build equal tables."""
    entries = list(generate(300, seed=5))
    nd = tmp_path / "a.ndjson"
    nd.write_text("".join(json.dumps(e) + "\n" for e in entries))
    arr = tmp_path / "a.json.gz"
    arr.write_bytes(gzip.compress(json.dumps(entries, indent=2).encode()))
    con_a, build_a = _build(nd)
    con_b, build_b = _build(arr)
    assert build_a.rows == build_b.rows == 300
    order = "insert_id, timestamp, log_name"
    query = (
        f'SELECT * REPLACE (json_payload::VARCHAR AS json_payload) FROM "_AllLogs" ORDER BY {order}'
    )
    assert con_a.sql(query).fetchall() == con_b.sql(query).fetchall()


def test_truncated_gzip_keeps_what_came_before(tmp_path: Path) -> None:
    """A cut gzip keeps the entries before the cut and records the cut as a skipped record."""
    entries = list(generate(2000, seed=3))
    whole = gzip.compress("".join(json.dumps(e) + "\n" for e in entries).encode())
    path = tmp_path / "cut.ndjson.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    _, build = _build(path)
    load = load_file(path)
    assert 0 < build.rows < 2000
    assert build.rows == len(load.frame) + load.duplicates
    assert build.skipped == load.bad_total >= 1


def test_several_files_and_a_directory(tmp_path: Path) -> None:
    """Files and directories are read in order; rows add up."""
    for name, seed in (("a.ndjson", 1), ("b.ndjson", 2)):
        (tmp_path / name).write_text("".join(json.dumps(e) + "\n" for e in generate(50, seed=seed)))
    _, build = _build(tmp_path, tmp_path / "a.ndjson")
    assert build.rows == 150
    assert len(build.files) == 3


def test_not_an_export_and_missing_file_are_refused(tmp_path: Path) -> None:
    """A file that is no log export, or none at all, raises the loader's errors."""
    other = tmp_path / "other.json"
    other.write_text('{"name": "x"}\n')
    with pytest.raises(NotALogExportError, match="not a log export"):
        _build(other)
    with pytest.raises(BadInputError, match="does not exist"):
        _build(tmp_path / "missing.ndjson")


def test_empty_file_builds_an_empty_table(tmp_path: Path) -> None:
    """An empty export is a valid table of 0 rows."""
    path = tmp_path / "empty.json"
    path.write_text("[]\n")
    con, build = _build(path)
    assert build.rows == 0 and build.skipped == 0
    assert column_bytes(con)["insert_id"] == 0


def test_column_bytes_follow_bigquery_sizes(
    sample_db: tuple[duckdb.DuckDBPyConnection, AllLogsBuild],
) -> None:
    """STRING is 2 + UTF-8 bytes, TIMESTAMP 8 per non-null value, structs the sum of fields."""
    con, build = sample_db
    sizes = column_bytes(con)
    ids = con.sql('SELECT insert_id FROM "_AllLogs"').fetchall()
    assert sizes["insert_id"] == sum(2 + len(i.encode()) for (i,) in ids if i is not None)
    assert sizes["timestamp"] == 8 * build.rows
    assert sizes["proto_payload"] == 0
    assert all(size >= 0 for size in sizes.values()) and set(sizes) == set(ALLLOGS_SCHEMA)


def test_replicate_grows_the_table_with_distinct_copies(tmp_path: Path) -> None:
    """Three copies: three times the rows and bytes, shifted timestamps, distinct insert ids."""
    path = tmp_path / "a.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in generate(200, seed=9)))
    con, _ = _build(path)
    before = column_bytes(con)
    span = con.execute(
        'SELECT min(timestamp), max(timestamp), count(DISTINCT insert_id) FROM "_AllLogs"'
    ).fetchall()[0]
    assert replicate_alllogs(con, "_AllLogs", 3) == 600
    stats = con.execute(
        'SELECT count(*), count(DISTINCT insert_id), min(timestamp), max(timestamp) FROM "_AllLogs"'
    ).fetchall()[0]
    assert stats is not None and span is not None
    assert stats[0] == 600 and stats[1] == 3 * span[2]
    assert stats[2] == span[0] and stats[3] > span[1]
    after = column_bytes(con)
    assert after["timestamp"] == 3 * before["timestamp"]
    assert after["insert_id"] > 3 * before["insert_id"]  # the ~k suffixes
    with pytest.raises(UsageError):
        replicate_alllogs(con, "_AllLogs", 0)


def test_database_file_keeps_table_and_sizes(tmp_path: Path) -> None:
    """A table built into a DuckDB file is there, with its sizes, after reopening."""
    path = tmp_path / "a.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in generate(100, seed=4)))
    db = tmp_path / "logs.duckdb"
    con = connect(db, memory_limit="256MB")
    build_alllogs(con, [path])
    sizes = column_bytes(con)
    con.close()
    con = connect(db)
    stored = con.execute(f"SELECT count(*) FROM {SIZES_TABLE}").fetchall()[0]
    assert stored is not None and stored[0] == len(ALLLOGS_SCHEMA)
    assert column_bytes(con) == sizes
    con.close()
