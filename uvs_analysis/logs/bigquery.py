"""BigQuery source: the analysis pushed down to a Log Analytics ``_AllLogs`` view.

``bigquery://PROJECT/DATASET`` reads ``PROJECT.DATASET._AllLogs`` with the real
``google-cloud-bigquery`` client; when the dataset has no ``_AllLogs`` but a log sink's
``run_googleapis_com_*`` tables, it reads those through a view written from their schemas
(``bigquery_sink``); ``?table=NAME`` names another table of the ``_AllLogs`` shape. The
query's window, service, revision, region, severity floor and log kinds become a WHERE clause
with named parameters; counts, error signatures (masked in SQL), close codes, WebSocket sessions,
severity bins and the revision/instance timeline are computed by BigQuery, and only those
aggregates plus the rows near failures cross the network (see ``bigquery_queries``).

Cost guard: every query is dry-run first and refused, before any runs, when BigQuery would
scan more than ``max_bytes``; the estimates are kept in the load's meta, and the real queries
carry ``maximum_bytes_billed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import requests

from uvs_analysis.errors import (
    BadInputError,
    CredentialsError,
    DependencyMissingError,
    LogPermissionError,
    LogSourceError,
    UsageError,
)
from uvs_analysis.logs.bigquery_queries import (
    PushdownSettings,
    aggregate_queries,
    near_failure_query,
)
from uvs_analysis.logs.bigquery_results import aggregates_of, entry_of
from uvs_analysis.logs.bigquery_sink import (
    SinkTable,
    alllogs_view,
    columns_from_api,
    select_tables,
    sink_table_names,
)
from uvs_analysis.logs.bigquery_sql import SqlQuery, table_ref
from uvs_analysis.logs.google_client import make_client
from uvs_analysis.logs.query import LogQuery
from uvs_analysis.logs.schema import LogLoad

__all__ = ["DEFAULT_MAX_BYTES", "BigQuerySource", "bigquery_source", "format_bytes"]

#: How long the client retries transient failures of one call before giving up.
RETRY_DEADLINE_S: Final = 30.0
#: The default cost-guard limit: 10 GiB scanned per query.
DEFAULT_MAX_BYTES: Final = 10 * 2**30
#: BigQuery's limit on the text of one GoogleSQL query (1,024K characters).
MAX_QUERY_CHARS: Final = 1024 * 1024
_ROLES: Final = "roles/bigquery.dataViewer and roles/bigquery.jobUser"


def format_bytes(n: int) -> str:
    """``n`` bytes in binary units (``1.5 GiB``)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


_URL_FORM: Final = (
    "bigquery://PROJECT/DATASET[?table=_AllLogs&endpoint=URL&max_bytes=N&max_rows=N"
    "&request_timeout_s=S&context_s=S&bin_s=S]"
)
_NUMBERS: Final = {
    "max_bytes": int,
    "max_rows": int,
    "request_timeout_s": float,
    "context_s": float,
    "bin_s": int,
}


def bigquery_source(url: str) -> BigQuerySource:
    """The BigQuerySource a ``bigquery://PROJECT/DATASET[?options]`` URL names.

    Raises:
        BadInputError: the URL lacks the project or dataset, or has an unknown or bad option.
    """
    parts = urlsplit(url.strip())
    path = parts.path.strip("/")
    if parts.scheme != "bigquery" or not parts.netloc or not path or "/" in path:
        raise BadInputError(
            f"log source {url!r} does not name a BigQuery dataset", expected=_URL_FORM
        )
    try:
        query = parse_qs(parts.query, strict_parsing=bool(parts.query))
        params = {k: v[-1] for k, v in query.items()}
    except ValueError as exc:
        raise BadInputError(f"the options of {url!r} are not key=value pairs",
                            expected=_URL_FORM) from exc
    unknown = sorted(set(params) - {"table", "endpoint", *_NUMBERS})
    if unknown:
        raise BadInputError(f"log source {url!r} has unknown options {unknown}", expected=_URL_FORM)
    numbers: dict[str, Any] = {}
    for name, kind in _NUMBERS.items():
        if name in params:
            try:
                numbers[name] = kind(params[name])
            except ValueError as exc:
                raise BadInputError(
                    f"{name}={params[name]!r} in {url!r} is not a number",
                    expected="a whole number" if kind is int else "a number",
                ) from exc
    settings = PushdownSettings()
    changes = {k: v for k, v in numbers.items() if k != "max_bytes"}
    if changes:
        settings = replace(settings, **changes)
    return BigQuerySource(
        parts.netloc,
        path,
        table=params.get("table"),
        endpoint=params.get("endpoint"),
        max_bytes=numbers.get("max_bytes", DEFAULT_MAX_BYTES),
        settings=settings,
    )


