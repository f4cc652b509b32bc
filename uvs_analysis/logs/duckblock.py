"""The fast path for NDJSON: DuckDB parses the lines and extracts the normalized fields in SQL.

The reader hands DuckDB a stream of Arrow batches (``lineno``, ``line``). One query, run on all
cores, turns each line into a typed struct (``json_transform``) and derives the raw normalized
columns (``timestamp`` and ``receive_timestamp`` still as text). Rows come back in runs, not
in file order; the normalizer puts them in order. The payload is DuckDB's minified JSON text of
``jsonPayload``: the text ``orjson.dumps`` writes, except that a float that needs an exponent
(beyond 1e16, below 1e-4) may be written in the other engine's form of the same value, and an
integer beyond 64 bits keeps its digits (orjson reads it as a float).

``json_transform`` coerces values to the requested types, so every line whose values could be
read differently from the record-by-record path is *flagged* and returned with its text for
the caller to read in Python instead: invalid JSON, blank lines and non-objects; a known key
with a value of an unexpected type (a number where text is expected, an object where a
string is, a string where an object is, any float among the fields read, ``null``); a missing
timestamp; close codes or statuses written as text other than plain digits; non-ASCII
severities; NaN, Infinity and what DuckDB's JSON reader accepts beyond the standard (``nan``
or ``inf`` in any case, trailing commas, floats beyond double range) after a member name, a
string or a number. A key is checked wherever it occurs in the line, so a flag can be needless
(the row then just takes the slower path) but a difference is not missed. The one exception:
those forms right after an object or an array inside an array (``[{...}, NaN]``, ``[[1],]``)
are read as DuckDB reads them.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from uvs_analysis.logs.extract import FIELD_ALIASES, PAYLOAD_CONTAINERS
from uvs_analysis.logs.schema import SEVERITIES

__all__ = [
    "INPUT_SCHEMA",
    "OUTPUT_COLUMNS",
    "Engine",
    "batch_columns",
    "build_query",
    "input_batch",
]

#: The batches the query reads: 1-based line number, the line's text (newline included) and
#: whether the line has a value the record path reads otherwise (``input_batch`` sets it).
INPUT_SCHEMA: Final = pa.schema(
    [("lineno", pa.int64()), ("line", pa.string()), ("odd", pa.bool_())]
)

#: Columns of the query's result besides ``lineno``, ``flag`` and ``line``.
OUTPUT_COLUMNS: Final = (
    "timestamp",
    "receive_timestamp",
    "severity",
    "raw_log_name",
    "service",
    "revision",
    "location",
    "instance_id",
    "trace",
    "span_id",
    "insert_id",
    "infer_text",
    "message",
    "payload",
    "http_method",
    "http_url",
    "http_status",
    "http_latency_s",
    "http_user_agent",
    "http_remote_ip",
    "ws_close_code",
    "ws_close_reason",
    "connection_id",
    "user_id",
    "run_id",
    "thread_id",
)

_V: Final = "VARCHAR"
_BY_COLUMN: Final[dict[str, list[str]]] = {}
for _alias, _column in FIELD_ALIASES.items():
    _BY_COLUMN.setdefault(_column, []).append(_alias)
_ALIAS_STRUCT: Final = dict.fromkeys(FIELD_ALIASES, _V)

#: The LogEntry fields read, as ``json_transform`` types.
_ENTRY: Final = {
    "logName": _V,
    "severity": _V,
    "insertId": _V,
    "trace": _V,
    "spanId": _V,
    "textPayload": _V,
    "timestamp": _V,
    "receiveTimestamp": _V,
    "resource": {"labels": {"service_name": _V, "revision_name": _V, "location": _V}},
    "labels": {"instanceId": _V, **_ALIAS_STRUCT},
    "httpRequest": {
        "requestMethod": _V,
        "requestUrl": _V,
        "status": _V,
        "latency": _V,
        "userAgent": _V,
        "remoteIp": _V,
    },
    "jsonPayload": "JSON",
    "protoPayload": "JSON",
}
_PAYLOAD: Final = {
    "message": _V,
    "severity": _V,
    "timestamp": _V,
    "time": _V,
    **_ALIAS_STRUCT,
    **{name: _ALIAS_STRUCT for name in PAYLOAD_CONTAINERS},
}


def _keys(keys: Any) -> str:
    return "|".join(re.escape(key) for key in keys)


_TEXT_KEYS: Final = (
    "logName",
    "severity",
    "insertId",
    "trace",
    "spanId",
    "textPayload",
    "timestamp",
    "time",
    "message",
    "latency",
    *_BY_COLUMN["ws_close_reason"],
)
_TEXT_OR_INT_KEYS: Final = (
    "service_name",
    "revision_name",
    "location",
    "instanceId",
    "requestMethod",
    "requestUrl",
    "userAgent",
    "remoteIp",
    "status",
    *(key for key, column in FIELD_ALIASES.items() if column != "ws_close_reason"),
)
_OBJECT_KEYS: Final = ("resource", "labels", "httpRequest", "jsonPayload")
#: What DuckDB's JSON reader accepts and Python's refuses or reads otherwise, after a member
#: name or a string: ``nan``/``inf``/``Infinity`` in any case, also among numbers in an array
#: (Python takes NaN and Infinity but writes them as null), a trailing comma, a float beyond
#: double range (Python makes it infinite). Each alternative starts with a quote, which keeps
#: the search fast (the engine skips to quotes); the forms after an object or an array inside
#: an array (``[{...}, nan]``, ``[[1],]``) are not caught.
_LENIENT_JSON: Final = (
    r'"\s*[:,]\s*[-+0-9.eE,\s\[]*(?i:nan|inf)'
    r'|"\s*(?:[}\]]\s*)?,\s*[}\]]'
    r'|"\s*:\s*[-+.0-9A-Za-z]+\s*,\s*[}\]]'
    r'|"\s*:\s*-?[0-9]+(?:\.[0-9]*)?[eE]\+?[0-9]{3}'
)
#: A value of an unexpected type for a key the normalizer reads, anywhere in the line, or
#: JSON only DuckDB reads. An integer of 19 digits or more counts: the record path may read it
#: as a float.
_ODD_VALUE: Final = (
    rf'"(?:{_keys(_TEXT_KEYS)})"\s*:\s*[^"\s]'
    rf'|"(?:{_keys(_TEXT_OR_INT_KEYS)})"\s*:\s*'
    rf'(?:[^"\s0-9-]|-?[0-9]+\s*[^\s0-9,}}\]]|-?[0-9]{{19}})'
    rf'|"(?:{_keys(_OBJECT_KEYS)})"\s*:\s*[^{{\s]'
    rf"|{_LENIENT_JSON}"
)
_NON_ASCII: Final = r"[^\x00-\x7f]"


def _sql(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _coalesce(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "coalesce(" + ", ".join(items) + ")"


def build_query(source: str, *, lenient: bool = False) -> str:
    """The SQL that turns the lines of table ``source`` (INPUT_SCHEMA) into the raw columns.

    The query stops at the first line that is not JSON (a blank line included); with
    ``lenient`` such a line gives a null struct instead (and is flagged), at some cost on
    every line.
    """
    flags: list[str] = []

    def ranged(value: str, low: int, high: int, into: list[str] = flags) -> str:
        """``close_code_of``/``status_code`` of a digits-or-text value within [low, high]."""
        digits = f"regexp_full_match({value}, '[0-9]{{1,9}}')"
        into.append(f"NOT {digits} AND regexp_matches({value}, '[0-9]|{_NON_ASCII}')")
        number = f"CASE WHEN {digits} THEN TRY_CAST({value} AS BIGINT) END"
        return f"CASE WHEN {number} BETWEEN {low} AND {high} THEN {number} END"

    containers = ["p", *(f"p.{name}" for name in reversed(PAYLOAD_CONTAINERS)), "r.labels"]
    cols: dict[str, str] = {}
    cols["timestamp"] = "coalesce(r.timestamp, p.timestamp, p.time)"
    flags.append("r.timestamp IS NULL AND p.timestamp IS NULL AND p.time IS NULL")
    flags.append("r IS NULL OR (jp IS NOT NULL AND p IS NULL)")
    cols["receive_timestamp"] = "r.receiveTimestamp"
    severity_list = "[" + ", ".join(_sql(name) for name in SEVERITIES) + "]"
    payload_severity = (
        f"CASE WHEN list_contains({severity_list}, upper(p.severity)) THEN upper(p.severity) END"
    )
    cols["severity"] = f"coalesce(upper(r.severity), {payload_severity})"
    flags.append(f"regexp_matches(r.severity, '{_NON_ASCII}')")
    flags.append(f"regexp_matches(p.severity, '{_NON_ASCII}')")
    cols["raw_log_name"] = "r.logName"
    cols["service"] = "r.resource.labels.service_name"
    cols["revision"] = "r.resource.labels.revision_name"
    cols["location"] = "r.resource.labels.location"
    cols["instance_id"] = "r.labels.instanceId"
    cols["span_id"] = "r.spanId"
    cols["insert_id"] = "r.insertId"
    cols["infer_text"] = (
        f"CASE WHEN r.severity IS NULL AND {payload_severity} IS NULL THEN r.textPayload END"
    )
    cols["message"] = "coalesce(r.textPayload, p.message)"
    cols["payload"] = (
        "CASE WHEN jp IS NOT NULL THEN CAST(jp AS VARCHAR) "
        "WHEN left(CAST(r.protoPayload AS VARCHAR), 1) = '{' "
        "THEN CAST(r.protoPayload AS VARCHAR) END"
    )
    cols["http_method"] = "r.httpRequest.requestMethod"
    cols["http_url"] = "r.httpRequest.requestUrl"
    cols["http_user_agent"] = "r.httpRequest.userAgent"
    cols["http_remote_ip"] = "r.httpRequest.remoteIp"
    cols["http_status"] = ranged("r.httpRequest.status", 100, 999)
    latency = "r.httpRequest.latency"
    duration = f"regexp_full_match({latency}, '[0-9]{{1,12}}(\\.[0-9]{{1,12}})?s')"
    flags.append(f"NOT {duration}")
    cols["http_latency_s"] = (
        f"CASE WHEN {duration} THEN TRY_CAST(rtrim({latency}, 's') AS DOUBLE) END"
    )
    # One flat coalesce per column: nested ones build a vector for each level.
    for column in ("connection_id", "user_id", "run_id", "thread_id"):
        cols[column] = _coalesce([f'{c}."{key}"' for c in containers for key in _BY_COLUMN[column]])
    cols["trace"] = _coalesce(
        ["r.trace", *(f'{c}."{key}"' for c in containers for key in _BY_COLUMN["trace"])]
    )
    # Close codes are rare: the costly checks run only where some code key has a value.
    code_keys = [f'{c}."{key}"' for c in containers for key in _BY_COLUMN["ws_close_code"]]
    any_code = f"{_coalesce(code_keys)} IS NOT NULL"
    code_flags: list[str] = []
    codes, reasons = [], []
    for c in containers:
        parts = [
            ranged(f'{c}."{key}"', 1000, 4999, code_flags) for key in _BY_COLUMN["ws_close_code"]
        ]
        codes.append(f"CASE WHEN any_code THEN {_coalesce(parts)} END")
        reasons.append(_coalesce([f'{c}."{key}"' for key in _BY_COLUMN["ws_close_reason"]]))
    cols["ws_close_code"] = _coalesce([f"code{i}" for i in range(len(codes))])
    cols["ws_close_reason"] = (
        "CASE "
        + " ".join(f"WHEN code{i} IS NOT NULL THEN {reason}" for i, reason in enumerate(reasons))
        + " END"
    )

    code_flag = " OR ".join(f"coalesce({f}, false)" for f in code_flags)
    flags.append(f"CASE WHEN any_code THEN {code_flag} ELSE false END")
    flag = " OR ".join(f"coalesce({f}, false)" for f in flags)
    entry = _sql(json.dumps(_ENTRY))
    payload = _sql(json.dumps(_PAYLOAD))
    code_cols = ", ".join(f"{code} AS code{i}" for i, code in enumerate(codes))
    transform = f"json_transform(line, {entry})"
    if lenient:
        transform = f"try({transform})"
    return (
        # No CASE around the transforms: it would copy their structs. A line that is not an
        # object gives a struct of nulls (no timestamp), one that is not JSON an error (a null
        # struct when lenient). The payload is JSON written by the engine: it always reads.
        "WITH entries AS (\n"
        "  SELECT lineno, line, odd,\n"
        f"    {transform} AS r\n"
        f"  FROM {source}\n"
        "), payloads AS (\n"
        "  SELECT *, r.jsonPayload AS jp,\n"
        f"    json_transform(r.jsonPayload, {payload}) AS p\n"
        "  FROM entries\n"
        "), coded AS (\n"
        f"  SELECT *, {code_cols} FROM (SELECT *, {any_code} AS any_code FROM payloads)\n"
        "), rows AS (\n"
        "  SELECT lineno, line, "
        + ", ".join(f"{expr} AS {name}" for name, expr in cols.items())
        + f", odd OR ({flag}) AS flag FROM coded\n"
        ")\n"
        "SELECT lineno, flag, CASE WHEN flag THEN line END AS line, "
        + ", ".join(OUTPUT_COLUMNS)
        + " FROM rows"
    )


def input_batch(numbers: pa.Array, lines: pa.Array) -> pa.RecordBatch:
    """The query's input for ``lines`` (string, numbered ``numbers``), their ``odd`` flag set.

    The flag is searched here, with Arrow's regular expressions (the newer engine is about
    twice as fast as the query's on this pattern), so the caller can do it beside the query.
    """
    odd = pc.fill_null(pc.match_substring_regex(lines, _ODD_VALUE), False)
    return pa.record_batch([numbers, lines, odd], schema=INPUT_SCHEMA)


class Engine:
    """A DuckDB connection that runs :func:`build_query` over parts of a file, one at a time.

    Args:
        threads: DuckDB threads (default: all cores).
    """

    def __init__(self, *, threads: int | None = None) -> None:
        import duckdb

        # Text comes out as large_string, the type the frame keeps (no cast of every column).
        self._con = duckdb.connect(
            ":memory:", config={"preserve_insertion_order": True, "arrow_large_buffer_size": True}
        )
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        # Views keep the long query parsed once (parsing it took ~8 ms a part).
        self._con.register("uvs_lines", INPUT_SCHEMA.empty_table())
        self._con.execute(f"CREATE TEMP VIEW uvs_rows AS {build_query('uvs_lines')}")
        lenient = build_query("uvs_lines", lenient=True)
        self._con.execute(f"CREATE TEMP VIEW uvs_rows_lenient AS {lenient}")
        self._con.unregister("uvs_lines")

    def run(self, lines: pa.Table) -> pa.Table:
        """The raw columns (``lineno``, ``flag``, ``line`` and OUTPUT_COLUMNS) of ``lines``."""
        import duckdb

        self._con.register("uvs_lines", lines)
        try:
            try:
                return self._con.sql("SELECT * FROM uvs_rows").to_arrow_table()
            except duckdb.InvalidInputException:  # a line that is not JSON: the part again
                return self._con.sql("SELECT * FROM uvs_rows_lenient").to_arrow_table()
        finally:
            self._con.unregister("uvs_lines")

    def close(self) -> None:
        self._con.close()


_TYPES: Final = {
    "http_status": pa.int64(),
    "ws_close_code": pa.int64(),
    "http_latency_s": pa.float64(),
}
#: Output columns taken as they are (the rest are worked out in ``batch_columns``).
_DERIVED: Final = frozenset({"severity", "raw_log_name", "infer_text", "message"})
_PASS: Final = tuple(name for name in OUTPUT_COLUMNS if name not in _DERIVED)


def batch_columns(
    batch: pa.RecordBatch,
) -> tuple[dict[str, pa.Array], pa.Array, list[tuple[int, bytes]]]:
    """Split a result batch into the good rows' columns, their line numbers and flagged lines.

    Returns:
        The columns ``Normalizer.add_columns`` takes (timestamps still text), the good rows'
        line numbers, and (line number, raw line) of each flagged row.
    """
    from uvs_analysis.logs.arrowblock import log_names, with_inferred_severity

    flag = batch.column("flag")
    flagged: list[tuple[int, bytes]] = []
    if flag.true_count:
        marked = batch.filter(flag)
        flagged = [
            (number, (text or "").encode())
            for number, text in zip(
                marked.column("lineno").to_pylist(), marked.column("line").to_pylist(), strict=True
            )
        ]
        batch = batch.filter(pc.invert(flag))
    col = {
        name: _plain(batch.column(name), _TYPES.get(name, pa.string())) for name in OUTPUT_COLUMNS
    }
    out = {name: col[name] for name in _PASS}
    kinds, names = log_names(col["raw_log_name"])
    out["log_kind"], out["log_name"] = kinds, names
    out["severity"], out["severity_inferred"] = with_inferred_severity(
        col["severity"], kinds, col["infer_text"]
    )
    out["message"] = col["message"]
    return out, batch.column("lineno"), flagged


def _plain(values: pa.Array, type_: pa.DataType) -> pa.Array:
    """The column as the plain Arrow type the normalizer's chunks use (text stays large)."""
    if values.type == type_ or (type_ == pa.string() and values.type == pa.large_string()):
        return values
    return pc.cast(values, type_)
