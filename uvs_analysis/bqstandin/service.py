"""The BigQuery REST methods the stand-in answers, independent of HTTP: request in, Reply out.

Methods (paths under ``/bigquery/v2``):
    ``POST projects/P/queries``            jobs.query: runs the query, answers the first page.
    ``POST projects/P/jobs``               jobs.insert (query jobs): runs it, answers the Job.
    ``GET  projects/P/jobs/J``             jobs.get.
    ``POST projects/P/jobs/J/cancel``      jobs.cancel (jobs are always DONE).
    ``GET  projects/P/queries/J``          jobs.getQueryResults: pages of a job's rows.
    ``GET  projects/P/datasets/D[/tables/T]``  datasets.get / tables.get of the served data.

Queries run synchronously, so every job is DONE when it is answered. A job's rows are kept
for paging; beyond ``max_jobs`` the oldest job is forgotten. A query that fails in jobs.insert
gives a DONE job with ``status.errorResult`` and its getQueryResults answers the error, as
BigQuery does; jobs.query answers the error at once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import orjson

from uvs_analysis.bqstandin.engine import BigQueryEngine, QueryError, QueryResult
from uvs_analysis.bqstandin.wire import TimestampFormat, encode_rows, schema_fields

__all__ = ["Reply", "StandinService", "StandinStats", "error_body"]

_STATUS: Final = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ALREADY_EXISTS",
}
_PAGE_BYTES: Final = 10 << 20
_DUCK_TO_BQ: Final = {
    "VARCHAR": "STRING",
    "BIGINT": "INTEGER",
    "TIMESTAMPTZ": "TIMESTAMP",
    "BOOLEAN": "BOOLEAN",
    "DOUBLE": "FLOAT",
    "JSON": "JSON",
}


@dataclass(frozen=True)
class Reply:
    """An HTTP status and a JSON body."""

    status: int
    body: bytes


def error_body(code: int, message: str, reason: str | None = None) -> bytes:
    """Google's JSON error shape, with BigQuery's ``errors[].reason``."""
    reason = reason or {400: "invalid", 404: "notFound", 409: "duplicate"}.get(code, "invalid")
    return orjson.dumps(
        {
            "error": {
                "code": code,
                "message": message,
                "status": _STATUS.get(code, "UNKNOWN"),
                "errors": [{"message": message, "domain": "global", "reason": reason}],
            }
        }
    )


@dataclass(frozen=True)
class StandinStats:
    """What crossed the wire since the start (or the last reset)."""

    requests: int = 0
    queries: int = 0
    dry_runs: int = 0
    failed_queries: int = 0
    bytes_estimated: int = 0
    rows_returned: int = 0
    pages: int = 0
    jobs_kept: int = 0
    methods: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Every field, as plain JSON values."""
        return {**asdict(self), "methods": dict(self.methods)}


@dataclass
class _Job:
    project: str
    job_id: str
    location: str
    config: dict[str, Any]
    created_ms: int
    ended_ms: int
    dry_run: bool
    result: QueryResult | None = None
    fields: list[dict[str, Any]] = field(default_factory=list)
    total_bytes: int = 0
    error: QueryError | None = None


