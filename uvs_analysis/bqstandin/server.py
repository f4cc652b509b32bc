"""A local HTTP server speaking the BigQuery REST API (query jobs), plus control routes.

Routes: the BigQuery methods of :mod:`uvs_analysis.bqstandin.service` under
``/bigquery/v2/projects/{project}/...``, and
    ``GET  /standin/stats``   the accounting as JSON (``StandinStats.to_json``).
    ``POST /standin/reset``   forget the counters and the kept jobs.

Point the real client at it with ``handle.client()`` or::

    bigquery.Client(project=P, credentials=AnonymousCredentials(),
                    client_options={"api_endpoint": handle.endpoint})
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

import orjson

from uvs_analysis.bqstandin.alllogs import AllLogsBuild, build_alllogs, connect
from uvs_analysis.bqstandin.engine import BigQueryEngine
from uvs_analysis.bqstandin.service import Reply, StandinService, StandinStats, error_body
from uvs_analysis.bqstandin.sink import build_sink_tables
from uvs_analysis.errors import BadInputError, UsageError
from uvs_analysis.localhttp import JsonHandler, LocalServer, ServerThread, bind, endpoint_of

if TYPE_CHECKING:
    import duckdb
    from google.cloud.bigquery import Client

__all__ = [
    "LAYOUTS",
    "StandinHandle",
    "make_server",
    "open_service",
    "serve_forever",
    "start_standin",
    "start_standin_from_database",
]

_MAX_BODY: Final = 16 << 20
#: How the dataset holds the logs: a Log Analytics ``_AllLogs`` view, or a log sink's tables
#: (date-sharded, the sink's default, or partitioned).
LAYOUTS: Final = ("alllogs", "sink", "sink-partitioned")


class _Server(LocalServer):
    def __init__(self, address: tuple[str, int], service: StandinService) -> None:
        super().__init__(address, _Handler)
        self.service = service


class _Handler(JsonHandler):
    server: _Server
    server_version = "uvs-bigquery-standin"
    max_body = _MAX_BODY

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        path, _, query_text = self.path.partition("?")
        body = self.read_body(error_body)
        if body is None:
            return
        service = self.server.service
        if path == "/standin/stats" and method == "GET":
            self._send(Reply(200, orjson.dumps(service.stats().to_json())))
            return
        if path == "/standin/reset" and method == "POST":
            service.reset()
            self._send(Reply(200, b"{}"))
            return
        query = dict(parse_qsl(query_text, keep_blank_values=True))
        try:
            reply = service.handle(method, path, query, body)
        except Exception as exc:  # a bug must answer 500, not drop the connection
            reply = Reply(500, error_body(500, f"stand-in error: {type(exc).__name__}: {exc}"))
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_json(reply.status, reply.body)


def make_server(service: StandinService, *, host: str = "127.0.0.1", port: int = 0) -> _Server:
    """Bind an HTTP server for ``service`` (port 0 picks a free port); not yet serving.

    Raises:
        UsageError: the address cannot be bound.
    """
    return bind(lambda: _Server((host, port), service), host, port)


class StandinHandle(ServerThread):
    """A running stand-in (background thread). Use as a context manager or call ``stop()``.

    Attributes:
        endpoint: the base URL (``client_options={"api_endpoint": endpoint}``).
        project, dataset: where the table lives.
        table_id: ``PROJECT.DATASET._AllLogs`` (the first sink table for a sink layout).
        tables: the served table ids (``PROJECT.DATASET.TABLE``).
        build: what the table build read (None when started from a database file).
        service: the REST methods (and the engine at ``service.engine``).
    """

    def __init__(
        self,
        server: _Server,
        service: StandinService,
        con: duckdb.DuckDBPyConnection,
        build: AllLogsBuild | None = None,
    ) -> None:
        self.service = service
        self.build = build
        self.project = service.engine.project
        self.dataset = service.engine.dataset
        self.tables = service.engine.table_ids
        self.table_id = (
            f"{self.project}.{self.dataset}._AllLogs"
            if "_AllLogs" in service.engine.tables
            else self.tables[0]
        )
        self._con = con
        super().__init__(server, name="bigquery-standin")

    def stats(self) -> StandinStats:
        """A snapshot of the accounting."""
        return self.service.stats()

    def reset(self) -> None:
        """Forget the counters and the kept jobs."""
        self.service.reset()

    def client(self, project: str | None = None) -> Client:
        """A real ``google.cloud.bigquery.Client`` (anonymous) aimed at this server."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=project or self.project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": self.endpoint},
        )

    def _closed(self) -> None:
        self._con.close()


