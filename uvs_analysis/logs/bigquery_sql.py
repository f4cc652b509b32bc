"""BigQuery SQL for Cloud Run logs in a Log Analytics ``_AllLogs`` view: the shared pieces.

Pure: a :class:`~uvs_analysis.logs.query.LogQuery` becomes a WHERE clause with named query
parameters (values are never pasted into the text), and the normalization rules of
``normalize.py``/``extract.py`` become SQL expressions over the view's columns (log kind,
resource labels, the severity with the stderr inference, payload field aliases, close codes
found in text, the masking chain of ``signatures.MASK_RULES``). Everything is written in
BigQuery's dialect; the patterns are the very ones the pandas path uses, which stay within
what both Python ``re`` and RE2 accept.

The queries built from these pieces live in :mod:`uvs_analysis.logs.bigquery_queries`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from uvs_analysis.errors import UsageError
from uvs_analysis.logs import extract
from uvs_analysis.logs.extract import CLOSE_TEXT_PATTERNS, FIELD_ALIASES, URL_PATH_PATTERN
from uvs_analysis.logs.query import LogQuery
from uvs_analysis.logs.schema import LOG_IDS, SEVERITIES, SEVERITY_RANK
from uvs_analysis.logs.signatures import MASK_RULES, MaskRule

__all__ = [
    "PY_SPACE",
    "Param",
    "SqlQuery",
    "base_ctes",
    "mask_sql",
    "severity_rank_sql",
    "single_group",
    "sql_string",
    "strip_sql",
    "table_ref",
]

#: Python's ``str.isspace`` characters as an RE2/``re`` class (``\s`` differs between them).
PY_SPACE: Final = (
    "[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)
_KIND_BY_LOG_ID: Final = dict(LOG_IDS)
_LOG_ID_BY_KIND: Final = {kind: log_id for log_id, kind in LOG_IDS.items()}
_IDENT: Final = re.compile(r"^[A-Za-z0-9_]+$")
_PROJECT: Final = re.compile(r"^[a-z][a-z0-9.:-]{0,62}[a-z0-9]$")
_NAMED_GROUP: Final = re.compile(r"\(\?P<(\w+)>")


@dataclass(frozen=True)
class Param:
    """A named query parameter: BigQuery type name and value."""

    type: str
    value: object


@dataclass(frozen=True)
class SqlQuery:
    """One query: its name (for messages), BigQuery SQL and named parameters."""

    name: str
    sql: str
    params: Mapping[str, Param] = field(default_factory=dict)


def sql_string(text: str) -> str:
    """``text`` as a quoted BigQuery string literal (backslash escapes, no raw strings)."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def table_ref(project: str, dataset: str, table: str = "_AllLogs") -> str:
    """The quoted ``project.dataset.table`` reference, after checking each name.

    Raises:
        UsageError: a name holds characters BigQuery identifiers cannot.
    """
    if not _PROJECT.match(project):
        raise UsageError(
            f"BigQuery project {project!r} is not a project id",
            expected="lower-case letters, digits and hyphens, such as my-project",
        )
    for what, name in (("dataset", dataset), ("table", table)):
        if not _IDENT.match(name):
            raise UsageError(
                f"BigQuery {what} {name!r} is not a {what} name",
                expected="letters, digits and underscores, such as my_dataset or _AllLogs",
            )
    return f"`{project}.{dataset}.{table}`"


def single_group(pattern: str, keep: str) -> str:
    """``pattern`` with only the named group ``keep`` capturing (BigQuery's REGEXP_EXTRACT
    allows one capturing group); other named groups become non-capturing."""
    return _NAMED_GROUP.sub(lambda m: "(" if m[1] == keep else "(?:", pattern)


def strip_sql(expr: str) -> str:
    """``expr`` without leading and trailing whitespace, as Python's ``str.strip()``."""
    return f"REGEXP_REPLACE({expr}, {sql_string(f'^{PY_SPACE}+|{PY_SPACE}+$')}, '')"


def mask_sql(expr: str, rules: Sequence[MaskRule] = MASK_RULES) -> str:
    """The ``REGEXP_REPLACE`` chain that masks ``expr`` as ``signatures.mask`` does."""
    for rule in rules:
        expr = f"REGEXP_REPLACE({expr}, {sql_string(rule.pattern)}, {sql_string(rule.replacement)})"
    return expr


def severity_rank_sql(expr: str) -> str:
    """The LogSeverity number of a severity name (unknown names count as DEFAULT, 0)."""
    whens = " ".join(f"WHEN {sql_string(name)} THEN {rank}" for name, rank in SEVERITY_RANK.items())
    return f"CASE {expr} {whens} ELSE 0 END"


def _in_list(values: Sequence[str]) -> str:
    return "(" + ", ".join(sql_string(v) for v in values) + ")"


