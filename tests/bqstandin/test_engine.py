"""BigQuery-dialect SQL run on DuckDB (uvs_analysis.bqstandin.engine)."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pytest

from uvs_analysis.bqstandin.alllogs import AllLogsBuild, column_bytes
from uvs_analysis.bqstandin.engine import BigQueryEngine, QueryError

TABLE = "`demo-project.cloud_run_logs._AllLogs`"
START = datetime(2025, 9, 10, 22, 0, tzinfo=UTC)
END = datetime(2025, 9, 10, 22, 30, tzinfo=UTC)


def _count(con: duckdb.DuckDBPyConnection, where: str = "true") -> int:
    return int(con.execute(f'SELECT count(*) FROM "_AllLogs" WHERE {where}').fetchall()[0][0])


def test_run_with_named_parameters_matches_duckdb(
    engine: BigQueryEngine, sample_db: tuple[duckdb.DuckDBPyConnection, AllLogsBuild]
) -> None:
    """A windowed, filtered BigQuery query returns what the same filter in DuckDB selects."""
    sql = (
        f"SELECT timestamp, severity, http_request.status AS status FROM {TABLE} "
        "WHERE timestamp >= @start AND timestamp < @end AND severity IN UNNEST(@sev) "
        "AND REGEXP_CONTAINS(log_id, r'requests$') ORDER BY timestamp"
    )
    got = engine.run(sql, {"start": START, "end": END, "sev": ["INFO", "WARNING"]})
    want = _count(
        sample_db[0],
        "timestamp >= '2025-09-10 22:00:00+00' AND timestamp < '2025-09-10 22:30:00+00' "
        "AND severity IN ('INFO', 'WARNING') AND log_id = 'run.googleapis.com/requests'",
    )
    assert got.num_rows == want > 10
    stamps = got.column("timestamp").to_pylist()
    assert stamps == sorted(stamps) and START <= stamps[0] and stamps[-1] < END
    assert set(got.column("severity").to_pylist()) <= {"INFO", "WARNING"}


def test_json_value_and_struct_fields(
    engine: BigQueryEngine, sample_db: tuple[duckdb.DuckDBPyConnection, AllLogsBuild]
) -> None:
    """JSON_VALUE reads the payload and dotted names read struct fields."""
    got = engine.run(
        f"SELECT JSON_VALUE(json_payload, '$.logger') AS logger, "
        "JSON_VALUE(resource.labels, '$.service_name') AS service, "
        "http_request.latency.seconds AS secs "
        f"FROM {TABLE} WHERE JSON_VALUE(json_payload, '$.logger') = 'uvicorn.error'"
    )
    want = _count(sample_db[0], "json_payload ->> '$.logger' = 'uvicorn.error'")
    assert got.num_rows == want > 0
    assert set(got.column("service").to_pylist()) == {"netra-backend-staging"}
    assert got.column("secs").null_count == got.num_rows


def test_table_names_in_every_form(engine: BigQueryEngine) -> None:
    """Full, dataset-qualified and (with a default dataset) bare names all reach the table."""
    counts = {
        engine.run(f"SELECT COUNT(*) AS n FROM {TABLE}").column("n")[0].as_py(),
        engine.run("SELECT COUNT(*) AS n FROM cloud_run_logs._AllLogs").column("n")[0].as_py(),
        engine.run("SELECT COUNT(*) AS n FROM `demo-project`.cloud_run_logs._AllLogs")
        .column("n")[0]
        .as_py(),
        engine.run("SELECT COUNT(*) AS n FROM _AllLogs", default_dataset="cloud_run_logs")
        .column("n")[0]
        .as_py(),
    }
    assert counts == {4000}


def test_ctes_joins_and_aggregates(engine: BigQueryEngine) -> None:
    """WITH, a self join and TIMESTAMP_TRUNC aggregates run and agree with each other."""
    per_minute = engine.run(
        f"WITH w AS (SELECT * FROM {TABLE} WHERE http_request.status = 101) "
        "SELECT TIMESTAMP_TRUNC(timestamp, MINUTE) AS minute, COUNT(*) AS n "
        "FROM w GROUP BY minute ORDER BY minute"
    )
    total = engine.run(
        f"SELECT COUNT(*) AS n FROM {TABLE} AS a JOIN "
        f"(SELECT DISTINCT insert_id FROM {TABLE} WHERE http_request.status = 101) AS b "
        "USING (insert_id)"
    )
    assert sum(per_minute.column("n").to_pylist()) == total.column("n")[0].as_py() > 0


def test_result_types_are_bigquery_types(engine: BigQueryEngine) -> None:
    """JSON stays JSON, SUM of INT64 is INT64 (not DuckDB's HUGEINT), structs keep fields."""
    got = engine.run(
        f"SELECT json_payload, SUM(http_request.status) AS s, ANY_VALUE(resource) AS r "
        f"FROM {TABLE} GROUP BY json_payload LIMIT 1"
    )
    assert isinstance(got.schema.field("json_payload").type, pa.JsonType)
    assert got.schema.field("s").type == pa.int64()
    assert got.schema.field("r").type.field("labels").type == pa.json_()


def test_dry_run_bytes_grow_with_columns(
    engine: BigQueryEngine, sample_db: tuple[duckdb.DuckDBPyConnection, AllLogsBuild]
) -> None:
    """One column costs its stored size; more columns cost more; * costs the whole table."""
    sizes = column_bytes(sample_db[0])
    one = engine.dry_run(f"SELECT timestamp FROM {TABLE}")
    two = engine.dry_run(f"SELECT timestamp, json_payload FROM {TABLE} WHERE severity = 'ERROR'")
    star = engine.dry_run(f"SELECT * FROM {TABLE}")
    assert one.total_bytes_processed == sizes["timestamp"] > 0
    assert (
        two.total_bytes_processed == sizes["timestamp"] + sizes["json_payload"] + sizes["severity"]
    )
    assert star.total_bytes_processed == sum(sizes.values()) == engine.table_bytes()
    assert one.columns == ("_AllLogs.timestamp",)
    assert one.schema.names == ["timestamp"]


def test_dry_run_counts_structs_whole_and_prunes_ctes(
    engine: BigQueryEngine, sample_db: tuple[duckdb.DuckDBPyConnection, AllLogsBuild]
) -> None:
    """A struct field costs the whole struct; SELECT * in a CTE costs what is used; COUNT(*) 0."""
    sizes = column_bytes(sample_db[0])
    field = engine.dry_run(f"SELECT http_request.status FROM {TABLE}")
    assert field.total_bytes_processed == sizes["http_request"]
    cte = engine.dry_run(f"WITH x AS (SELECT * FROM {TABLE}) SELECT log_id FROM x")
    assert cte.total_bytes_processed == sizes["log_id"]
    assert engine.dry_run(f"SELECT COUNT(*) FROM {TABLE}").total_bytes_processed == 0


def test_dry_run_leaves_data_unchanged(
    engine: BigQueryEngine, sample_db: tuple[duckdb.DuckDBPyConnection, AllLogsBuild]
) -> None:
    """A dry run reads no rows and changes nothing: the same estimate twice, same row count."""
    before = _count(sample_db[0])
    first = engine.dry_run(f"SELECT insert_id FROM {TABLE}").total_bytes_processed
    second = engine.dry_run(f"SELECT insert_id FROM {TABLE}").total_bytes_processed
    assert first == second > 0 and _count(sample_db[0]) == before


def test_max_bytes_billed_refuses_before_running(engine: BigQueryEngine) -> None:
    """An estimate over maximumBytesBilled is refused with bytesBilledLimitExceeded."""
    need = engine.dry_run(f"SELECT * FROM {TABLE}").total_bytes_processed
    with pytest.raises(QueryError, match=f"bytes billed: 1000. {need} or higher") as caught:
        engine.execute(f"SELECT * FROM {TABLE}", max_bytes_billed=1000)
    assert caught.value.status == 400 and caught.value.reason == "bytesBilledLimitExceeded"
    ok = engine.execute(f"SELECT * FROM {TABLE} LIMIT 1", max_bytes_billed=need)
    assert ok.total_bytes_processed == need and ok.table.num_rows == 1


@pytest.mark.parametrize(
    ("sql", "status", "reason", "words"),
    [
        ("SELEC timestamp FROM t", 400, "invalidQuery", "Syntax error"),
        (f"SELECT nope FROM {TABLE}", 400, "invalidQuery", '"nope" not found'),
        ("SELECT 1 FROM `demo-project.cloud_run_logs.Other`", 404, "notFound", "Table"),
        ("SELECT 1 FROM other_ds._AllLogs", 404, "notFound", "Dataset demo-project:other_ds"),
        ("SELECT 1 FROM _AllLogs", 400, "invalidQuery", "must be qualified with a dataset"),
        (f"SELECT @missing FROM {TABLE}", 400, "invalidQuery", "parameter 'missing' not found"),
        ("SELECT 1; SELECT 2", 400, "invalidQuery", "2 statements"),
        ("", 400, "invalidQuery", "empty"),
        (f"SELECT REGEXP_EXTRACT(text_payload, r'(') FROM {TABLE}", 400, "invalidQuery", "("),
    ],
)
def test_errors_say_what_is_wrong(
    engine: BigQueryEngine, sql: str, status: int, reason: str, words: str
) -> None:
    """Bad SQL, unknown names and parameters give BigQuery's status, reason and a clear text."""
    with pytest.raises(QueryError) as caught:
        engine.run(sql)
    assert caught.value.status == status and caught.value.reason == reason
    assert words in caught.value.message


@pytest.mark.parametrize(
    "sql",
    [
        f"DELETE FROM {TABLE} WHERE true",
        f"INSERT INTO {TABLE} (insert_id) VALUES ('x')",
        f"UPDATE {TABLE} SET severity = 'X' WHERE true",
        f"DROP TABLE {TABLE}",
        "CREATE TABLE cloud_run_logs.t AS SELECT 1 AS a",
    ],
)
def test_only_queries_run(
    engine: BigQueryEngine, sample_db: tuple[duckdb.DuckDBPyConnection, AllLogsBuild], sql: str
) -> None:
    """Statements that are not queries are refused and the table is left as it was."""
    before = _count(sample_db[0])
    with pytest.raises(QueryError, match="not allowed: the stand-in is read-only"):
        engine.run(sql)
    assert _count(sample_db[0]) == before


def test_unaliased_columns_are_named_like_bigquery(engine: BigQueryEngine) -> None:
    """Expressions without an alias are named f0_, f1_...; plain columns keep their names."""
    got = engine.run(f"SELECT COUNT(*), severity, MAX(timestamp) FROM {TABLE} GROUP BY severity")
    assert got.schema.names == ["f0_", "severity", "f1_"]


def test_untranslatable_sql_names_the_construct(engine: BigQueryEngine) -> None:
    """A BigQuery construct DuckDB lacks fails with the translation's note."""
    with pytest.raises(QueryError, match="LIMIT inside ARRAY_AGG is not supported"):
        engine.run(f"SELECT ARRAY_AGG(insert_id ORDER BY timestamp LIMIT 3) AS a FROM {TABLE}")


def test_div_keeps_the_grouping_of_its_arguments(engine: BigQueryEngine) -> None:
    """DIV(a - b, c) divides the difference (sqlglot writes DuckDB's tighter-binding //)."""
    table = engine.run("SELECT DIV(17 - 7, 5) AS d, DIV(20, 2 + 3) AS e, DIV(-7, 2) AS f")
    assert table.to_pylist() == [{"d": 2, "e": 4, "f": -3}]
