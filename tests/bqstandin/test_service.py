"""The REST methods without HTTP (uvs_analysis.bqstandin.service)."""

from __future__ import annotations

from typing import Any

import duckdb
import orjson
import pytest

from uvs_analysis.bqstandin.alllogs import AllLogsBuild
from uvs_analysis.bqstandin.engine import BigQueryEngine
from uvs_analysis.bqstandin.service import Reply, StandinService

BASE = "/bigquery/v2/projects/reader"
TABLE = "`demo-project.cloud_run_logs._AllLogs`"


@pytest.fixture
def service(sample_db: tuple[duckdb.DuckDBPyConnection, AllLogsBuild]) -> StandinService:
    """A service over the sample table that keeps two jobs and a fixed clock."""
    engine = BigQueryEngine(sample_db[0], project="demo-project", dataset="cloud_run_logs")
    return StandinService(engine, max_jobs=2, clock=lambda: 1_700_000_000.0)


def _call(service: StandinService, method: str, path: str, body: Any = None, **query: str) -> Any:
    data = orjson.dumps(body) if body is not None else b""
    reply = service.handle(method, BASE + path, query, data)
    assert isinstance(reply, Reply)
    return reply.status, orjson.loads(reply.body)


def _insert(service: StandinService, job_id: str, sql: str) -> Any:
    body = {"jobReference": {"jobId": job_id}, "configuration": {"query": {"query": sql}}}
    return _call(service, "POST", "/jobs", body)


def test_job_resource_and_pages(service: StandinService) -> None:
    """jobs.insert answers a DONE job with statistics; pages follow startIndex and tokens."""
    status, job = _insert(service, "j1", f"SELECT insert_id FROM {TABLE} ORDER BY insert_id")
    assert status == 200 and job["status"] == {"state": "DONE"}
    assert job["statistics"]["creationTime"] == "1700000000000"
    assert int(job["statistics"]["query"]["totalBytesProcessed"]) > 0
    status, page = _call(service, "GET", "/queries/j1", maxResults="3")
    assert status == 200 and page["totalRows"] == "4000" and len(page["rows"]) == 3
    status, page2 = _call(
        service, "GET", "/queries/j1", maxResults="3", pageToken=page["pageToken"]
    )
    _, by_index = _call(service, "GET", "/queries/j1", maxResults="3", startIndex="3")
    assert page2["rows"] == by_index["rows"] != page["rows"]
    _, empty = _call(service, "GET", "/queries/j1", maxResults="0")
    assert "rows" not in empty and "pageToken" not in empty


def test_old_jobs_are_forgotten(service: StandinService) -> None:
    """Beyond max_jobs the oldest job is dropped: its results are then 404."""
    for job_id in ("a", "b", "c"):
        assert _insert(service, job_id, "SELECT 1 AS x")[0] == 200
    assert _call(service, "GET", "/queries/a")[0] == 404
    assert _call(service, "GET", "/queries/c")[0] == 200
    assert service.stats().jobs_kept == 2


def test_failed_job_reports_its_error(service: StandinService) -> None:
    """A query failing in jobs.insert is a DONE job with errorResult; its results are the error."""
    status, job = _insert(service, "bad", "SELECT nope FROM " + TABLE)
    assert status == 200 and job["status"]["errorResult"]["reason"] == "invalidQuery"
    status, error = _call(service, "GET", "/queries/bad")
    assert status == 400 and "nope" in error["error"]["message"]
    assert error["error"]["errors"][0]["reason"] == "invalidQuery"


def test_malformed_requests(service: StandinService) -> None:
    """Bad JSON, a duplicate job id, a bad page token and unknown routes get clear errors."""
    reply = service.handle("POST", BASE + "/queries", {}, b"{not json")
    assert reply.status == 400 and b"Invalid JSON payload" in reply.body
    assert _insert(service, "dup", "SELECT 1 AS x")[0] == 200
    status, error = _insert(service, "dup", "SELECT 1 AS x")
    assert status == 409 and "Already Exists" in error["error"]["message"]
    assert _call(service, "GET", "/queries/dup", pageToken="zzz")[0] == 400
    assert _call(service, "GET", "/models")[0] == 404
    status, error = _call(service, "POST", "/jobs", {"configuration": {"load": {}}})
    assert status == 400 and "query jobs only" in error["error"]["message"]
    assert service.handle("GET", "/other", {}, b"").status == 404


def test_reset_forgets_counters(service: StandinService) -> None:
    """reset() zeroes the stats and drops the kept jobs."""
    _call(service, "POST", "/queries", {"query": "SELECT 1 AS x", "useLegacySql": False})
    assert service.stats().queries == 1 and service.stats().rows_returned == 1
    service.reset()
    assert service.stats().queries == 0 and service.stats().jobs_kept == 0