def _json_path(*keys: str) -> str:
    parts = "".join(f'."{k}"' if not _IDENT.match(k) else f".{k}" for k in keys)
    return "$" + parts


def _alias_keys(column: str) -> list[str]:
    """Payload keys of ``column`` in priority order (the first alias wins in a container)."""
    return [key for key, target in FIELD_ALIASES.items() if target == column]


def _containers() -> list[tuple[str, tuple[str, ...]]]:
    """(JSON column, path prefix) of every place aliases are looked up, highest priority first:
    the payload's top level, its containers (last wins), then the entry's own labels."""
    places: list[tuple[str, tuple[str, ...]]] = [("json_payload", ())]
    places += [("json_payload", (name,)) for name in reversed(extract.PAYLOAD_CONTAINERS)]
    places.append(("labels", ()))
    return places


def _alias_text(column: str) -> str:
    """The value of an id-like alias (trace, connection_id ...) as the normalizer picks it."""
    exprs = [
        f"JSON_VALUE({col}, {sql_string(_json_path(*prefix, key))})"
        for col, prefix in _containers()
        for key in _alias_keys(column)
    ]
    return f"COALESCE({', '.join(exprs)})"


def _close_code_value(value: str) -> str:
    """A close code (1000-4999) from JSON_VALUE text of a number or a digit string."""
    pattern = sql_string(r"^[ \t]*([0-9]{1,9})(?:\.0*)?[ \t]*$")
    digits = f"SAFE_CAST(REGEXP_EXTRACT({value}, {pattern}) AS INT64)"
    return f"(CASE WHEN {digits} BETWEEN 1000 AND 4999 THEN {digits} END)"


def _payload_close_code() -> str:
    """The payload/labels close code: the highest-priority container holding a valid one."""
    per_container = []
    for col, prefix in _containers():
        codes = [
            _close_code_value(f"JSON_VALUE({col}, {sql_string(_json_path(*prefix, key))})")
            for key in _alias_keys("ws_close_code")
        ]
        per_container.append(f"COALESCE({', '.join(codes)})")
    return f"COALESCE({', '.join(per_container)})"


def _text_close_code(message: str) -> str:
    """The close code found in message text by ``CLOSE_TEXT_PATTERNS`` (first pattern wins)."""
    found = [
        f"SAFE_CAST(REGEXP_EXTRACT({message}, {sql_string(single_group(p, 'code'))}) AS INT64)"
        for p in CLOSE_TEXT_PATTERNS
    ]
    return f"COALESCE({', '.join(found)})"


def _infer_severity(text: str) -> str:
    """``extract.infer_severity`` in SQL (NULL when nothing points to a severity)."""
    prefix = single_group(extract._LEVEL_PREFIX.pattern, "level")
    level = f"REGEXP_EXTRACT({text}, {sql_string(prefix)})"
    names = " ".join(
        f"WHEN {sql_string(word)} THEN {sql_string(name)}"
        for word, name in extract._LEVEL_NAMES.items()
    )
    return (
        f"CASE WHEN {level} IS NOT NULL THEN CASE {level} {names} END"
        f" WHEN REGEXP_CONTAINS({text}, {sql_string(extract._ERROR_WORDS.pattern)}) THEN 'ERROR'"
        f" WHEN REGEXP_CONTAINS({text}, {sql_string(extract._WARNING_WORDS.pattern)})"
        " THEN 'WARNING' END"
    )


def _log_kind() -> str:
    whens = " ".join(
        f"WHEN {sql_string(log_id)} THEN {sql_string(kind)}"
        for log_id, kind in _KIND_BY_LOG_ID.items()
    )
    return f"CASE log_id {whens} ELSE 'other' END"


def where_clause(query: LogQuery) -> tuple[str, dict[str, Param]]:
    """The WHERE clause (without ``WHERE``) and its parameters for ``query``'s window,
    resource and log kinds. The severity floor applies after normalization (see base_ctes).

    Raises:
        UsageError: the query has an ``extra_filter`` (Logging query language is not SQL).
    """
    if query.extra_filter and query.extra_filter.strip():
        raise UsageError(
            f"extra_filter {query.extra_filter.strip()!r} is a Logging-query-language clause, "
            "which the BigQuery source cannot run",
            expected="no extra_filter with a bigquery:// source",
            hint="narrow the query with service, revision, region, severity, log kinds and the "
            "window, or read the same logs with a cloudlogging:// source",
        )
    params: dict[str, Param] = {
        "start": Param("TIMESTAMP", query.start),
        "end": Param("TIMESTAMP", query.end),
    }
    clauses = [
        "timestamp >= @start",
        "timestamp < @end",
        "resource.type = 'cloud_run_revision'",
    ]
    for name, label, value in (
        ("service", "service_name", query.service),
        ("revision", "revision_name", query.revision),
        ("region", "location", query.region),
    ):
        if value:
            params[name] = Param("STRING", value)
            clauses.append(f"JSON_VALUE(resource.labels, '$.{label}') = @{name}")
    kinds = []
    for i, kind in enumerate(query.log_kinds):
        params[f"log_id_{i}"] = Param("STRING", _LOG_ID_BY_KIND[kind])
        kinds.append(f"@log_id_{i}")
    clauses.append(f"log_id IN ({', '.join(kinds)})")
    return "\n    AND ".join(clauses), params


