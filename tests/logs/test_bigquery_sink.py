"""Sink tables as the _AllLogs columns (uvs_analysis.logs.bigquery_sink), run on the stand-in's
engine over DuckDB tables of each schema variant."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import duckdb
import pytest

from uvs_analysis.bqstandin.alllogs import connect, measure_columns
from uvs_analysis.bqstandin.engine import BigQueryEngine
from uvs_analysis.bqstandin.stage import ddl
from uvs_analysis.errors import BadInputError
from uvs_analysis.logs.bigquery_sink import (
    MAX_TABLES,
    Column,
    SinkTable,
    alllogs_view,
    columns_from_api,
    select_tables,
    sink_name,
    sink_table_names,
)
from uvs_analysis.logs.query import LogQuery, parse_time

P, D = "proj", "ds"


def _query(start: str, end: str, **kw: Any) -> LogQuery:
    return LogQuery(P, parse_time(start), parse_time(end), **kw)


@pytest.mark.parametrize(("key", "name"), [
    ("connectionId", "connectionid"),
    ("logging.googleapis.com/trace", "logging_googleapis_com_trace"),
    ("_private", "private"),
    ("run.googleapis.com/requests", "run_googleapis_com_requests"),
])
def test_sink_names(key: str, name: str) -> None:
    assert sink_name(key) == name


def test_table_bases_follow_the_log_ids() -> None:
    assert sink_table_names() == {
        "request": "run_googleapis_com_requests",
        "stdout": "run_googleapis_com_stdout",
        "stderr": "run_googleapis_com_stderr",
        "system": "run_googleapis_com_varlog_system",
    }


def test_shards_outside_the_window_and_other_logs_are_left_out() -> None:
    names = [
        "run_googleapis_com_stdout_20261101", "run_googleapis_com_stdout_20261102",
        "run_googleapis_com_stdout_20261103", "run_googleapis_com_stderr_20261102",
        "run_googleapis_com_requests", "run_googleapis_com_varlog_system_20261102",
        "cloudaudit_googleapis_com_activity_20261102", "run_googleapis_com_stdout_2026110",
        "run_googleapis_com_stdout_20261399", "notes",
    ]
    # The end is exclusive: midnight of the 3rd does not reach the 3rd's shard.
    chosen = select_tables(names, _query("2026-11-02T08:00:00Z", "2026-11-03T00:00:00Z",
                                         log_kinds=("request", "stdout", "stderr")))
    assert chosen == [
        ("run_googleapis_com_requests", "request", None),
        ("run_googleapis_com_stderr_20261102", "stderr", date(2026, 11, 2)),
        ("run_googleapis_com_stdout_20261102", "stdout", date(2026, 11, 2)),
    ]
    # Days are UTC days, whatever offset the window was given in.
    late = select_tables(names, _query("2026-11-02T23:30:00-02:00", "2026-11-03T23:00:00-02:00",
                                       log_kinds=("stdout",)))
    assert [n for n, _, _ in late] == ["run_googleapis_com_stdout_20261103"]


def test_view_refuses_no_tables_too_many_and_non_sink_tables() -> None:
    with pytest.raises(BadInputError, match="no Cloud Run log sink tables"):
        alllogs_view(P, D, [])
    schema = columns_from_api([{"name": "timestamp", "type": "TIMESTAMP"},
                               {"name": "logName", "type": "STRING"}])
    many = [SinkTable(f"run_googleapis_com_stdout_{i}", "stdout", None, schema)
            for i in range(MAX_TABLES + 1)]
    with pytest.raises(BadInputError, match=f"at most {MAX_TABLES} tables"):
        alllogs_view(P, D, many)
    bare = columns_from_api([{"name": "timestamp", "type": "TIMESTAMP"}])
    with pytest.raises(BadInputError, match="has no logName column"):
        alllogs_view(P, D, [SinkTable("run_googleapis_com_stdout", "stdout", None, bare)])


def test_columns_from_api_reads_nested_and_repeated_fields() -> None:
    schema = columns_from_api([
        {"name": "jsonPayload", "type": "RECORD", "fields": [
            {"name": "tags", "type": "STRING", "mode": "REPEATED"},
            {"name": "context", "type": "RECORD", "fields": [{"name": "x", "type": "INTEGER"}]},
        ]},
    ])
    payload = schema.field("JSONPAYLOAD")
    assert payload is not None and payload.is_record
    assert payload.field("tags") == Column("STRING", True)
    context = payload.field("context")
    assert context is not None and context.field("x") == Column("INTEGER")


# Running the view: DuckDB tables in each shape, queried through the stand-in's engine.

_BASE: dict[str, Any] = {"timestamp": "TIMESTAMPTZ", "logName": "VARCHAR"}
_VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "float": ({**_BASE, "httpRequest": {"status": "BIGINT", "latency": "DOUBLE"}},
              "{'status': 101, 'latency': 300.25}"),
    "text": ({**_BASE, "httpRequest": {"status": "VARCHAR", "latency": "VARCHAR"}},
             "{'status': '101', 'latency': '300.25s'}"),
    "record": ({**_BASE, "httpRequest": {"status": "BIGINT",
                                         "latency": {"seconds": "BIGINT", "nanos": "BIGINT"}}},
               "{'status': 101, 'latency': {'seconds': 300, 'nanos': 250000000}}"),
    "payload": ({**_BASE,
                 "labels": {"instanceid": "VARCHAR", "zone": "VARCHAR"},
                 "jsonPayload": {"message": "VARCHAR", "connectionid": "VARCHAR",
                                 "order": "BIGINT",
                                 "context": {"closecode": "BIGINT", "userid": "VARCHAR"},
                                 "deep": {"runid": "VARCHAR"}}},
                "{'instanceid': 'i-1', 'zone': 'z'}, {'message': 'm', 'connectionid': 'c-1', "
                "'order': 3, "
                "'context': {'closecode': 1011, 'userid': 'u-1'}, 'deep': {'runid': 'r-1'}}"),
}


def _api_fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    types = {"TIMESTAMPTZ": "TIMESTAMP", "VARCHAR": "STRING", "BIGINT": "INTEGER",
             "DOUBLE": "FLOAT"}
    return [{"name": n, "type": "RECORD", "fields": _api_fields(k)} if isinstance(k, dict)
            else {"name": n, "type": types[k]} for n, k in schema.items()]


@pytest.fixture(scope="module")
def engine() -> Iterator[BigQueryEngine]:
    con: duckdb.DuckDBPyConnection = connect()
    tables, schemas = {}, {}
    for name, (schema, values) in _VARIANTS.items():
        table = f"run_googleapis_com_requests_{name}"
        con.execute(f'CREATE TABLE "{table}" ({ddl(schema)})')
        con.execute(f"INSERT INTO \"{table}\" VALUES ('2026-11-02 10:00:00+00', 'log', {values})")
        con.execute(f"INSERT INTO \"{table}\" VALUES ('2026-11-02 10:00:01+00', 'log', "
                    f"{', '.join(['NULL'] * (len(schema) - 2))})")
        measure_columns(con, table, schema)
        tables[table], schemas[table] = table, schema
    yield BigQueryEngine(con, project=P, dataset=D, tables=tables, schemas=schemas)
    con.close()


def _view_rows(engine: BigQueryEngine, variant: str, select: str) -> list[dict[str, Any]]:
    name = f"run_googleapis_com_requests_{variant}"
    table = SinkTable(name, "request", None, columns_from_api(_api_fields(_VARIANTS[variant][0])))
    sql = f"SELECT {select} FROM {alllogs_view(P, D, [table])} ORDER BY timestamp"
    params = {"start": parse_time("2026-11-02T00:00:00Z"),
              "end": parse_time("2026-11-03T00:00:00Z")}
    rows: list[dict[str, Any]] = engine.run(sql, params).to_pylist()
    return rows


@pytest.mark.parametrize("variant", ["float", "text", "record"])
def test_latency_of_every_type_becomes_seconds_and_nanos(
    engine: BigQueryEngine, variant: str
) -> None:
    rows = _view_rows(engine, variant, "http_request.latency.seconds AS s, "
                      "http_request.latency.nanos AS n, http_request.status AS status, "
                      "http_request IS NULL AS no_http, log_id, resource.type AS rtype")
    assert rows[0] == {"s": 300, "n": 250_000_000, "status": 101, "no_http": False,
                       "log_id": "run.googleapis.com/requests", "rtype": None}
    assert rows[1]["no_http"] is True  # an entry without httpRequest has none in the view


def test_keys_the_normalizer_reads_get_their_logentry_spelling(engine: BigQueryEngine) -> None:
    rows = _view_rows(engine, "payload", """
        JSON_VALUE(labels, '$.instanceId') AS instance, JSON_VALUE(labels, '$.zone') AS zone,
        JSON_VALUE(json_payload, '$.connectionId') AS conn,
        JSON_VALUE(json_payload, '$.context.closeCode') AS code,
        JSON_VALUE(json_payload, '$.context.userId') AS user,
        JSON_VALUE(json_payload, '$.deep.runid') AS deep_run,
        JSON_VALUE(json_payload, '$.order') AS `order`,
        json_payload IS NULL AS no_payload""")
    assert rows[0] == {"instance": "i-1", "zone": "z", "conn": "c-1", "code": "1011",
                       "user": "u-1", "deep_run": "r-1", "order": "3", "no_payload": False}
    assert rows[1]["no_payload"] is True and rows[1]["instance"] is None


def test_payload_fields_are_listed_only_when_a_key_is_renamed() -> None:
    """A payload whose keys need no new spelling is read whole (a short query)."""
    def view(payload_fields: list[dict[str, Any]]) -> str:
        schema = columns_from_api([
            {"name": "timestamp", "type": "TIMESTAMP"}, {"name": "logName", "type": "STRING"},
            {"name": "jsonPayload", "type": "RECORD", "fields": payload_fields}])
        return alllogs_view(P, D, [SinkTable("run_googleapis_com_stdout", "stdout", None, schema)])

    snake = view([{"name": "connection_id", "type": "STRING"},
                  {"name": "context", "type": "RECORD",
                   "fields": [{"name": "close_code", "type": "INTEGER"}]}])
    assert "TO_JSON(jsonPayload)" in snake and "jsonPayload.`" not in snake
    nested = view([{"name": "message", "type": "STRING"},
                   {"name": "context", "type": "RECORD",
                    "fields": [{"name": "closecode", "type": "INTEGER"}]}])
    assert "jsonPayload.`context`.`closecode` AS `closeCode`" in nested
