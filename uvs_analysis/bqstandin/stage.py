"""The SQL that turns Cloud Logging export lines into ``_AllLogs`` rows, in DuckDB.

The stage query reads a table of (``lineno``, ``line``, ``ts_fix``) and gives, per line, whether
DuckDB could parse it (``valid``), why the file loader would refuse the record (``reason``, the
loader's own words) or else the row's columns. The checks mirror
:class:`~uvs_analysis.logs.normalize.Normalizer`: a JSON object whose string fields are strings,
whose object fields are objects and that has a timestamp (its own or its ``jsonPayload``'s
``timestamp``/``time``) that parses and lies within 1677-2262.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import pyarrow as pa

from uvs_analysis.logs.schema import SEVERITY_RANK

__all__ = [
    "ALLLOGS_SCHEMA",
    "INPUT_SCHEMA",
    "LINES_VIEW",
    "STAGE_SQL",
    "ddl",
    "quote_name",
    "size_sql",
]

_V: Final = "VARCHAR"
_I: Final = "BIGINT"
_TS: Final = "TIMESTAMPTZ"
#: Column -> DuckDB type (a dict for a STRUCT), in the view's column order.
ALLLOGS_SCHEMA: Final[Mapping[str, Any]] = {
    "timestamp": _TS,
    "receive_timestamp": _TS,
    "log_name": _V,
    "log_id": _V,
    "severity": _V,
    "severity_number": _I,
    "resource": {"type": _V, "labels": "JSON"},
    "labels": "JSON",
    "json_payload": "JSON",
    "text_payload": _V,
    "proto_payload": "JSON",
    "http_request": {
        "request_method": _V,
        "request_url": _V,
        "request_size": _I,
        "status": _I,
        "response_size": _I,
        "user_agent": _V,
        "remote_ip": _V,
        "server_ip": _V,
        "referer": _V,
        "latency": {"seconds": _I, "nanos": _I},
        "protocol": _V,
    },
    "trace": _V,
    "span_id": _V,
    "trace_sampled": "BOOLEAN",
    "insert_id": _V,
}
#: The name the stage query reads its lines under.
LINES_VIEW: Final = "uvs_lines"
#: The parts the stage query reads: line number, the line, and a timestamp Python parsed.
INPUT_SCHEMA: Final = pa.schema(
    [("lineno", pa.int64()), ("line", pa.string()), ("ts_fix", pa.timestamp("us", tz="UTC"))]
)
_MIN_TS: Final = "1677-09-21 00:12:43.145225+00"  # the loader keeps nanoseconds: 1677..2262
_MAX_TS: Final = "2262-04-11 23:47:16.854775+00"
_STRING_KEYS: Final = ("logName", "severity", "insertId", "trace", "spanId", "textPayload")
_OBJECT_KEYS: Final = ("resource", "labels", "httpRequest", "jsonPayload")
_ENTRY_KEYS: Final = (
    *_STRING_KEYS,
    *_OBJECT_KEYS,
    "timestamp",
    "receiveTimestamp",
    "protoPayload",
    "traceSampled",
)
_JSON_NAMES: Final = {
    "VARCHAR": "string",
    "BIGINT": "number",
    "UBIGINT": "number",
    "DOUBLE": "number",
    "BOOLEAN": "boolean",
    "ARRAY": "array",
    "OBJECT": "object",
    "NULL": "null",
}


def quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _s(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ddl(schema: Mapping[str, Any]) -> str:
    def kind(value: Any) -> str:
        if isinstance(value, Mapping):
            return "STRUCT(" + ddl(value) + ")"
        return str(value)

    return ", ".join(f"{quote_name(name)} {kind(value)}" for name, value in schema.items())


def size_sql(expr: str, kind: Any) -> str:
    """SQL for the BigQuery stored size of one value of type ``kind``."""
    if isinstance(kind, Mapping):
        parts = [size_sql(f"({expr}).{quote_name(name)}", sub) for name, sub in kind.items()]
        return "(" + " + ".join(parts) + ")"
    if kind == _V:
        return f"coalesce(2 + strlen({expr}), 0)"
    if str(kind).endswith("[]"):  # an array: the bytes of its text, roughly
        return f"coalesce(strlen(CAST({expr} AS VARCHAR)), 0)"
    if kind == "JSON":
        return f"coalesce(strlen(CAST({expr} AS VARCHAR)), 0)"
    width = 1 if kind == "BOOLEAN" else 8
    return f"CASE WHEN {expr} IS NULL THEN 0 ELSE {width} END"


def _stage_sql() -> str:
    """SQL turning ``uvs_lines`` (lineno, line) into rows with a rejection reason (or NULL)."""
    entry = _s(json.dumps(dict.fromkeys(_ENTRY_KEYS, "JSON")))

    def jt(key: str) -> str:
        return f"coalesce(json_type(r.\"{key}\"), 'NULL')"

    def jname(expr: str) -> str:
        cases = " ".join(f"WHEN {_s(k)} THEN {_s(v)}" for k, v in _JSON_NAMES.items())
        return f"(CASE {expr} {cases} ELSE lower({expr}) END)"

    ranks = ", ".join(_s(str(rank)) for rank in SEVERITY_RANK.values())
    checks: list[tuple[str, str]] = [
        (
            "kind <> 'OBJECT'",
            f"'it is a JSON ' || {jname('kind')} || ', expected a LogEntry object'",
        )
    ]
    for key in _STRING_KEYS:
        cond = f"{jt(key)} NOT IN ('VARCHAR', 'NULL')"
        if key == "severity":
            rank = f"{jt(key)} IN ('BIGINT', 'UBIGINT') AND r.severity::VARCHAR IN ({ranks})"
            cond += f" AND NOT ({rank})"
        checks.append(
            (cond, f"'field ''{key}'' is a JSON ' || {jname(jt(key))} || ', expected a string'")
        )
    for key in _OBJECT_KEYS:
        checks.append(
            (
                f"{jt(key)} NOT IN ('OBJECT', 'NULL')",
                f"'field ''{key}'' is a JSON ' || {jname(jt(key))} || ', expected an object'",
            )
        )
    checks += [
        (
            "ts_json IS NULL AND regexp_full_match(line, '\\s*\\{\\s*\\}\\s*')",
            "'it is an empty object, expected a LogEntry'",
        ),
        (
            "ts_json IS NULL",
            "'it has no timestamp (LogEntry.timestamp or the payload''s own)'",
        ),
        (
            "ts_kind NOT IN ('VARCHAR', 'BIGINT', 'UBIGINT', 'DOUBLE') OR "
            "(ts_kind <> 'VARCHAR' AND ts IS NULL)",
            "'field ''timestamp'' is not a time, expected an RFC 3339 string'",
        ),
        (
            "ts IS NULL",
            "'timestamp ''' || left(ts_json ->> '$', 80) || ''' is not a time (or not within "
            "1677-2262), expected RFC 3339 such as 2025-09-15T01:50:26.680191Z'",
        ),
    ]
    reason = "CASE " + " ".join(f"WHEN {c} THEN {r}" for c, r in checks) + " END"
    severity_case = " ".join(
        f"WHEN {_s(str(rank))} THEN {_s(name)}" for name, rank in SEVERITY_RANK.items()
    )
    rank_case = " ".join(f"WHEN {_s(name)} THEN {rank}" for name, rank in SEVERITY_RANK.items())

    def text(expr: str) -> str:
        """A JSON value as text: strings unquoted, numbers as written, objects dropped."""
        return (
            f"CASE WHEN json_type({expr}) = 'VARCHAR' THEN {expr} ->> '$' "
            f"WHEN json_type({expr}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
            f"THEN CAST({expr} AS VARCHAR) END"
        )

    def h(key: str) -> str:
        return f"json_extract(r.httpRequest, {_s('$.' + json.dumps(key))})"

    def integer(expr: str) -> str:
        return f"TRY_CAST({text(expr)} AS BIGINT)"

    latency = h("latency")
    latency_seconds = f"json_extract({latency}, '$.seconds')"
    latency_nanos = f"json_extract({latency}, '$.nanos')"
    pattern = "'^\\s*(-?[0-9]+)(\\.([0-9]{1,9}))?s\\s*$'"
    duration = f"regexp_extract({text(latency)}, {pattern}, ['s', 'd', 'f'])"
    http = (
        "CASE WHEN r.httpRequest IS NOT NULL AND json_type(r.httpRequest) = 'OBJECT' THEN "
        "struct_pack("
        f"request_method := {text(h('requestMethod'))}, "
        f"request_url := {text(h('requestUrl'))}, "
        f"request_size := {integer(h('requestSize'))}, "
        f"status := {integer(h('status'))}, "
        f"response_size := {integer(h('responseSize'))}, "
        f"user_agent := {text(h('userAgent'))}, "
        f"remote_ip := {text(h('remoteIp'))}, "
        f"server_ip := {text(h('serverIp'))}, "
        f"referer := {text(h('referer'))}, "
        "latency := CASE "
        f"WHEN json_type({latency}) = 'OBJECT' THEN struct_pack("
        f"seconds := coalesce({integer(latency_seconds)}, 0), "
        f"nanos := coalesce({integer(latency_nanos)}, 0)) "
        f"WHEN {duration}.s <> '' THEN struct_pack("
        f"seconds := TRY_CAST({duration}.s AS BIGINT), "
        f"nanos := (CASE WHEN {duration}.s LIKE '-%' THEN -1 ELSE 1 END) * "
        f"TRY_CAST(rpad({duration}.f, 9, '0') AS BIGINT)) END, "
        f"protocol := {text(h('protocol'))}) END"
    )
    sev_text = "upper(r.severity ->> '$')"
    resource_type = "json_extract(r.resource, '$.type')"
    columns = {
        "timestamp": "ts",
        "receive_timestamp": (
            "CASE WHEN json_type(r.receiveTimestamp) = 'VARCHAR' "
            "THEN TRY_CAST(r.receiveTimestamp ->> '$' AS TIMESTAMPTZ) END"
        ),
        "log_name": "r.logName ->> '$'",
        "log_id": (
            "CASE WHEN contains(r.logName ->> '$', '/logs/') "
            "THEN url_decode(regexp_extract(r.logName ->> '$', '/logs/(.*)$', 1)) END"
        ),
        "severity": (
            f"CASE json_type(r.severity) WHEN 'VARCHAR' THEN {sev_text} "
            f"WHEN 'NULL' THEN NULL ELSE (CASE CAST(r.severity AS VARCHAR) {severity_case} END) END"
        ),
        "severity_number": (
            f"CASE WHEN json_type(r.severity) = 'VARCHAR' THEN (CASE {sev_text} {rank_case} END) "
            "WHEN json_type(r.severity) IN ('BIGINT', 'UBIGINT') "
            "THEN TRY_CAST(CAST(r.severity AS VARCHAR) AS BIGINT) END"
        ),
        "resource": (
            "CASE WHEN r.resource IS NOT NULL AND json_type(r.resource) = 'OBJECT' THEN "
            f"struct_pack(type := {text(resource_type)}, "
            "labels := CASE WHEN json_type(r.resource, '$.labels') = 'OBJECT' "
            "THEN json_extract(r.resource, '$.labels') END) END"
        ),
        "labels": "CASE WHEN json_type(r.labels) = 'OBJECT' THEN r.labels END",
        "json_payload": "CASE WHEN json_type(r.jsonPayload) = 'OBJECT' THEN r.jsonPayload END",
        "text_payload": "r.textPayload ->> '$'",
        "proto_payload": "CASE WHEN json_type(r.protoPayload) <> 'NULL' THEN r.protoPayload END",
        "http_request": http,
        "trace": "r.trace ->> '$'",
        "span_id": "r.spanId ->> '$'",
        "trace_sampled": (
            "CASE WHEN json_type(r.traceSampled) = 'BOOLEAN' "
            "THEN CAST(r.traceSampled AS VARCHAR) = 'true' END"
        ),
        "insert_id": "r.insertId ->> '$'",
    }
    jp_obj = "json_type(r.jsonPayload) = 'OBJECT'"

    def nn(expr: str) -> str:
        return f"CASE WHEN coalesce(json_type({expr}), 'NULL') <> 'NULL' THEN {expr} END"

    jp_ts = nn("json_extract(r.jsonPayload, '$.\"timestamp\"')")
    jp_time = nn("json_extract(r.jsonPayload, '$.\"time\"')")
    ts_value = (
        "CASE WHEN ts_fix IS NOT NULL THEN ts_fix "
        "ELSE CASE ts_kind WHEN 'VARCHAR' THEN TRY_CAST(ts_json ->> '$' AS TIMESTAMPTZ) "
        "WHEN 'BIGINT' THEN try(to_timestamp(TRY_CAST(CAST(ts_json AS VARCHAR) AS DOUBLE))) "
        "WHEN 'UBIGINT' THEN try(to_timestamp(TRY_CAST(CAST(ts_json AS VARCHAR) AS DOUBLE))) "
        "WHEN 'DOUBLE' THEN try(to_timestamp(TRY_CAST(CAST(ts_json AS VARCHAR) AS DOUBLE))) END END"
    )
    return (
        "WITH src AS (\n"
        "  SELECT lineno, line, ts_fix, coalesce(json_valid(line), false) AS valid\n"
        f"  FROM {LINES_VIEW}\n"
        "), typed AS (\n"
        "  SELECT *, CASE WHEN valid THEN json_type(line) END AS kind FROM src\n"
        "), parsed AS (\n"
        f"  SELECT *, CASE WHEN kind = 'OBJECT' THEN json_transform(line, {entry}) END AS r\n"
        "  FROM typed\n"
        "), stamped AS (\n"
        f"  SELECT *, coalesce(r.timestamp, CASE WHEN {jp_obj} THEN coalesce({jp_ts}, {jp_time}) "
        "END) AS ts_json FROM parsed\n"
        "), timed AS (\n"
        "  SELECT *, json_type(ts_json) AS ts_kind FROM stamped\n"
        "), valued AS (\n"
        f"  SELECT *, CASE WHEN v BETWEEN TIMESTAMPTZ {_s(_MIN_TS)} AND TIMESTAMPTZ {_s(_MAX_TS)} "
        f"THEN v END AS ts FROM (SELECT *, {ts_value} AS v FROM timed)\n"
        "), checked AS (\n"
        f"  SELECT *, CASE WHEN valid THEN {reason} END AS reason FROM valued\n"
        ")\n"
        "SELECT lineno, valid, reason, "
        "CASE WHEN NOT valid OR (reason IS NOT NULL AND ts_kind = 'VARCHAR') "
        "THEN line END AS line, "
        "CASE WHEN reason IS NOT NULL AND ts_kind = 'VARCHAR' AND ts_fix IS NULL "
        "THEN ts_json ->> '$' END AS ts_text, "
        + ", ".join(
            f"CASE WHEN valid AND reason IS NULL THEN {expr} END AS {quote_name(name)}"
            for name, expr in columns.items()
        )
        + " FROM checked"
    )


#: The stage query (reads ``LINES_VIEW``).
STAGE_SQL: Final = _stage_sql()