def base_ctes(table: str, query: LogQuery) -> tuple[str, dict[str, Param]]:
    """``WITH`` CTEs ending in ``entries``: the query's entries, normalized and deduplicated.

    ``entries`` has the normalized columns the aggregates need (timestamp, severity,
    severity_rank, log_kind, service, revision, location, instance_id, trace, insert_id,
    log_name, message, http_method, http_path, http_status, http_latency_s, ws_close_code)
    plus ``text_payload`` and ``payload`` (the jsonPayload as JSON text). ``matched`` holds the
    same rows before deduplication (the view keeps duplicates; an entry repeated with the same
    insert_id, timestamp and log_name counts once, as in the file loader).
    """
    where, params = where_clause(query)
    floor_clause = "TRUE"
    if query.severity:
        params["min_rank"] = Param("INT64", SEVERITY_RANK[query.severity])
        rank = severity_rank_sql("severity")
        floor_clause = f"severity IN {_in_list(SEVERITIES)} AND {rank} >= @min_rank"
    valid = _in_list(SEVERITIES)
    payload_sev = "UPPER(JSON_VALUE(json_payload, '$.severity'))"
    inferred = _infer_severity("text_payload")
    path_re = sql_string(single_group(URL_PATH_PATTERN, "path"))
    path = f"REGEXP_EXTRACT(http_request.request_url, {path_re})"
    sql = f"""
raw AS (
  SELECT
    timestamp, receive_timestamp, log_name, insert_id, span_id,
    {_log_kind()} AS log_kind,
    JSON_VALUE(resource.labels, '$.service_name') AS service,
    JSON_VALUE(resource.labels, '$.revision_name') AS revision,
    JSON_VALUE(resource.labels, '$.location') AS location,
    JSON_VALUE(labels, '$.instanceId') AS instance_id,
    COALESCE(trace, {_alias_text("trace")}) AS trace,
    COALESCE(text_payload, JSON_VALUE(json_payload, '$.message')) AS message,
    text_payload,
    TO_JSON_STRING(json_payload) AS payload,
    http_request.user_agent AS http_user_agent,
    http_request.remote_ip AS http_remote_ip,
    http_request.request_url AS http_url,
    http_request.status AS entry_status,
    http_request.latency.seconds AS latency_seconds,
    http_request.latency.nanos AS latency_nanos,
    http_request.request_size AS request_size,
    http_request.response_size AS response_size,
    http_request.protocol AS protocol,
    http_request.referer AS referer,
    http_request.server_ip AS server_ip,
    http_request IS NOT NULL AS has_http,
    resource.type AS resource_type,
    trace AS entry_trace,
    trace_sampled,
    severity AS entry_severity,
    CASE WHEN {payload_sev} IN {valid} THEN {payload_sev} END AS payload_severity,
    http_request.request_method AS http_method,
    CASE WHEN {path} = '' THEN '/' ELSE {path} END AS http_path,
    CASE WHEN http_request.status BETWEEN 100 AND 999 THEN http_request.status END AS http_status,
    CASE WHEN http_request.latency IS NOT NULL THEN
      COALESCE(http_request.latency.seconds, 0) + COALESCE(http_request.latency.nanos, 0) / 1e9
    END AS http_latency_s,
    {_payload_close_code()} AS payload_close_code
  FROM {table}
  WHERE {where}
),
typed AS (
  SELECT
    * EXCEPT (payload_severity, payload_close_code),
    COALESCE(payload_close_code,
             CASE WHEN message IS NOT NULL THEN {_text_close_code("message")} END)
      AS ws_close_code,
    COALESCE(UPPER(entry_severity), payload_severity,
             CASE WHEN log_kind = 'stderr' AND text_payload <> '' THEN {inferred} END,
             'DEFAULT') AS severity
  FROM raw
),
matched AS (
  SELECT *, {severity_rank_sql("severity")} AS severity_rank
  FROM typed
  WHERE {floor_clause}
),
entries AS (
  SELECT * FROM matched
  WHERE TRUE
  QUALIFY insert_id IS NULL
    OR ROW_NUMBER() OVER (PARTITION BY insert_id, timestamp, log_name
                          ORDER BY receive_timestamp) = 1
)"""
    return sql.strip(), params


