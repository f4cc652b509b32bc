"""The tables a Cloud Logging sink to BigQuery writes, built from an ``_AllLogs`` table.

One table per log, named after the log id (``run.googleapis.com/requests`` ->
``run_googleapis_com_requests``), with a ``_YYYYMMDD`` suffix per UTC day of the entries'
timestamps (the sink's default) or, with ``partitioned``, one table per log. Columns keep the
LogEntry's camelCase names and RECORD types; user-supplied names (``jsonPayload`` fields,
``labels`` and ``resource.labels`` keys) are lower-cased with unsupported characters as ``_``
(:func:`~uvs_analysis.logs.bigquery_sink.sink_name`); ``httpRequest.latency`` is a FLOAT of
seconds. The schema follows the data, as a sink's does: a column exists once some entry has a
value for it, and a field whose values disagree in type is kept as STRING (a real sink refuses
such entries; the stand-in keeps them, as text, so that nothing is lost).

Built in Python from the rows of ``_AllLogs``: meant for test-sized exports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import duckdb
import pyarrow as pa

from uvs_analysis.bqstandin.alllogs import measure_columns
from uvs_analysis.bqstandin.stage import ddl, quote_name
from uvs_analysis.logs.bigquery_sink import HTTP_FIELDS, sink_name

__all__ = ["SinkBuild", "build_sink_tables"]

Schema = Mapping[str, Any]

_HTTP_SCHEMA: Final[Mapping[str, str]] = {
    "requestMethod": "VARCHAR",
    "requestUrl": "VARCHAR",
    "requestSize": "BIGINT",
    "status": "BIGINT",
    "responseSize": "BIGINT",
    "userAgent": "VARCHAR",
    "remoteIp": "VARCHAR",
    "serverIp": "VARCHAR",
    "referer": "VARCHAR",
    "latency": "DOUBLE",
    "cacheLookup": "BOOLEAN",
    "cacheHit": "BOOLEAN",
    "cacheValidatedWithOriginServer": "BOOLEAN",
    "cacheFillBytes": "BIGINT",
    "protocol": "VARCHAR",
}
#: ``_AllLogs`` http_request field -> the sink's httpRequest field (latency apart).
_HTTP_NAMES: Final = {name: api for name, api, _ in HTTP_FIELDS} | {"protocol": "protocol"}
#: Top-level columns in the order a sink's table lists them (each only when some entry has it).
_ORDER: Final = (
    "logName",
    "resource",
    "textPayload",
    "jsonPayload",
    "timestamp",
    "receiveTimestamp",
    "severity",
    "insertId",
    "httpRequest",
    "labels",
    "trace",
    "spanId",
    "traceSampled",
)
_FIXED: Final[Mapping[str, Any]] = {
    "logName": "VARCHAR",
    "textPayload": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
    "receiveTimestamp": "TIMESTAMPTZ",
    "severity": "VARCHAR",
    "insertId": "VARCHAR",
    "httpRequest": _HTTP_SCHEMA,
    "trace": "VARCHAR",
    "spanId": "VARCHAR",
    "traceSampled": "BOOLEAN",
}
_INT64: Final = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class SinkBuild:
    """What :func:`build_sink_tables` wrote: table -> (DuckDB-typed) schema, and rows per table."""

    schemas: Mapping[str, Schema]
    rows: Mapping[str, int]


def build_sink_tables(
    con: duckdb.DuckDBPyConnection, *, source: str = "_AllLogs", partitioned: bool = False
) -> SinkBuild:
    """Create the sink's tables from the rows of ``source`` (which is left in place)."""
    relation = con.sql(
        "SELECT timestamp, receive_timestamp, log_name, log_id, severity, resource.type AS rtype,"
        " CAST(resource.labels AS VARCHAR) AS rlabels, CAST(labels AS VARCHAR) AS labels,"
        " CAST(json_payload AS VARCHAR) AS payload, text_payload, http_request, trace, span_id,"
        f" trace_sampled, insert_id FROM {quote_name(source)}"
    )
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in relation.to_arrow_table().to_pylist():
        entry = _sink_row(row)
        base = sink_name(str(row["log_id"] or "unknown"))
        name = base if partitioned else f"{base}_{_day(row['timestamp'])}"
        grouped.setdefault(name, []).append(entry)
    schemas: dict[str, Schema] = {}
    counts: dict[str, int] = {}
    for name, rows in sorted(grouped.items()):
        schema = _schema_of(rows)
        _create(con, name, schema, rows)
        measure_columns(con, name, _duck(schema))
        schemas[name] = schema
        counts[name] = len(rows)
    return SinkBuild(schemas, counts)


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d")


