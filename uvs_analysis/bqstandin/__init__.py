"""A local stand-in of the BigQuery REST API serving a Log Analytics ``_AllLogs`` table.

Tests and benchmarks of the BigQuery log source run the real ``google-cloud-bigquery`` client
against it; the SQL runs in DuckDB after sqlglot translates it from BigQuery's dialect.

Public API:

- ``start_standin(logs, *, project="demo-project", dataset="cloud_run_logs", host, port,
  database=None, memory_limit=None) -> StandinHandle``: build the table from export files and
  serve it; the handle has ``endpoint``, ``table_id``, ``client()`` (a real
  ``bigquery.Client``), ``stats()``, ``reset()``, ``stop()`` and is a context manager.
- ``start_standin_from_database(database, ...) -> StandinHandle``: serve a table built before.
- ``connect(database=None, *, memory_limit=None) -> duckdb.DuckDBPyConnection``.
- ``build_alllogs(con, paths, *, table="_AllLogs") -> AllLogsBuild``: the ``_AllLogs`` table
  (``ALLLOGS_SCHEMA``) from Cloud Logging exports, one row per LogEntry the file loader accepts
  (duplicates included), the skipped records counted.
- ``replicate_alllogs(con, table="_AllLogs", times=2) -> int``: grow a table N-fold.
- ``BigQueryEngine(con, project=..., dataset=...)``: ``run(sql, params) -> pyarrow.Table``,
  ``execute(...) -> QueryResult``, ``dry_run(...) -> DryRun``; errors are ``QueryError``
  (``status`` 400/404, BigQuery ``reason``).

The command ``uvs-analysis bigquery-standin`` serves files the same way.
"""

from __future__ import annotations

from uvs_analysis.bqstandin.alllogs import (
    ALLLOGS_SCHEMA,
    AllLogsBuild,
    build_alllogs,
    column_bytes,
    connect,
    replicate_alllogs,
)
from uvs_analysis.bqstandin.engine import BigQueryEngine, DryRun, QueryError, QueryResult
from uvs_analysis.bqstandin.server import (
    StandinHandle,
    start_standin,
    start_standin_from_database,
)
from uvs_analysis.bqstandin.service import StandinService, StandinStats

__all__ = [
    "ALLLOGS_SCHEMA",
    "AllLogsBuild",
    "BigQueryEngine",
    "DryRun",
    "QueryError",
    "QueryResult",
    "StandinHandle",
    "StandinService",
    "StandinStats",
    "build_alllogs",
    "column_bytes",
    "connect",
    "replicate_alllogs",
    "start_standin",
    "start_standin_from_database",
]
