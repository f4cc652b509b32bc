"""The real google-cloud-bigquery client against the stand-in (uvs_analysis.bqstandin.server)."""

from __future__ import annotations

import json
import urllib.request
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import bigquery

from uvs_analysis.bqstandin import BigQueryEngine, StandinHandle, start_standin
from uvs_analysis.bqstandin.server import start_standin_from_database
from uvs_analysis.errors import BadInputError
from uvs_analysis.logs.sample import generate

TABLE = "`demo-project.cloud_run_logs._AllLogs`"
START = datetime(2025, 9, 10, 22, 0, tzinfo=UTC)
END = datetime(2025, 9, 10, 22, 30, tzinfo=UTC)
WINDOW_SQL = (
    f"SELECT timestamp, severity, insert_id, http_request, resource, json_payload FROM {TABLE} "
    "WHERE timestamp >= @start AND timestamp < @end AND severity IN UNNEST(@sev) "
    "ORDER BY timestamp, insert_id"
)


def _window_params() -> list[bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter]:
    return [
        bigquery.ScalarQueryParameter("start", "TIMESTAMP", START),
        bigquery.ScalarQueryParameter("end", "TIMESTAMP", END),
        bigquery.ArrayQueryParameter("sev", "STRING", ["INFO", "ERROR"]),
    ]


def _methods(handle: StandinHandle) -> dict[str, int]:
    return dict(handle.stats().methods)


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def test_query_job_with_parameters(standin: StandinHandle, engine: BigQueryEngine) -> None:
    """client.query(...).result() uses jobs.insert and getQueryResults; rows match the engine."""
    client = standin.client()
    before = _methods(standin)
    job = client.query(
        WINDOW_SQL, job_config=bigquery.QueryJobConfig(query_parameters=_window_params())
    )
    rows = list(job.result())
    want = engine.run(WINDOW_SQL, {"start": START, "end": END, "sev": ["INFO", "ERROR"]})
    assert len(rows) == want.num_rows > 50
    assert [r["insert_id"] for r in rows] == want.column("insert_id").to_pylist()
    assert rows[0]["timestamp"] >= START and isinstance(rows[0]["resource"]["labels"], dict)
    requests = [r for r in rows if r["http_request"] is not None]
    assert requests and isinstance(requests[0]["http_request"]["latency"]["nanos"], int)
    assert (
        job.state == "DONE"
        and job.total_bytes_processed
        == engine.dry_run(
            WINDOW_SQL, {"start": START, "end": END, "sev": ["x"]}
        ).total_bytes_processed
    )
    calls = _delta(before, _methods(standin))
    assert calls.get("POST/jobs") == 1 and calls.get("GET/queries/*", 0) >= 1
    assert "POST/queries" not in calls


def test_query_and_wait_uses_jobs_query(standin: StandinHandle, engine: BigQueryEngine) -> None:
    """client.query_and_wait answers from one jobs.query call when the rows fit a page."""
    client = standin.client()
    before = _methods(standin)
    rows = client.query_and_wait(
        WINDOW_SQL, job_config=bigquery.QueryJobConfig(query_parameters=_window_params())
    )
    got = [r["insert_id"] for r in rows]
    want = engine.run(WINDOW_SQL, {"start": START, "end": END, "sev": ["INFO", "ERROR"]})
    assert got == want.column("insert_id").to_pylist()
    assert _delta(before, _methods(standin)) == {"POST/queries": 1}


def test_results_are_paged(standin: StandinHandle) -> None:
    """4000 rows in pages of 700 arrive complete and in order over several getQueryResults."""
    client = standin.client()
    pages_before = standin.stats().pages
    sql = f"SELECT insert_id, timestamp FROM {TABLE} ORDER BY timestamp, insert_id"
    result = client.query(sql).result(page_size=700)
    pages = list(result.pages)
    rows = [row for page in pages for row in page]
    assert len(pages) == 6 and len(rows) == result.total_rows == 4000
    stamps = [r["timestamp"] for r in rows]
    assert stamps == sorted(stamps)
    assert standin.stats().pages - pages_before >= 6
    small = client.query_and_wait(sql, max_results=300, page_size=300)
    assert sum(1 for _ in small) == 300


def test_query_and_wait_pages_beyond_the_first(standin: StandinHandle) -> None:
    """A query_and_wait result larger than its first page fetches the rest by page token."""
    client = standin.client()
    sql = f"SELECT insert_id FROM {TABLE} ORDER BY timestamp, insert_id"
    rows = list(client.query_and_wait(sql, page_size=1500))
    assert len(rows) == 4000 and len({r["insert_id"] for r in rows}) < 4000  # duplicates kept