def _sink_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One ``_AllLogs`` row as the sink writes its entry (None values left out)."""
    out: dict[str, Any] = {
        "logName": row["log_name"],
        "textPayload": row["text_payload"],
        "timestamp": row["timestamp"],
        "receiveTimestamp": row["receive_timestamp"],
        "severity": row["severity"],
        "insertId": row["insert_id"],
        "trace": row["trace"],
        "spanId": row["span_id"],
        "traceSampled": row["trace_sampled"],
    }
    resource: dict[str, Any] = {"type": row["rtype"]}
    if row["rlabels"] is not None:
        resource["labels"] = _user_fields(json.loads(row["rlabels"]))
    out["resource"] = resource
    for column, key in (("labels", "labels"), ("payload", "jsonPayload")):
        if row[column] is not None:
            out[key] = _user_fields(json.loads(row[column]))
    http = row["http_request"]
    if http is not None:
        request = {api: http[name] for name, api in _HTTP_NAMES.items()}
        latency = http["latency"]
        if latency is not None:
            request["latency"] = (latency["seconds"] or 0) + (latency["nanos"] or 0) / 1e9
        out["httpRequest"] = request
    pruned: dict[str, Any] = _pruned(out)
    return pruned


def _user_fields(value: Any) -> Any:
    """``value`` with every object key renamed as a sink names user fields (first one wins)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = sink_name(str(key))
            if name and name not in out:
                out[name] = _user_fields(item)
        return out
    if isinstance(value, list):
        return [_user_fields(v) for v in value]
    return value


def _pruned(value: Any) -> Any:
    """``value`` without None members and empty objects (BigQuery has no empty RECORD)."""
    if isinstance(value, dict):
        out = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {}} or None
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


# Schema inference: DuckDB type names, a dict for a STRUCT, ("LIST", inner) for an array.


def _schema_of(rows: list[dict[str, Any]]) -> Schema:
    merged: dict[str, Any] = {}
    for row in rows:
        for key, value in row.items():
            kind = _FIXED[key] if key in _FIXED else _type_of(value)
            merged[key] = _merge(merged.get(key), kind) if key in merged else kind
    ordered = {k: merged[k] for k in _ORDER if merged.get(k) is not None}
    ordered.update({k: v for k, v in merged.items() if k not in ordered and v is not None})
    return ordered


def _type_of(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT" if _INT64[0] <= value <= _INT64[1] else "DOUBLE"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, str):
        return "VARCHAR"
    if isinstance(value, dict):
        fields = {k: _type_of(v) for k, v in value.items()}
        return {k: v for k, v in fields.items() if v is not None} or None
    if isinstance(value, list):
        inner: Any = None
        for item in value:
            kind = _type_of(item)
            inner = kind if inner is None else _merge(inner, kind)
        if inner is None or (isinstance(inner, tuple)):
            return ("LIST", "VARCHAR") if inner is not None else None
        return ("LIST", inner)
    return "VARCHAR"


def _merge(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None or a == b:
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for key, kind in b.items():
            out[key] = _merge(out.get(key), kind) if key in out else kind
        return out
    if isinstance(a, tuple) and isinstance(b, tuple):
        return ("LIST", _merge(a[1], b[1]))
    if isinstance(a, str) and isinstance(b, str) and {a, b} == {"BIGINT", "DOUBLE"}:
        return "DOUBLE"
    return "VARCHAR"


def _coerce(value: Any, kind: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, Mapping):
        if not isinstance(value, dict):
            return None
        return {k: _coerce(value.get(k), sub) for k, sub in kind.items()}
    if isinstance(kind, tuple):
        return [_coerce(v, kind[1]) for v in value] if isinstance(value, list) else None
    if kind == "VARCHAR":
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if kind == "DOUBLE":
        return float(value)
    return value


def _arrow(kind: Any) -> pa.DataType:
    if isinstance(kind, Mapping):
        return pa.struct([pa.field(k, _arrow(v)) for k, v in kind.items()])
    if isinstance(kind, tuple):
        return pa.list_(_arrow(kind[1]))
    return {
        "VARCHAR": pa.string(),
        "BIGINT": pa.int64(),
        "DOUBLE": pa.float64(),
        "BOOLEAN": pa.bool_(),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    }[kind]


def _duck(kind: Any) -> Any:
    """The DDL form ``stage.ddl`` takes (lists written out as ``T[]``)."""
    if isinstance(kind, Mapping):
        return {k: _duck(v) for k, v in kind.items()}
    if isinstance(kind, tuple):
        inner = _duck(kind[1])
        text = f"STRUCT({ddl(inner)})" if isinstance(inner, Mapping) else str(inner)
        return f"{text}[]"
    return kind


def _create(
    con: duckdb.DuckDBPyConnection, name: str, schema: Schema, rows: list[dict[str, Any]]
) -> None:
    arrow_schema = pa.schema([pa.field(k, _arrow(v)) for k, v in schema.items()])
    data = pa.Table.from_pylist(
        [{k: _coerce(row.get(k), v) for k, v in schema.items()} for row in rows],
        schema=arrow_schema,
    )
    table = quote_name(name)
    con.execute(f"CREATE OR REPLACE TABLE {table} ({ddl(_duck(schema))})")
    con.register("uvs_sink_rows", data)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM uvs_sink_rows")
    finally:
        con.unregister("uvs_sink_rows")
