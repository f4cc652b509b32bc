"""The fast path for NDJSON: a block of lines parsed by pyarrow into normalized columns.

pyarrow's JSON reader (C++, multi-threaded) parses the block against an explicit schema of the
LogEntry fields, and the columns are derived with Arrow compute. Only what Arrow cannot give
goes through Python, row by row: entries with a ``jsonPayload`` (kept as compact JSON text and
searched for aliased fields) or a ``protoPayload``, entries without a timestamp, and the
severity of stderr lines without one (inferred once per distinct text). A block the explicit
schema does not fit (a wrong type, a malformed line, a blank line, invalid UTF-8) is refused,
and the caller reads it record by record instead, so both paths give the same rows.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import unquote

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from uvs_analysis.logs.extract import FIELD_ALIASES, infer_severity
from uvs_analysis.logs.schema import SEVERITIES, log_kind_of

__all__ = ["ENTRY_SCHEMA", "block_columns", "log_names", "read_block", "with_inferred_severity"]

_STR: Final = pa.string()
_LABEL_KEYS: Final = ("instanceId", *FIELD_ALIASES)

#: The LogEntry fields the fast path reads; anything else in a line is ignored.
ENTRY_SCHEMA: Final = pa.schema(
    [
        ("timestamp", _STR),
        ("receiveTimestamp", _STR),
        ("severity", _STR),
        ("logName", _STR),
        ("insertId", _STR),
        ("trace", _STR),
        ("spanId", _STR),
        ("textPayload", _STR),
        ("labels", pa.struct([(key, _STR) for key in _LABEL_KEYS])),
        (
            "resource",
            pa.struct(
                [
                    (
                        "labels",
                        pa.struct(
                            [("service_name", _STR), ("revision_name", _STR), ("location", _STR)]
                        ),
                    )
                ]
            ),
        ),
        (
            "httpRequest",
            pa.struct(
                [
                    ("requestMethod", _STR),
                    ("requestUrl", _STR),
                    ("status", pa.int64()),
                    ("latency", _STR),
                    ("userAgent", _STR),
                    ("remoteIp", _STR),
                ]
            ),
        ),
        ("jsonPayload", pa.struct([])),
        ("protoPayload", pa.struct([])),
    ]
)
_READ: Final = pj.ReadOptions(use_threads=False, block_size=1 << 24)
_PARSE: Final = pj.ParseOptions(explicit_schema=ENTRY_SCHEMA, unexpected_field_behavior="ignore")
_SEVERITY_SET: Final = frozenset(SEVERITIES)
_NULL_STR: Final = pa.scalar(None, _STR)
_NULL_INT: Final = pa.scalar(None, pa.int64())

#: (jsonPayload, found) -> None: copies the payload's aliased fields (the normalizer's scan).
Scanner = Callable[[dict[str, Any], dict[str, Any]], None]
Dumps = Callable[[object], bytes]


def read_block(lines: Sequence[bytes]) -> pa.Table | None:
    """Parse a block of NDJSON lines (none blank) against ENTRY_SCHEMA; None if it does not fit.

    Runs in C++ without the GIL, so a reader can parse the next block in a thread while the
    current one is finished in Python.
    """
    data = b"\n".join(lines)
    try:
        pa.array([data], pa.binary()).cast(_STR)  # refuses invalid UTF-8
        table = pj.read_json(io.BytesIO(data), read_options=_READ, parse_options=_PARSE)
    except (pa.ArrowException, ValueError):
        return None
    return table if table.num_rows == len(lines) else None


def block_columns(
    table: pa.Table,
    lines: Sequence[bytes],
    scan: Scanner,
    dumps: Dumps,
    epoch_text: Callable[[object], str | None],
) -> tuple[dict[str, pa.Array], list[tuple[int, str]]]:
    """Normalized columns for a block parsed by :func:`read_block`.

    Args:
        table: the parsed block.
        lines: the block's lines (the rows that need Python are parsed again from them).
        scan: copies a jsonPayload's aliased fields into a dict (the normalizer's scan).
        dumps: compact JSON bytes of a payload.
        epoch_text: turns a numeric payload time into RFC 3339 text (None if it cannot).

    Returns:
        The columns of the row tuples (``timestamp`` still as text) keyed like the schema, and
        the bad rows as (index in block, reason).
    """
    n = table.num_rows
    col = {name: table.column(name).combine_chunks() for name in table.column_names}
    labels, http = col["labels"], col["httpRequest"]
    rlabels = pc.struct_field(col["resource"], "labels")

    # Rows that need Python: payloads, and entries whose timestamp is elsewhere or missing.
    special = pc.or_(
        pc.or_(pc.is_valid(col["jsonPayload"]), pc.is_valid(col["protoPayload"])),
        pc.is_null(col["timestamp"]),
    )
    payload: list[Any] = [None] * n
    message: list[Any] = [None] * n
    psev: list[Any] = [None] * n
    ts_fix: list[Any] = [None] * n
    found_cols: dict[str, list[Any]] = {c: [None] * n for c in _FOUND}
    bad: list[tuple[int, str]] = []
    for i in pc.indices_nonzero(special).to_pylist():
        try:
            rec = orjson.loads(lines[i])
        except orjson.JSONDecodeError:
            rec = json.loads(lines[i])
        jp = rec.get("jsonPayload")
        if type(jp) is dict:
            found: dict[str, Any] = {}
            scan(jp, found)
            for key, value in found.items():
                found_cols[key][i] = value
            msg = jp.get("message")
            message[i] = msg if msg is None or type(msg) is str else dumps(msg).decode()
            payload[i] = dumps(jp)
            sev = jp.get("severity")
            if type(sev) is str and sev.upper() in _SEVERITY_SET:
                psev[i] = sev.upper()
            if rec.get("timestamp") is None:
                ts = jp.get("timestamp")
                if ts is None:
                    ts = jp.get("time")
                if ts is not None and type(ts) is not str:
                    ts = epoch_text(ts)
                    if ts is None:
                        bad.append(
                            (i, "field 'timestamp' is not a time, expected an RFC 3339 string")
                        )
                        continue
                ts_fix[i] = ts
        elif type(rec.get("protoPayload")) is dict:
            payload[i] = dumps(rec["protoPayload"])
        if rec.get("timestamp") is None and ts_fix[i] is None:
            bad.append((i, "it has no timestamp (LogEntry.timestamp or the payload's own)"))

    out: dict[str, pa.Array] = {}
    out["timestamp"] = pc.coalesce(col["timestamp"], pa.array(ts_fix, _STR))
    out["receive_timestamp"] = col["receiveTimestamp"]

    kinds, names = log_names(col["logName"])
    out["log_kind"], out["log_name"] = kinds, names
    text = col["textPayload"]
    severity = pc.utf8_upper(col["severity"])
    severity = pc.coalesce(severity, pa.array(psev, _STR))
    out["severity"], out["severity_inferred"] = with_inferred_severity(severity, kinds, text)
    out["service"] = pc.struct_field(rlabels, "service_name")
    out["revision"] = pc.struct_field(rlabels, "revision_name")
    out["location"] = pc.struct_field(rlabels, "location")
    out["instance_id"] = pc.struct_field(labels, "instanceId")
    from_labels = _label_fields(labels)
    found_arrays = {
        key: pc.coalesce(pa.array(values, _STR), from_labels[key])
        for key, values in found_cols.items()
        if key not in ("ws_close_code", "ws_close_reason")
    }
    code = pa.array(found_cols["ws_close_code"], pa.int64())
    from_payload = pc.is_valid(code)
    found_arrays["ws_close_code"] = pc.if_else(from_payload, code, from_labels["ws_close_code"])
    found_arrays["ws_close_reason"] = pc.if_else(
        from_payload, pa.array(found_cols["ws_close_reason"], _STR), from_labels["ws_close_reason"]
    )
    out["trace"] = pc.coalesce(col["trace"], found_arrays.pop("trace"))
    out["span_id"] = col["spanId"]
    out["insert_id"] = col["insertId"]
    out["message"] = pc.coalesce(text, pa.array(message, _STR))
    out["payload"] = pa.array(payload, _STR)
    out["http_method"] = pc.struct_field(http, "requestMethod")
    out["http_url"] = pc.struct_field(http, "requestUrl")
    status = pc.struct_field(http, "status")
    in_range = pc.and_(pc.greater_equal(status, 100), pc.less_equal(status, 999))
    out["http_status"] = pc.if_else(in_range, status, _NULL_INT)
    out["http_latency_s"] = _latency(pc.struct_field(http, "latency"))
    out["http_user_agent"] = pc.struct_field(http, "userAgent")
    out["http_remote_ip"] = pc.struct_field(http, "remoteIp")
    out.update(found_arrays)
    return out, bad


_FOUND: Final = (
    "trace",
    "ws_close_code",
    "ws_close_reason",
    "connection_id",
    "user_id",
    "run_id",
    "thread_id",
)


def log_names(log_name: pa.Array) -> tuple[pa.Array, pa.Array]:
    """log_kind and URL-decoded logName, computed once per distinct logName."""
    encoded = pc.dictionary_encode(log_name)
    distinct = encoded.dictionary.to_pylist()
    kinds = pa.array([log_kind_of(v) for v in distinct], _STR)
    names = pa.array([unquote(v) for v in distinct], _STR)
    indices = encoded.indices
    kind = pc.fill_null(pc.take(kinds, indices), "other")
    return kind, pc.take(names, indices)


def with_inferred_severity(
    severity: pa.Array, kinds: pa.Array, text: pa.Array
) -> tuple[pa.Array, pa.Array]:
    """``severity`` (DEFAULT where none) and ``severity_inferred``.

    A stderr line without a severity gets the one its text suggests (``infer_severity``),
    guessed once per distinct text: they repeat (traceback frames, access logs).
    """
    need = pc.and_(
        pc.and_(pc.is_null(severity), pc.equal(kinds, "stderr")),
        pc.greater(pc.utf8_length(text), 0),
    )
    need = pc.fill_null(need, False)
    if not need.true_count:
        return pc.fill_null(severity, "DEFAULT"), need
    texts = pc.dictionary_encode(pc.filter(text, need))
    distinct = [infer_severity(value) for value in texts.dictionary.to_pylist()]
    guesses = pc.take(pa.array(distinct, severity.type), texts.indices)
    guessed = pc.replace_with_mask(pa.nulls(len(text), severity.type), need, guesses)
    return pc.fill_null(pc.coalesce(severity, guessed), "DEFAULT"), pc.is_valid(guessed)


def _label_fields(labels: pa.Array) -> dict[str, pa.Array]:
    """Aliased fields in the entry's labels (the lowest-priority place), as columns."""
    by_column: dict[str, list[pa.Array]] = {}
    for key, column in FIELD_ALIASES.items():
        by_column.setdefault(column, []).append(pc.struct_field(labels, key))
    result = {column: pc.coalesce(*values) for column, values in by_column.items()}
    codes: pa.Array = pa.nulls(len(labels), pa.int64())
    for values in by_column["ws_close_code"]:
        digits = pc.if_else(pc.utf8_is_digit(pc.utf8_trim_whitespace(values)), values, _NULL_STR)
        number = pc.cast(pc.utf8_trim_whitespace(digits), pa.int64())
        valid = pc.and_(pc.greater_equal(number, 1000), pc.less_equal(number, 4999))
        codes = pc.coalesce(codes, pc.if_else(valid, number, _NULL_INT))
    result["ws_close_code"] = codes
    result["ws_close_reason"] = pc.if_else(pc.is_valid(codes), result["ws_close_reason"], _NULL_STR)
    return result


def _latency(latency: pa.Array) -> pa.Array:
    """Duration strings ("12.5s") -> seconds; anything else null."""
    text = pc.replace_substring_regex(latency, r"s$", "")
    try:
        seconds = pc.cast(text, pa.float64())
    except pa.ArrowInvalid:
        from uvs_analysis.logs.extract import latency_seconds

        return pa.array([latency_seconds(v) for v in latency.to_pylist()], pa.float64())
    valid = pc.and_(pc.is_finite(seconds), pc.greater_equal(seconds, 0))
    return pc.if_else(valid, seconds, pa.scalar(None, pa.float64()))