class BigQuerySource:
    """Cloud Run logs in a Log Analytics linked dataset, analysed where they live.

    Args:
        project: the GCP project holding the dataset (and running the query jobs).
        dataset: the linked dataset (or a log sink's dataset).
        table: a view or table of the ``_AllLogs`` shape; None: the dataset's ``_AllLogs``, or
            its log sink tables when it has those and no ``_AllLogs``.
        endpoint: API endpoint override (a local stand-in); anonymous credentials are used.
        max_bytes: the most bytes one query may scan (0: no limit).
        settings: the server-side analysis settings (timeout, row cap, bins ...).
        client: an already built ``google.cloud.bigquery.Client`` (else one is made).
        retry_s: how long one call retries transient failures before the load fails.
    """

    def __init__(
        self,
        project: str,
        dataset: str,
        *,
        table: str | None = None,
        endpoint: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        settings: PushdownSettings | None = None,
        client: Any = None,
        retry_s: float = RETRY_DEADLINE_S,
    ) -> None:
        self.table = table_ref(project, dataset, table or "_AllLogs")
        if max_bytes < 0:
            raise UsageError(f"max_bytes {max_bytes} is negative", expected="0 (no limit) or more")
        self.project, self.dataset, self.table_name = project, dataset, table
        self._names: list[str] | None = None
        self._schemas: dict[str, SinkTable] = {}
        #: The tables the last load read (``_AllLogs``, ``?table=``, or the sink tables).
        self.tables_read: tuple[str, ...] = ()
        self.endpoint = endpoint
        self.max_bytes = max_bytes
        self.settings = settings or PushdownSettings()
        self._client = client
        self.retry_s = retry_s

    def describe(self) -> str:
        """The source as a URL (no secrets)."""
        options = []
        if self.table_name:
            options.append(f"table={self.table_name}")
        if self.endpoint:
            options.append(f"endpoint={self.endpoint}")
        suffix = "?" + "&".join(options) if options else ""
        return f"bigquery://{self.project}/{self.dataset}{suffix}"

    def queries(self, query: LogQuery) -> dict[str, SqlQuery]:
        """Every query a load of ``query`` runs, by name (lists the dataset's tables first when
        no table was named, to find ``_AllLogs`` or a sink's tables)."""
        relation = self._relation(query)
        built = aggregate_queries(relation, query, self.settings)
        built["near_failures"] = near_failure_query(relation, query, self.settings)
        return built

    def _relation(self, query: LogQuery) -> str:
        """What the queries read: the table, or the view over the sink tables ``query`` needs."""
        self.tables_read = (self.table.strip("`"),)
        if self.table_name:
            return self.table
        names = self._table_names()
        bases = tuple(sink_table_names().values())
        if "_AllLogs" in names or not any(n.startswith(bases) for n in names):
            return self.table
        chosen = select_tables(names, query)
        tables = [self._sink_table(name, kind, day) for name, kind, day in chosen]
        view = alllogs_view(self.project, self.dataset, tables)
        self.tables_read = tuple(f"{self.project}.{self.dataset}.{t.name}" for t in tables)
        return view

    def _table_names(self) -> list[str]:
        if self._names is None:
            client = self.client()
            what = f"listing the tables of {self.project}.{self.dataset}"
            self._names = self._call(
                what,
                lambda: [
                    t.table_id
                    for t in client.list_tables(
                        f"{self.project}.{self.dataset}", retry=self._retry()
                    )
                ],
            )
        return self._names

    def _sink_table(self, name: str, kind: str, day: Any) -> SinkTable:
        if name not in self._schemas:
            client = self.client()
            table_id = f"{self.project}.{self.dataset}.{name}"
            table = self._call(
                f"reading the schema of {table_id}",
                lambda: client.get_table(table_id, retry=self._retry()),
            )
            schema = columns_from_api(field.to_api_repr() for field in table.schema)
            self._schemas[name] = SinkTable(name, kind, day, schema)
        return self._schemas[name]

    def load(
        self, query: LogQuery | None = None, *, progress: Callable[[int], None] | None = None
    ) -> LogLoad:
        """Run the aggregate queries and fetch the rows near failures.

        Raises:
            UsageError: the query scans more than ``max_bytes``, or has an extra_filter.
            CredentialsError, LogPermissionError, LogSourceError, BadInputError.
        """
        if query is None:
            raise BadInputError(
                "a BigQuery load needs a query with an explicit time window",
                expected="start and end (the window bounds the bytes BigQuery scans)",
            )
        queries = self.queries(query)
        client = self.client()
        self._check_length(queries)
        estimates = {name: self._dry_run(client, q) for name, q in queries.items()}
        self._guard(estimates)
        tables = {name: self._run(client, q) for name, q in queries.items()}
        near = tables.pop("near_failures")
        total_near = int(near["total"][0].as_py()) if near.num_rows else 0
        from uvs_analysis.logs.normalize import normalize_records

        from_sink = self.tables_read != (self.table.strip("`"),)
        normalized = normalize_records(
            (entry_of(row, strip_nulls=from_sink) for row in near.to_pylist()),
            source=self.describe(),
        )
        frame = normalized.frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
        aggregates = aggregates_of(tables, self.settings, rows_near_failures=total_near)
        counts = tables["counts"].to_pylist()
        matched = next(int(r["n"]) for r in counts if r["dim"] == "matched")
        if progress:
            progress(len(frame))
        meta: dict[str, object] = {
            "pushed_down": True,
            "table": self._what(),
            "tables_read": list(self.tables_read),
            "bytes_estimated": sum(estimates.values()),
            "bytes_by_query": dict(estimates),
            "max_bytes": self.max_bytes,
            "rows_fetched": len(frame),
            "rows_near_failures": total_near,
            "rows_near_failures_not_fetched": total_near - near.num_rows,
            "rows_not_fetched": aggregates.entries - len(frame),
            "sessions_not_fetched": aggregates.sessions_total - len(aggregates.sessions),
            "max_rows": self.settings.max_rows,
        }
        return replace(
            normalized,
            frame=frame,
            read=matched,
            duplicates=matched - aggregates.entries,
            filtered_out=0,
            meta=meta,
            aggregates=aggregates,
        )

    # Client calls

    def client(self) -> Any:
        """The ``google.cloud.bigquery.Client`` (made on first use)."""
        if self._client is not None:
            return self._client
        try:
            from google.cloud import bigquery
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise DependencyMissingError(
                "google-cloud-bigquery is not importable",
                hint="run `make env` to install the project's dependencies",
            ) from exc
        self._client = make_client(
            lambda credentials, options: bigquery.Client(
                project=self.project, credentials=credentials, client_options=options
            ),
            endpoint=self.endpoint,
            purpose=f"query BigQuery in project {self.project!r}",
        )
        return self._client

    def _config(self, query: SqlQuery, **kwargs: Any) -> Any:
        from google.cloud import bigquery

        params = [
            bigquery.ScalarQueryParameter(name, p.type, p.value)  # type: ignore[arg-type]
            for name, p in query.params.items()
        ]
        return bigquery.QueryJobConfig(query_parameters=params, **kwargs)

    def _retry(self) -> Any:
        """The client's retry of transient errors and broken connections, for at most
        ``retry_s`` per call: an unreachable endpoint fails in seconds, not minutes.

        Failed jobs are not re-run (``job_retry=None``): the client's job retry does not
        honour a deadline when the endpoint cannot be reached at all.
        """
        from google.cloud import bigquery

        return bigquery.DEFAULT_RETRY.with_timeout(self.retry_s)

    def _dry_run(self, client: Any, query: SqlQuery) -> int:
        config = self._config(query, dry_run=True, use_query_cache=False)
        job = self._call(
            query.name,
            lambda: client.query(
                query.sql, job_config=config, retry=self._retry(), job_retry=None
            ),
        )
        return int(job.total_bytes_processed or 0)

    def _run(self, client: Any, query: SqlQuery) -> pa.Table:
        config = self._config(query, maximum_bytes_billed=self.max_bytes or None)

        def run() -> pa.Table:
            job = client.query(
                query.sql, job_config=config, retry=self._retry(), job_retry=None
            )
            result = job.result(retry=self._retry(), job_retry=None)
            return result.to_arrow(create_bqstorage_client=False)

        table: pa.Table = self._call(query.name, run)
        return table

    def _what(self) -> str:
        """The tables read, for messages: one id, or the dataset and how many sink tables."""
        if len(self.tables_read) == 1:
            return self.tables_read[0]
        if self.tables_read:
            return f"{self.project}.{self.dataset} ({len(self.tables_read)} log sink tables)"
        return self.table.strip("`")

    def _check_length(self, queries: Mapping[str, SqlQuery]) -> None:
        """Refuse, before any runs, a query BigQuery would refuse for its length (a view over
        many sink tables with wide payload schemas)."""
        name, longest = max(((n, len(q.sql)) for n, q in queries.items()), key=lambda t: t[1])
        if longest > MAX_QUERY_CHARS:
            raise UsageError(
                f"the BigQuery query {name!r} over {self._what()} is {longest:,} characters "
                f"long, over BigQuery's limit of {MAX_QUERY_CHARS:,}; nothing was run",
                expected="fewer tables in one load",
                hint="narrow the window (each day is one table per log) or the log kinds",
            )

    def _guard(self, estimates: Mapping[str, int]) -> None:
        if not self.max_bytes:
            return
        over = {name: n for name, n in estimates.items() if n > self.max_bytes}
        if over:
            name, n = max(over.items(), key=lambda kv: kv[1])
            raise UsageError(
                f"the BigQuery query {name!r} would scan {format_bytes(n)} ({n:,} bytes) of "
                f"{self._what()}, over the limit of {format_bytes(self.max_bytes)} "
                f"({self.max_bytes:,} bytes); nothing was run",
                expected="queries within max_bytes",
                hint="narrow the window (start/end), service or revision, or raise the limit "
                "with ?max_bytes=N in the source URL (max_bytes=0: no limit)",
            )

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        """``call()``, its failures as the project's errors; ``what`` is a query name or a
        phrase (``listing the tables of ...``)."""
        from google.api_core import exceptions as gexc

        if " " in what:
            where = f"BigQuery: {what}"
        else:
            where = f"BigQuery query {what!r} on {self._what()}"
        try:
            return call()
        except gexc.Forbidden as exc:
            if "bytesBilledLimitExceeded" in str(exc) or "billed" in str(exc.message).lower():
                raise UsageError(
                    f"{where} was stopped by maximum_bytes_billed ({exc.message})",
                    expected=f"at most {format_bytes(self.max_bytes)} billed",
                    hint="narrow the window or raise ?max_bytes=N",
                ) from exc
            raise LogPermissionError(
                f"{where} was refused (403: {exc.message})",
                expected=f"a caller with {_ROLES} on project {self.project!r}",
                hint=f"ask a project owner to grant {_ROLES} to your account: gcloud projects "
                f"add-iam-policy-binding {self.project} --member=user:YOU "
                "--role=roles/bigquery.dataViewer (and --role=roles/bigquery.jobUser)",
            ) from exc
        except gexc.Unauthorized as exc:
            raise CredentialsError(
                f"{where}: BigQuery rejected the credentials (401: {exc.message})",
                expected="valid Application Default Credentials",
                hint="run `gcloud auth application-default login` and re-run",
            ) from exc
        except gexc.NotFound as exc:
            raise BadInputError(
                f"{where}: the dataset or table was not found (404: {exc.message})",
                expected="bigquery://PROJECT/DATASET naming a Log Analytics linked dataset "
                "(table _AllLogs) or a log sink's dataset (run_googleapis_com_* tables), "
                "or ?table=NAME for another table",
                hint="check the linked dataset's name in Logging > Log Storage",
            ) from exc
        except gexc.BadRequest as exc:
            raise LogSourceError(
                f"{where} was rejected (400: {exc.message})",
                hint="check that the table has the _AllLogs columns "
                "(see docs/bigquery_mapping.md)",
            ) from exc
        except gexc.GoogleAPICallError as exc:
            raise LogSourceError(
                f"{where} failed ({exc.code}: {exc.message})", hint="re-run later"
            ) from exc
        except (gexc.RetryError, OSError, requests.RequestException) as exc:
            cause = exc.cause if isinstance(exc, gexc.RetryError) and exc.cause else exc
            endpoint = self.endpoint or "bigquery.googleapis.com"
            raise LogSourceError(
                f"{where}: BigQuery at {endpoint} could not be reached within "
                f"{self.retry_s:g} s ({type(cause).__name__}: {cause})",
                expected="a reachable BigQuery API endpoint",
                hint="check the network (and ?endpoint=URL if you set one), then re-run",
            ) from exc