def test_to_arrow_matches_the_engine(standin: StandinHandle, engine: BigQueryEngine) -> None:
    """to_arrow returns the engine's rows and values, JSON and structs included."""
    client = standin.client()
    sql = (
        f"SELECT timestamp, insert_id, http_request.status AS status, http_request.latency, "
        f"JSON_VALUE(json_payload, '$.message') AS message FROM {TABLE} "
        "ORDER BY timestamp, insert_id"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no BigQuery Storage module: the client says so
        got = client.query(sql).to_arrow()
    want = engine.run(sql)
    assert got.num_rows == want.num_rows == 4000
    for name in ("insert_id", "status", "message", "latency"):
        assert got.column(name).to_pylist() == want.column(name).to_pylist()
    assert got.column("timestamp").to_pylist() == want.column("timestamp").to_pylist()


def test_dry_run_estimates_bytes(standin: StandinHandle, engine: BigQueryEngine) -> None:
    """Dry runs report the engine's estimate: positive, fewer columns fewer bytes, no rows."""
    client = standin.client()
    config = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False)
    rows_before = standin.stats().rows_returned
    few = client.query(f"SELECT timestamp FROM {TABLE}", job_config=config)
    many = client.query(f"SELECT timestamp, json_payload, labels FROM {TABLE}", job_config=config)
    again = client.query(f"SELECT timestamp FROM {TABLE}", job_config=config)
    assert 0 < few.total_bytes_processed < many.total_bytes_processed
    assert few.total_bytes_processed == again.total_bytes_processed
    assert (
        few.total_bytes_processed
        == engine.dry_run(f"SELECT timestamp FROM {TABLE}").total_bytes_processed
    )
    assert [f.field_type for f in few.schema or []] == ["TIMESTAMP"]
    assert standin.stats().rows_returned == rows_before


def test_maximum_bytes_billed_is_enforced(standin: StandinHandle) -> None:
    """A query estimated above maximum_bytes_billed fails with bytesBilledLimitExceeded."""
    client = standin.client()
    config = bigquery.QueryJobConfig(maximum_bytes_billed=1000)
    with pytest.raises(gexc.BadRequest, match="exceeded limit for bytes billed: 1000"):
        client.query_and_wait(f"SELECT * FROM {TABLE}", job_config=config)
    with pytest.raises(gexc.GoogleAPICallError) as caught:
        client.query(f"SELECT * FROM {TABLE}", job_config=config).result()
    assert caught.value.errors[0]["reason"] == "bytesBilledLimitExceeded"
    cheap = bigquery.QueryJobConfig(maximum_bytes_billed=10**12)
    assert len(list(client.query_and_wait(f"SELECT * FROM {TABLE} LIMIT 3", job_config=cheap))) == 3


@pytest.mark.parametrize("path", ["query", "query_and_wait"])
@pytest.mark.parametrize(
    ("sql", "error", "words"),
    [
        ("SELEC 1", gexc.BadRequest, "Syntax error"),
        (f"SELECT nope FROM {TABLE}", gexc.BadRequest, '"nope" not found'),
        ("SELECT 1 FROM `demo-project.cloud_run_logs.nope`", gexc.NotFound, "cloud_run_logs.nope"),
        (f"DELETE FROM {TABLE} WHERE true", gexc.BadRequest, "read-only"),
    ],
)
def test_errors_reach_the_client(
    standin: StandinHandle, path: str, sql: str, error: type[Exception], words: str
) -> None:
    """Bad SQL, unknown tables and writes raise the client's BadRequest / NotFound with our text."""
    client = standin.client()
    with pytest.raises(error, match=words):
        if path == "query":
            client.query(sql).result()
        else:
            client.query_and_wait(sql)


def test_legacy_sql_is_refused(standin: StandinHandle) -> None:
    """useLegacySql=true is a 400."""
    client = standin.client()
    config = bigquery.QueryJobConfig(use_legacy_sql=True)
    with pytest.raises(gexc.BadRequest, match="Legacy SQL is not supported"):
        client.query_and_wait(f"SELECT 1 FROM [{TABLE.strip('`')}]", job_config=config)


def test_tables_get_and_jobs_get(standin: StandinHandle) -> None:
    """get_table returns the _AllLogs schema; get_job finds a finished job; unknown ones 404."""
    client = standin.client()
    table = client.get_table(standin.table_id)
    assert [f.name for f in table.schema][:3] == ["timestamp", "receive_timestamp", "log_name"]
    assert table.num_rows == 4000
    job = client.query(f"SELECT 1 AS x FROM {TABLE} LIMIT 1")
    assert client.get_job(job.job_id).state == "DONE"
    with pytest.raises(gexc.NotFound):
        client.get_job("no-such-job")
    with pytest.raises(gexc.NotFound):
        client.get_table("demo-project.cloud_run_logs.nope")


def test_stats_route_counts_what_crossed_the_wire(standin: StandinHandle) -> None:
    """GET /standin/stats shows the queries, bytes and rows sent."""
    client = standin.client()
    before = standin.stats()
    rows = list(client.query_and_wait(f"SELECT insert_id FROM {TABLE} LIMIT 10"))
    with urllib.request.urlopen(f"{standin.endpoint}/standin/stats", timeout=10) as reply:
        stats = json.load(reply)
    assert stats["queries"] == before.queries + 1
    assert stats["rows_returned"] == before.rows_returned + len(rows) == before.rows_returned + 10
    assert stats["bytes_estimated"] > before.bytes_estimated


def test_start_from_database_and_bad_inputs(tmp_path: Path) -> None:
    """A built database file is served as it is; a missing log file or database is refused."""
    path = tmp_path / "a.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in generate(120, seed=2)))
    db = tmp_path / "logs.duckdb"
    with start_standin([path], database=db, project="p1", dataset="d1") as first:
        assert first.build is not None and first.build.rows == 120
        assert first.table_id == "p1.d1._AllLogs"
    with start_standin_from_database(db, project="p1", dataset="d1") as again:
        assert again.build is None
        rows = again.client().query_and_wait("SELECT COUNT(*) AS n FROM `p1.d1._AllLogs`")
        assert next(iter(rows))["n"] == 120
    with pytest.raises(BadInputError, match="does not exist"):
        start_standin([tmp_path / "missing.ndjson"])
    with pytest.raises(BadInputError, match="does not exist"):
        start_standin_from_database(tmp_path / "missing.duckdb")