class StandinService:
    """The REST methods over one engine.

    Args:
        engine: runs the SQL.
        location: the location jobs report (``US`` like a default dataset).
        max_jobs: jobs whose rows are kept for paging.
        clock: seconds since the epoch, for job times (``time.time`` by default).
    """

    def __init__(
        self,
        engine: BigQueryEngine,
        *,
        location: str = "US",
        max_jobs: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.location = location
        self.max_jobs = max_jobs
        self.clock = clock
        self._jobs: OrderedDict[tuple[str, str], _Job] = OrderedDict()
        self._lock = threading.Lock()
        self._counter = 0
        self._stats: dict[str, int] = {}
        self._methods: dict[str, int] = {}

    # Public

    def stats(self) -> StandinStats:
        """A snapshot of the counters."""
        with self._lock:
            counts = dict(self._stats)
            return StandinStats(**counts, jobs_kept=len(self._jobs), methods=dict(self._methods))

    def reset(self) -> None:
        """Forget the counters and the kept jobs."""
        with self._lock:
            self._stats.clear()
            self._methods.clear()
            self._jobs.clear()

    def handle(self, method: str, path: str, query: Mapping[str, str], body: bytes) -> Reply:
        """Answer one request (``path`` without the query string)."""
        parts = [p for p in path.split("/") if p]
        self._count("requests")
        if parts[:2] != ["bigquery", "v2"] or len(parts) < 4 or parts[2] != "projects":
            return Reply(404, error_body(404, f"No method at {method} {path}"))
        project, rest = parts[3], parts[4:]
        route = (method, *(r if i % 2 == 0 else "*" for i, r in enumerate(rest)))
        handlers: dict[tuple[str, ...], Callable[[], Reply]] = {
            ("POST", "queries"): lambda: self._jobs_query(project, body),
            ("POST", "jobs"): lambda: self._jobs_insert(project, body),
            ("GET", "jobs", "*"): lambda: self._jobs_get(project, rest[1]),
            ("POST", "jobs", "*", "cancel"): lambda: self._jobs_cancel(project, rest[1]),
            ("GET", "queries", "*"): lambda: self._query_results(project, rest[1], query),
            ("GET", "datasets", "*"): lambda: self._dataset(project, rest[1]),
            ("GET", "datasets", "*", "tables"): lambda: self._tables(project, rest[1], query),
            ("GET", "datasets", "*", "tables", "*"): lambda: self._table(project, rest[1], rest[3]),
        }
        handler = handlers.get(route)
        if handler is None:
            return Reply(404, error_body(404, f"No method at {method} {path}"))
        with self._lock:
            name = "/".join(route)
            self._methods[name] = self._methods.get(name, 0) + 1
        return handler()

    # Private: methods

    def _jobs_query(self, project: str, body: bytes) -> Reply:
        request = _json_object(body)
        if isinstance(request, Reply):
            return request
        config: dict[str, Any] = {
            key: request[key]
            for key in (
                "query",
                "useLegacySql",
                "queryParameters",
                "parameterMode",
                "defaultDataset",
                "maximumBytesBilled",
            )
            if key in request
        }
        dry_run = bool(request.get("dryRun"))
        job = self._run(project, None, request.get("location"), config, dry_run)
        if job.error is not None:
            return Reply(job.error.status, _error(job.error))
        head: dict[str, Any] = {
            "kind": "bigquery#queryResponse",
            "schema": {"fields": job.fields},
            "jobReference": _reference(job),
            "totalBytesProcessed": str(job.total_bytes),
            "jobComplete": True,
            "cacheHit": False,
        }
        if dry_run:
            return Reply(200, orjson.dumps(head))
        fmt = _timestamp_format(request.get("formatOptions") or {})
        return self._page(job, head, 0, _int(request.get("maxResults")), fmt)

    def _jobs_insert(self, project: str, body: bytes) -> Reply:
        request = _json_object(body)
        if isinstance(request, Reply):
            return request
        configuration = request.get("configuration") or {}
        config = configuration.get("query")
        if not isinstance(config, dict):
            return Reply(
                400,
                error_body(
                    400, "The stand-in runs query jobs only: configuration.query is missing"
                ),
            )
        reference = request.get("jobReference") or {}
        job_id = reference.get("jobId")
        if job_id and (project, job_id) in self._jobs:
            return Reply(
                409,
                error_body(409, f"Already Exists: Job {project}:{self.location}.{job_id}"),
            )
        job = self._run(
            project, job_id, reference.get("location"), config, bool(configuration.get("dryRun"))
        )
        return Reply(200, orjson.dumps(self._resource(job)))

    def _jobs_get(self, project: str, job_id: str) -> Reply:
        job = self._jobs.get((project, job_id))
        if job is None:
            return self._no_job(project, job_id)
        return Reply(200, orjson.dumps(self._resource(job)))

    def _jobs_cancel(self, project: str, job_id: str) -> Reply:
        job = self._jobs.get((project, job_id))
        if job is None:
            return self._no_job(project, job_id)
        return Reply(
            200, orjson.dumps({"kind": "bigquery#jobCancelResponse", "job": self._resource(job)})
        )

    def _query_results(self, project: str, job_id: str, query: Mapping[str, str]) -> Reply:
        job = self._jobs.get((project, job_id))
        if job is None:
            return self._no_job(project, job_id)
        if job.error is not None:
            return Reply(job.error.status, _error(job.error))
        head: dict[str, Any] = {
            "kind": "bigquery#getQueryResultsResponse",
            "schema": {"fields": job.fields},
            "jobReference": _reference(job),
            "totalBytesProcessed": str(job.total_bytes),
            "jobComplete": True,
            "cacheHit": False,
        }
        if job.dry_run or job.result is None:
            return Reply(200, orjson.dumps({**head, "totalRows": "0"}))
        token = query.get("pageToken")
        start = _int(query.get("startIndex")) or 0
        if token:
            if not token.startswith("p") or not token[1:].isdigit():
                return Reply(400, error_body(400, f"Invalid page token: {token!r}"))
            start = int(token[1:])
        fmt = _timestamp_format(
            {
                "useInt64Timestamp": query.get("formatOptions.useInt64Timestamp", "").lower()
                == "true",
                "timestampOutputFormat": query.get("formatOptions.timestampOutputFormat"),
            }
        )
        return self._page(job, head, start, _int(query.get("maxResults")), fmt)

    def _dataset(self, project: str, dataset: str) -> Reply:
        engine = self.engine
        if (project, dataset) != (engine.project, engine.dataset):
            return Reply(
                404, error_body(404, f"Not found: Dataset {project}:{dataset}", "notFound")
            )
        return Reply(
            200,
            orjson.dumps(
                {
                    "kind": "bigquery#dataset",
                    "id": f"{project}:{dataset}",
                    "datasetReference": {"projectId": project, "datasetId": dataset},
                    "location": self.location,
                }
            ),
        )

    def _table(self, project: str, dataset: str, table: str) -> Reply:
        engine = self.engine
        if (project, dataset) != (engine.project, engine.dataset) or table not in engine.tables:
            return Reply(
                404,
                error_body(404, f"Not found: Table {project}:{dataset}.{table}", "notFound"),
            )
        return Reply(
            200,
            orjson.dumps(
                {
                    "kind": "bigquery#table",
                    "id": f"{project}:{dataset}.{table}",
                    "tableReference": {
                        "projectId": project,
                        "datasetId": dataset,
                        "tableId": table,
                    },
                    "type": "VIEW" if table == "_AllLogs" else "TABLE",
                    "schema": {"fields": _table_fields(engine.schemas[table])},
                    "numBytes": str(engine.table_bytes(table)),
                    "numRows": str(engine.table_rows(table)),
                    "location": self.location,
                }
            ),
        )

    def _tables(self, project: str, dataset: str, query: Mapping[str, str]) -> Reply:
        """tables.list: the served tables in name order, ``maxResults`` per page."""
        engine = self.engine
        if (project, dataset) != (engine.project, engine.dataset):
            return Reply(
                404, error_body(404, f"Not found: Dataset {project}:{dataset}", "notFound")
            )
        names = sorted(engine.tables)
        start = _int(query.get("pageToken")) or 0
        size = _int(query.get("maxResults")) or 1000
        page = names[start : start + size]
        body: dict[str, Any] = {
            "kind": "bigquery#tableList",
            "totalItems": len(names),
            "tables": [
                {
                    "kind": "bigquery#table",
                    "id": f"{project}:{dataset}.{name}",
                    "tableReference": {
                        "projectId": project,
                        "datasetId": dataset,
                        "tableId": name,
                    },
                    "type": "VIEW" if name == "_AllLogs" else "TABLE",
                }
                for name in page
            ],
        }
        if start + size < len(names):
            body["nextPageToken"] = str(start + size)
        return Reply(200, orjson.dumps(body))

    # Private: jobs

    def _run(
        self,
        project: str,
        job_id: str | None,
        location: str | None,
        config: dict[str, Any],
        dry_run: bool,
    ) -> _Job:
        """Run (or dry-run) a query configuration and keep the job."""
        now = self._now_ms()
        with self._lock:
            self._counter += 1
            job_id = job_id or f"standin_job_{self._counter:06d}"
        job = _Job(project, job_id, location or self.location, config, now, now, dry_run)
        try:
            self._execute(job)
        except QueryError as exc:
            job.error = exc
            self._count("failed_queries")
        job.ended_ms = self._now_ms()
        with self._lock:
            self._jobs[(project, job_id)] = job
            while len(self._jobs) > self.max_jobs:
                self._jobs.popitem(last=False)
        return job

    def _execute(self, job: _Job) -> None:
        config = job.config
        sql = config.get("query")
        if not isinstance(sql, str):
            raise QueryError("The query is missing: configuration.query.query must be a string")
        if config.get("useLegacySql") is True:
            raise QueryError(
                "Legacy SQL is not supported by the stand-in: set useLegacySql to false",
                reason="invalid",
            )
        params = config.get("queryParameters") or None
        default = config.get("defaultDataset") or {}
        dataset = (
            f"{default.get('projectId') or self.engine.project}.{default['datasetId']}"
            if default.get("datasetId")
            else None
        )
        if job.dry_run:
            dry = self.engine.dry_run(sql, params, default_dataset=dataset)
            job.fields = _fields(dry.schema)
            job.total_bytes = dry.total_bytes_processed
            self._count("dry_runs")
        else:
            limit = _int(config.get("maximumBytesBilled"))
            result = self.engine.execute(
                sql, params, default_dataset=dataset, max_bytes_billed=limit
            )
            job.fields = _fields(result.table.schema)
            job.result = result
            job.total_bytes = result.total_bytes_processed
            self._count("queries")
        self._count("bytes_estimated", job.total_bytes)

    def _resource(self, job: _Job) -> dict[str, Any]:
        """The Job resource (jobs.insert / jobs.get)."""
        query_stats: dict[str, Any] = {
            "totalBytesProcessed": str(job.total_bytes),
            "totalBytesBilled": str(0 if job.dry_run else job.total_bytes),
            "cacheHit": False,
            "statementType": "SELECT",
        }
        if job.error is None:
            query_stats["schema"] = {"fields": job.fields}
        status: dict[str, Any] = {"state": "DONE"}
        if job.error is not None:
            problem = {"reason": job.error.reason, "message": job.error.message}
            status["errorResult"] = problem
            status["errors"] = [problem]
        configuration: dict[str, Any] = {"query": job.config, "jobType": "QUERY"}
        if job.dry_run:
            configuration["dryRun"] = True
        return {
            "kind": "bigquery#job",
            "id": f"{job.project}:{job.location}.{job.job_id}",
            "jobReference": _reference(job),
            "configuration": configuration,
            "status": status,
            "statistics": {
                "creationTime": str(job.created_ms),
                "startTime": str(job.created_ms),
                "endTime": str(job.ended_ms),
                "totalBytesProcessed": str(job.total_bytes),
                "query": query_stats,
            },
        }

    def _page(
        self,
        job: _Job,
        head: dict[str, Any],
        start: int,
        max_results: int | None,
        fmt: TimestampFormat,
    ) -> Reply:
        """``head`` with totalRows and the rows from ``start`` (at most ``max_results``)."""
        assert job.result is not None
        table = job.result.table
        total = table.num_rows
        head = {**head, "totalRows": str(total)}
        limit = total - start if max_results is None else min(max_results, total - start)
        rows: list[bytes] = []
        size = 0
        if limit > 0:
            for row in encode_rows(table.slice(start, limit), job.fields, fmt):
                rows.append(row)
                size += len(row)
                if size >= _PAGE_BYTES:
                    break
        end = start + len(rows)
        if end < total and (max_results is None or max_results > 0):
            head["pageToken"] = f"p{end}"
        self._count("pages")
        self._count("rows_returned", len(rows))
        body = orjson.dumps(head)
        if rows:
            body = body[:-1] + b',"rows":[' + b",".join(rows) + b"]}"
        return Reply(200, body)

    def _no_job(self, project: str, job_id: str) -> Reply:
        return Reply(
            404,
            error_body(404, f"Not found: Job {project}:{self.location}.{job_id}", "notFound"),
        )

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._stats[name] = self._stats.get(name, 0) + amount

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)


