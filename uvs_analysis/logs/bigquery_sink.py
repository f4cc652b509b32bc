"""A log sink's BigQuery tables, read as if they were a Log Analytics ``_AllLogs`` view.

A sink to BigQuery writes one table per log (``run_googleapis_com_requests``, ``..._stdout``,
``..._stderr``, ``..._varlog_system``), date-sharded (``..._20261103``, the default) or
partitioned (no suffix). Their columns keep the LogEntry's camelCase names (``logName``,
``httpRequest.requestUrl``) and RECORD types; user-supplied names (``jsonPayload`` fields,
``labels`` keys) are lower-cased, with characters other than letters, digits and ``_``
replaced by ``_``; ``httpRequest.latency`` is a FLOAT of seconds; each table's
schema follows the data it received.

Pure: :func:`select_tables` picks the tables a query needs (by log and, for shards, by day of
the window), :func:`alllogs_view` writes one ``SELECT`` per table mapping its columns, from the
schema the table reports, to the ``_AllLogs`` columns the queries read, ``UNION ALL`` of them.
Keys the normalizer looks up (``FIELD_ALIASES``, ``instanceId``) get their LogEntry spelling
back, so the same queries and the same Python normalizer read sink rows unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from uvs_analysis.errors import BadInputError
from uvs_analysis.logs.bigquery_sql import sql_string
from uvs_analysis.logs.extract import FIELD_ALIASES, PAYLOAD_CONTAINERS
from uvs_analysis.logs.query import LogQuery
from uvs_analysis.logs.schema import LOG_IDS

__all__ = [
    "HTTP_FIELDS",
    "MAX_TABLES",
    "Column",
    "SinkTable",
    "alllogs_view",
    "columns_from_api",
    "select_tables",
    "sink_name",
    "sink_table_names",
]

#: BigQuery refuses a query that references more tables than this.
MAX_TABLES: Final = 1000
_SHARD: Final = re.compile(r"^(?P<base>[a-z0-9_]+?)(?:_(?P<day>[0-9]{8}))?$")
_UNSUPPORTED_CHARS: Final = re.compile(r"[^A-Za-z0-9_]")
_PLAIN: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_NUMERIC: Final = ("FLOAT", "FLOAT64", "NUMERIC", "BIGNUMERIC", "INTEGER", "INT64")


def sink_name(key: str) -> str:
    """The column name a sink gives a user-supplied field ``key`` (lower case, unsupported
    characters as ``_``, no leading underscores)."""
    return _UNSUPPORTED_CHARS.sub("_", key).lower().lstrip("_")


def sink_table_names() -> dict[str, str]:
    """log_kind -> its sink table's base name (``request`` -> ``run_googleapis_com_requests``)."""
    return {kind: sink_name(log_id) for log_id, kind in LOG_IDS.items()}


@dataclass(frozen=True)
class Column:
    """One column of a table schema: BigQuery type, repeated or not, and sub-columns."""

    type: str
    repeated: bool = False
    fields: tuple[tuple[str, Column], ...] = ()

    def field(self, name: str) -> Column | None:
        """The sub-column ``name`` (case-insensitive, as BigQuery resolves names)."""
        for key, column in self.fields:
            if key.lower() == name.lower():
                return column
        return None

    @property
    def is_record(self) -> bool:
        return self.type in ("RECORD", "STRUCT") and not self.repeated


def columns_from_api(fields: Iterable[Mapping[str, Any]]) -> Column:
    """A table's schema (the REST ``schema.fields`` list) as one RECORD column."""
    out = []
    for f in fields:
        sub = columns_from_api(f.get("fields") or ())
        out.append(
            (
                str(f["name"]),
                Column(
                    str(f.get("type", "STRING")).upper(),
                    str(f.get("mode", "NULLABLE")).upper() == "REPEATED",
                    sub.fields,
                ),
            )
        )
    return Column("RECORD", False, tuple(out))


@dataclass(frozen=True)
class SinkTable:
    """A sink table the view reads: its id, the log kind it holds, its day (shards) and schema."""

    name: str
    log_kind: str
    day: date | None
    schema: Column


def select_tables(names: Iterable[str], query: LogQuery) -> list[tuple[str, str, date | None]]:
    """The ``(table, log_kind, day)`` of every sink table ``query`` reads, sorted.

    Shards (``<log>_YYYYMMDD``, one per UTC day) outside the window are left out, so they are
    neither scanned nor billed; a partitioned table (no suffix) is always read.
    """
    bases = {base: kind for kind, base in sink_table_names().items() if kind in query.log_kinds}
    first = _utc_day(query.start)
    last = _utc_day(query.end - timedelta(microseconds=1))
    chosen = []
    for name in names:
        m = _SHARD.match(name)
        if m is None:
            continue
        base, day_text = m["base"], m["day"]
        if base not in bases:
            continue
        day = None
        if day_text is not None:
            try:
                day = date(int(day_text[:4]), int(day_text[4:6]), int(day_text[6:]))
            except ValueError:
                continue
            if not first <= day <= last:
                continue
        chosen.append((name, bases[base], day))
    return sorted(chosen, key=lambda t: (t[1], t[2] or date.min, t[0]))


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


