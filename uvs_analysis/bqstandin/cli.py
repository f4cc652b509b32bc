"""``uvs-analysis bigquery-standin``: serve log exports as a Log Analytics ``_AllLogs`` table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from uvs_analysis.bqstandin.server import LAYOUTS, open_service, serve_forever
from uvs_analysis.localhttp import port_number, until_signalled

__all__ = ["register", "run"]

_DESCRIPTION = """\
Serve Cloud Logging export files as the _AllLogs view of a Log Analytics linked dataset,
through a local stand-in of the BigQuery REST API (jobs.query, jobs.insert, jobs.get,
jobs.getQueryResults, as google-cloud-bigquery calls them). SQL in BigQuery's dialect runs in
DuckDB; query parameters, paging, dry runs (bytes estimated per column read) and
maximumBytesBilled work as in BigQuery.

Prints the endpoint URL as the first line on stdout and the table id as the second, then
serves until SIGINT or SIGTERM. Point a client at it with:
  bigquery.Client(project="P", credentials=AnonymousCredentials(),
                  client_options={"api_endpoint": URL})
and query `P.D._AllLogs`. Control routes: GET /standin/stats, POST /standin/reset.
With --database the table is kept in (and spills to) a DuckDB file; with --database and no
--logs an existing file is served as it is.

With --layout sink the dataset holds what a log sink to BigQuery writes instead: one table per
log and day (run_googleapis_com_requests_YYYYMMDD, ..._stdout_..., ...), camelCase LogEntry
columns, lower-cased payload fields; --layout sink-partitioned writes one table per log. The
second line printed is then the first of those tables.
"""


def register(subparsers: Any) -> None:
    """Add the ``bigquery-standin`` command."""
    p = subparsers.add_parser(
        "bigquery-standin",
        help="serve log export files through a local BigQuery API stand-in (_AllLogs)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--logs",
        nargs="+",
        metavar="FILE",
        type=Path,
        help="LogEntry exports: NDJSON or a JSON array (gcloud logging read --format=json), "
        "optionally gzipped; required unless --database names a built database",
    )
    p.add_argument("--project", default="demo-project", help="project id (default: %(default)s)")
    p.add_argument("--dataset", default="cloud_run_logs", help="dataset id (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument(
        "--port", type=port_number, default=0, help="port to bind; 0 picks a free port (default: 0)"
    )
    p.add_argument(
        "--database",
        type=Path,
        metavar="FILE.duckdb",
        help="DuckDB file for the table (large tables spill to disk); default: in memory",
    )
    p.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="DuckDB memory limit, e.g. 2GB (default: DuckDB's, 80%% of RAM)",
    )
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="alllogs",
        help="what the dataset holds: the _AllLogs view of a linked dataset, or a log sink's "
        "tables, date-sharded or partitioned (default: %(default)s)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Build or open the table, print the endpoint and table id, serve until stopped."""
    service, con, build = open_service(
        args.logs,
        project=args.project,
        dataset=args.dataset,
        database=args.database,
        memory_limit=args.memory_limit,
        layout=args.layout,
    )
    tables = service.engine.table_ids
    table_id = f"{args.project}.{args.dataset}._AllLogs" if args.layout == "alllogs" else tables[0]

    def ready(endpoint: str) -> None:
        sys.stdout.write(f"{endpoint}\n{table_id}\n")
        sys.stdout.flush()
        engine = service.engine
        rows = sum(engine.table_rows(name) for name in engine.tables)
        if len(tables) > 1:
            table_id_text = f"{len(tables)} tables ({', '.join(tables)})"
        else:
            table_id_text = table_id
        if build is not None:
            sys.stderr.write(
                f"uvs-analysis bigquery-standin: serving {rows} rows of {table_id_text} from "
                f"{len(build.files)} file(s) at {endpoint}; skipped {build.skipped} record(s)\n"
            )
            for bad in build.bad_records[:10]:
                sys.stderr.write(f"  skipped {bad.source}:{bad.line}: {bad.reason}\n")
            if build.skipped > 10:
                sys.stderr.write(f"  ... and {build.skipped - 10} more\n")
        else:
            sys.stderr.write(
                f"uvs-analysis bigquery-standin: serving {rows} rows of {table_id} from "
                f"{args.database} at {endpoint}\n"
            )
        sys.stderr.flush()

    try:
        if until_signalled(
            lambda: serve_forever(service, host=args.host, port=args.port, on_ready=ready)
        ):
            sys.stderr.write("uvs-analysis bigquery-standin: stopped\n")
    finally:
        con.close()
    return 0