def open_service(
    logs: Sequence[Path] | None,
    *,
    project: str = "demo-project",
    dataset: str = "cloud_run_logs",
    database: Path | None = None,
    memory_limit: str | None = None,
    max_jobs: int = 100,
    clock: Callable[[], float] | None = None,
    layout: str = "alllogs",
) -> tuple[StandinService, duckdb.DuckDBPyConnection, AllLogsBuild | None]:
    """Build (from ``logs``) or open (``logs=None``: from ``database``) the table and a service.

    ``layout`` (one of ``LAYOUTS``) chooses what the dataset holds: ``_AllLogs``, or the
    tables a log sink writes (see :mod:`uvs_analysis.bqstandin.sink`), built from the logs.

    Raises:
        BadInputError: a file is missing or not a log export; the database has no table.
        UsageError: an unknown layout, or a sink layout without logs.
    """
    if layout not in LAYOUTS:
        raise UsageError(f"layout {layout!r} is not known", expected=" or ".join(LAYOUTS))
    if logs is None and database is None:
        raise UsageError("no logs and no database were given", expected="--logs or --database")
    if logs is None and layout != "alllogs":
        raise UsageError(
            f"the {layout} layout is built from log files", expected="--logs FILE..."
        )
    if logs is None and database is not None and not Path(database).is_file():
        raise BadInputError(
            f"the DuckDB database {database} does not exist",
            expected="a database file with an _AllLogs table (build it with --logs first)",
        )
    con = connect(database, memory_limit=memory_limit)
    try:
        build = build_alllogs(con, list(logs)) if logs is not None else None
        _check_table(con, database)
        if layout == "alllogs":
            engine = BigQueryEngine(con, project=project, dataset=dataset)
        else:
            sink = build_sink_tables(con, partitioned=layout == "sink-partitioned")
            con.execute('DROP TABLE "_AllLogs"')
            engine = BigQueryEngine(
                con,
                project=project,
                dataset=dataset,
                tables={name: name for name in sink.schemas},
                schemas=sink.schemas,
            )
    except BaseException:
        con.close()
        raise
    kwargs: dict[str, Any] = {"max_jobs": max_jobs}
    if clock is not None:
        kwargs["clock"] = clock
    return StandinService(engine, **kwargs), con, build


def _check_table(con: duckdb.DuckDBPyConnection, database: Path | None) -> None:
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = '_AllLogs'"
    ).fetchall()[0]
    if not found or not found[0]:
        raise BadInputError(
            f"the DuckDB database {database} has no _AllLogs table",
            expected="a database built by build_alllogs (or uvs-analysis bigquery-standin "
            "--logs FILE --database DB)",
        )


def start_standin(
    logs: Sequence[Path],
    *,
    project: str = "demo-project",
    dataset: str = "cloud_run_logs",
    host: str = "127.0.0.1",
    port: int = 0,
    database: Path | None = None,
    memory_limit: str | None = None,
    max_jobs: int = 100,
    layout: str = "alllogs",
) -> StandinHandle:
    """Build ``_AllLogs`` (or a sink's tables) from export files and serve it from a
    background thread.

    Args:
        logs: Cloud Logging export files (NDJSON or JSON array, optionally gzipped).
        project: the BigQuery project id of the table.
        dataset: the dataset id (the linked dataset of the log bucket).
        host: address to bind (keep it local).
        port: port to bind; 0 picks a free one (see ``.endpoint``).
        database: a DuckDB file for the table (spills to disk); None keeps it in memory.
        memory_limit: DuckDB's memory limit, e.g. ``"2GB"``.
        max_jobs: jobs whose results are kept for paging.
        layout: ``alllogs``, ``sink`` (date-sharded tables) or ``sink-partitioned``.

    Raises:
        BadInputError: a file is missing or not a log export; the port is taken.
    """
    service, con, build = open_service(
        logs,
        project=project,
        dataset=dataset,
        database=database,
        memory_limit=memory_limit,
        max_jobs=max_jobs,
        layout=layout,
    )
    return _start(service, con, build, host, port)


def start_standin_from_database(
    database: Path,
    *,
    project: str = "demo-project",
    dataset: str = "cloud_run_logs",
    host: str = "127.0.0.1",
    port: int = 0,
    memory_limit: str | None = None,
    max_jobs: int = 100,
) -> StandinHandle:
    """Serve the ``_AllLogs`` table of an existing DuckDB file (built with ``build_alllogs``).

    Raises:
        BadInputError: the file does not exist or has no ``_AllLogs`` table; the port is taken.
    """
    service, con, build = open_service(
        None,
        project=project,
        dataset=dataset,
        database=database,
        memory_limit=memory_limit,
        max_jobs=max_jobs,
    )
    return _start(service, con, build, host, port)


def _start(
    service: StandinService,
    con: duckdb.DuckDBPyConnection,
    build: AllLogsBuild | None,
    host: str,
    port: int,
) -> StandinHandle:
    try:
        server = make_server(service, host=host, port=port)
    except BaseException:
        con.close()
        raise
    return StandinHandle(server, service, con, build)


def serve_forever(
    service: StandinService,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve in the calling thread until interrupted; ``on_ready`` gets the endpoint URL."""
    server = make_server(service, host=host, port=port)
    try:
        if on_ready is not None:
            on_ready(endpoint_of(server))
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