# The view


def alllogs_view(project: str, dataset: str, tables: Sequence[SinkTable]) -> str:
    """``(SELECT ... UNION ALL ...)``: the sink tables as rows of the ``_AllLogs`` columns.

    Each branch keeps only the window (``@start``/``@end``), so partitions and shards outside
    it are pruned; the queries filter the rest.

    Raises:
        BadInputError: no tables, too many, or a table without ``timestamp`` or ``logName``.
    """
    if not tables:
        raise BadInputError(
            f"dataset {project}.{dataset} has no Cloud Run log sink tables for this query",
            expected="tables named run_googleapis_com_requests, ..._stdout, ..._stderr or "
            "..._varlog_system (optionally with a _YYYYMMDD suffix) for days in the window",
        )
    if len(tables) > MAX_TABLES:
        raise BadInputError(
            f"the query would read {len(tables)} sink tables of {project}.{dataset}",
            expected=f"at most {MAX_TABLES} tables in one query",
            hint="narrow the window (one shard per log and day) or choose fewer log kinds",
        )
    branches = [_branch(project, dataset, t) for t in tables]
    return "(\n" + "\n  UNION ALL\n".join(branches) + "\n)"


def _branch(project: str, dataset: str, table: SinkTable) -> str:
    s = table.schema
    for required in ("timestamp", "logName"):
        if s.field(required) is None:
            raise BadInputError(
                f"sink table {project}.{dataset}.{table.name} has no {required} column",
                expected="a table written by a Cloud Logging sink (LogEntry columns)",
            )
    log_id = next(i for i, k in LOG_IDS.items() if k == table.log_kind)
    resource = s.field("resource")
    resource_type = _sub(resource, "resource", "type", "STRING")
    resource_labels = _json_of(resource.field("labels") if resource else None, "resource.labels")
    cols = {
        "timestamp": "timestamp",
        "receive_timestamp": _plain(s, "receiveTimestamp", "TIMESTAMP"),
        "log_name": "logName",
        "log_id": f"'{log_id}'",
        "severity": _plain(s, "severity", "STRING"),
        "resource": f"STRUCT({resource_type} AS type, {resource_labels} AS labels)",
        "labels": _json_of(s.field("labels"), "labels", restore={"instanceid": "instanceId"}),
        "json_payload": _json_of(s.field("jsonPayload"), "jsonPayload", payload=True),
        "text_payload": _plain(s, "textPayload", "STRING"),
        "proto_payload": "CAST(NULL AS JSON)",
        "http_request": _http_request(s.field("httpRequest")),
        "trace": _plain(s, "trace", "STRING"),
        "span_id": _plain(s, "spanId", "STRING"),
        "trace_sampled": _plain(s, "traceSampled", "BOOL"),
        "insert_id": _plain(s, "insertId", "STRING"),
    }
    select = ",\n    ".join(f"{expr} AS {name}" for name, expr in cols.items())
    return (
        f"  SELECT\n    {select}\n  FROM `{project}.{dataset}.{table.name}`\n"
        "  WHERE timestamp >= @start AND timestamp < @end"
    )


def _plain(schema: Column, name: str, kind: str) -> str:
    column = schema.field(name)
    if column is None or column.repeated or column.is_record:
        return f"CAST(NULL AS {kind})"
    return name if _type_name(column.type) == kind else f"SAFE_CAST({name} AS {kind})"


def _sub(record: Column | None, path: str, name: str, kind: str) -> str:
    column = record.field(name) if record is not None and record.is_record else None
    if column is None or column.repeated or column.is_record:
        return f"CAST(NULL AS {kind})"
    expr = f"{path}.{name}"
    return expr if _type_name(column.type) == kind else f"SAFE_CAST({expr} AS {kind})"


def _type_name(kind: str) -> str:
    return {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}.get(kind, kind)


_PAYLOAD_RESTORE: Final = {
    sink_name(key): key for key in FIELD_ALIASES if _PLAIN.match(key) and sink_name(key) != key
}