def _json_object(body: bytes) -> dict[str, Any] | Reply:
    try:
        data = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        return Reply(400, error_body(400, f"Invalid JSON payload received. {exc}"))
    if not isinstance(data, dict):
        return Reply(400, error_body(400, "Invalid JSON payload received: not an object"))
    return data


def _error(exc: QueryError) -> bytes:
    return error_body(exc.status, exc.message, exc.reason)


def _reference(job: _Job) -> dict[str, str]:
    return {"projectId": job.project, "jobId": job.job_id, "location": job.location}


def _int(value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def _timestamp_format(options: Mapping[str, Any]) -> TimestampFormat:
    iso = options.get("timestampOutputFormat") == "ISO8601_STRING"
    return TimestampFormat(int64=bool(options.get("useInt64Timestamp")), iso=iso)


def _fields(schema: Any) -> list[dict[str, Any]]:
    try:
        return schema_fields(schema)
    except ValueError as exc:
        raise QueryError(f"Query error: {exc}") from exc


def _table_fields(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, kind in schema.items():
        if isinstance(kind, Mapping):
            out.append(
                {"name": name, "type": "RECORD", "mode": "NULLABLE", "fields": _table_fields(kind)}
            )
        elif isinstance(kind, tuple):  # ("LIST", element): a REPEATED field
            (element,) = _table_fields({name: kind[1]})
            out.append({**element, "mode": "REPEATED"})
        else:
            out.append({"name": name, "type": _DUCK_TO_BQ[str(kind)], "mode": "NULLABLE"})
    return out