def _json_of(
    column: Column | None,
    expr: str,
    *,
    payload: bool = False,
    restore: Mapping[str, str] | None = None,
) -> str:
    """``column`` as JSON with the normalizer's key spellings restored.

    At the top level of ``labels`` (``instanceId``) and of ``jsonPayload`` and its alias
    containers (``FIELD_ALIASES``), a key the sink lower-cased gets its LogEntry spelling back.
    """
    if column is None:
        return "CAST(NULL AS JSON)"
    if column.type == "JSON":
        return expr
    if column.type == "STRING" and not column.repeated:
        return f"SAFE.PARSE_JSON({expr})"
    if not column.is_record:
        return "CAST(NULL AS JSON)"
    names = dict(_PAYLOAD_RESTORE) if payload else {}
    names.update(restore or {})
    if not _needs_restoring(column, names, payload):
        return f"TO_JSON({expr})"  # short: the fields are listed only when a key is renamed
    return f"IF({expr} IS NULL, NULL, TO_JSON({_restored(column, expr, names, payload)}))"


def _needs_restoring(column: Column, names: Mapping[str, str], containers: bool) -> bool:
    for key, sub in column.fields:
        if key.lower() in names:
            return True
        if containers and key.lower() in PAYLOAD_CONTAINERS and sub.is_record:
            if _needs_restoring(sub, _PAYLOAD_RESTORE, False):
                return True
    return False


def _restored(column: Column, expr: str, names: Mapping[str, str], containers: bool) -> str:
    parts = []
    for key, sub in column.fields:
        value = f"{expr}.`{key}`"  # quoted: a field may be named like a keyword (order, end)
        if containers and key.lower() in PAYLOAD_CONTAINERS and sub.is_record:
            inner = _restored(sub, value, _PAYLOAD_RESTORE, False)
            value = f"IF({value} IS NULL, NULL, {inner})"
        parts.append(f"{value} AS `{names.get(key.lower(), key)}`")
    if not parts:
        return "STRUCT()"
    return "STRUCT(" + ", ".join(parts) + ")"


#: ``http_request`` fields of the view besides latency and protocol: (view name, sink name, type).
HTTP_FIELDS: Final = (
    ("request_method", "requestMethod", "STRING"),
    ("request_url", "requestUrl", "STRING"),
    ("request_size", "requestSize", "INT64"),
    ("status", "status", "INT64"),
    ("response_size", "responseSize", "INT64"),
    ("user_agent", "userAgent", "STRING"),
    ("remote_ip", "remoteIp", "STRING"),
    ("server_ip", "serverIp", "STRING"),
    ("referer", "referer", "STRING"),
)
_LATENCY_TYPE: Final = "STRUCT<seconds INT64, nanos INT64>"
_HTTP_TYPE: Final = (
    "STRUCT<"
    + ", ".join(f"{name} {kind}" for name, _, kind in HTTP_FIELDS)
    + f", latency {_LATENCY_TYPE}, protocol STRING>"
)


def _http_request(column: Column | None) -> str:
    """``httpRequest`` as the view's ``http_request`` STRUCT (NULL where the entry has none)."""
    if column is None or not column.is_record:
        return f"CAST(NULL AS {_HTTP_TYPE})"
    fields = [
        f"{_sub(column, 'httpRequest', api, kind)} AS {name}" for name, api, kind in HTTP_FIELDS
    ]
    fields.append(f"{_latency(column.field('latency'))} AS latency")
    fields.append(f"{_sub(column, 'httpRequest', 'protocol', 'STRING')} AS protocol")
    return f"IF(httpRequest IS NULL, NULL, STRUCT({', '.join(fields)}))"


def _latency(column: Column | None) -> str:
    """``httpRequest.latency`` (FLOAT seconds, a ``"1.5s"`` string, or seconds/nanos) as the
    view's ``STRUCT<seconds, nanos>``."""
    expr = "httpRequest.latency"
    if column is None:
        return f"CAST(NULL AS {_LATENCY_TYPE})"
    if column.is_record:
        secs = _sub(column, expr, "seconds", "INT64")
        nanos = _sub(column, expr, "nanos", "INT64")
        return f"IF({expr} IS NULL, NULL, STRUCT({secs} AS seconds, {nanos} AS nanos))"
    if column.type in _NUMERIC:
        value = f"CAST({expr} AS FLOAT64)"
    elif column.type == "STRING":
        number = sql_string(r"^[ \t]*(-?[0-9]+(?:\.[0-9]*)?)s?[ \t]*$")
        value = f"SAFE_CAST(REGEXP_EXTRACT({expr}, {number}) AS FLOAT64)"
    else:
        return f"CAST(NULL AS {_LATENCY_TYPE})"
    whole = f"CAST(FLOOR({value}) AS INT64)"
    nanos = f"CAST(ROUND(({value} - FLOOR({value})) * 1e9) AS INT64)"
    return f"IF({value} IS NULL, NULL, STRUCT({whole} AS seconds, {nanos} AS nanos))"
