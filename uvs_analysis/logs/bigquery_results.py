"""Query results of a pushed-down load -> LogEntry dicts and :class:`LogAggregates`.

Pure: Arrow tables in, typed frames out. Fetched rows are rebuilt into the camelCase LogEntry
dicts the other sources read, so the frame goes through the same normalizer (``COLUMN_MAP``
says where each ``_AllLogs`` column goes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson
import pandas as pd
import pyarrow as pa

from uvs_analysis.logs.bigquery_queries import PushdownSettings
from uvs_analysis.logs.schema import COLUMNS, SEVERITY_RANK, LogAggregates
from uvs_analysis.logs.sessions import SESSION_COLUMNS
from uvs_analysis.logs.signatures import SIGNATURE_COLUMNS
from uvs_analysis.logs.timeline import INSTANCE_EVENT_COLUMNS, REVISION_COLUMNS

__all__ = ["COLUMN_MAP", "aggregates_of", "entry_of", "mapping_markdown"]

_TS: Final = COLUMNS["timestamp"][0]
_STR: Final = "string[pyarrow]"
_SEVERITY_NAME: Final = {rank: name for name, rank in SEVERITY_RANK.items()}

#: ``_AllLogs`` column -> (LogEntry field it is rebuilt into, normalized columns it feeds).
COLUMN_MAP: Final = (
    ("timestamp", "timestamp", "timestamp"),
    ("receive_timestamp", "receiveTimestamp", "receive_timestamp"),
    ("log_name", "logName", "log_name (URL-decoded), log_kind"),
    ("log_id", "-", "log_kind (in SQL: run.googleapis.com/requests -> request ...)"),
    ("severity", "severity", "severity (NULL: jsonPayload.severity, else inferred for stderr "
     "text, else DEFAULT), severity_inferred"),
    ("resource.type", "resource.type", "- (SQL keeps cloud_run_revision only)"),
    ("resource.labels", "resource.labels", "service (service_name), revision (revision_name), "
     "location (location)"),
    ("labels", "labels", "instance_id (instanceId); id aliases and close codes (lowest "
     "priority)"),
    ("json_payload", "jsonPayload", "message (message), payload (JSON text), trace, "
     "ws_close_code/reason, connection_id, user_id, run_id, thread_id (extract.FIELD_ALIASES)"),
    ("text_payload", "textPayload", "message; close code/reason found in the text"),
    ("proto_payload", "protoPayload", "payload (when there is no jsonPayload)"),
    ("http_request.request_method", "httpRequest.requestMethod", "http_method"),
    ("http_request.request_url", "httpRequest.requestUrl", "http_url, http_path"),
    ("http_request.status", "httpRequest.status", "http_status (100-999)"),
    ("http_request.latency.seconds/.nanos", "httpRequest.latency", "http_latency_s"),
    ("http_request.user_agent", "httpRequest.userAgent", "http_user_agent"),
    ("http_request.remote_ip", "httpRequest.remoteIp", "http_remote_ip"),
    ("http_request.request_size, response_size, server_ip, referer, protocol",
     "httpRequest.*", "- (kept in the rebuilt entry only)"),
    ("trace", "trace", "trace (else the payload's trace alias)"),
    ("span_id", "spanId", "span_id"),
    ("trace_sampled", "traceSampled", "-"),
    ("insert_id", "insertId", "insert_id; with timestamp and log_name the deduplication key"),
)


def mapping_markdown() -> str:
    """``COLUMN_MAP`` as a Markdown table."""
    lines = ["| `_AllLogs` column | LogEntry field | normalized column(s) |", "|---|---|---|"]
    lines += [f"| `{a}` | `{b}` | {c} |" for a, b, c in COLUMN_MAP]
    return "\n".join(lines)


def _json(text: object) -> Any:
    if text is None:
        return None
    value = orjson.loads(str(text))
    return value


def _without_nulls(value: Any) -> Any:
    """``value`` without the null members of its objects (at any depth)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def entry_of(row: Mapping[str, Any], *, strip_nulls: bool = False) -> dict[str, Any]:
    """A LogEntry dict (API JSON, camelCase) from a fetched row (``RAW_COLUMNS``).

    ``strip_nulls`` drops null members of the payload and labels: a log sink's RECORD columns
    hold every field its schema has, NULL where an entry had none.
    """
    entry: dict[str, Any] = {}
    parse = (lambda text: _without_nulls(_json(text))) if strip_nulls else _json

    def put(key: str, value: object) -> None:
        if value is not None:
            entry[key] = value

    put("timestamp", _rfc3339(row["timestamp"]))
    put("receiveTimestamp", _rfc3339(row["receive_timestamp"]))
    put("logName", row["log_name"])
    put("insertId", row["insert_id"])
    put("spanId", row["span_id"])
    put("trace", row["entry_trace"])
    put("traceSampled", row["trace_sampled"])
    put("severity", row["entry_severity"])
    if row["resource_type"] is not None or row["resource_labels"] is not None:
        resource: dict[str, Any] = {}
        if row["resource_type"] is not None:
            resource["type"] = row["resource_type"]
        labels = parse(row["resource_labels"])
        if labels is not None:
            resource["labels"] = labels
        entry["resource"] = resource
    put("labels", parse(row["entry_labels"]))
    put("jsonPayload", parse(row["payload"]))
    put("textPayload", row["text_payload"])
    put("protoPayload", _json(row["proto_payload"]))
    if row["has_http"]:
        http: dict[str, Any] = {}
        for key, column in (
            ("requestMethod", "http_method"),
            ("requestUrl", "http_url"),
            ("status", "entry_status"),
            ("requestSize", "request_size"),
            ("responseSize", "response_size"),
            ("userAgent", "http_user_agent"),
            ("remoteIp", "http_remote_ip"),
            ("serverIp", "server_ip"),
            ("referer", "referer"),
            ("protocol", "protocol"),
        ):
            if row[column] is not None:
                http[key] = row[column]
        if row["latency_seconds"] is not None or row["latency_nanos"] is not None:
            http["latency"] = {
                "seconds": int(row["latency_seconds"] or 0),
                "nanos": int(row["latency_nanos"] or 0),
            }
        entry["httpRequest"] = http
    return entry


def _rfc3339(value: object) -> str | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)  # type: ignore[arg-type]
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat()


def _frame(table: pa.Table) -> pd.DataFrame:
    columns = {}
    for name in table.column_names:
        column = table[name]
        if pa.types.is_timestamp(column.type):
            stamps = pd.to_datetime(pd.Series(column.to_pylist(), dtype="object"), utc=True)
            columns[name] = stamps.astype(_TS)  # type: ignore[call-overload]
        else:
            columns[name] = pd.Series(column.to_pylist(), dtype="object")
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))


def _int(value: object) -> int:
    return 0 if value is None else int(value)  # type: ignore[call-overload]


def aggregates_of(
    tables: Mapping[str, pa.Table], settings: PushdownSettings, *, rows_near_failures: int
) -> LogAggregates:
    """The :class:`LogAggregates` of the results of ``aggregate_queries``."""
    counts = _frame(tables["counts"])
    entries_row = counts.loc[counts["dim"] == "entries"].iloc[0]
    entries = _int(entries_row["n"])

    def dim(name: str) -> dict[str, int]:
        part = counts.loc[counts["dim"] == name]
        pairs = sorted(
            ((str(k), _int(n)) for k, n in zip(part["key"], part["n"], strict=True)),
            key=lambda kv: (-kv[1], kv[0]),
        )
        return dict(pairs)

    codes = dim("close_code")
    close_codes = dict(
        sorted(((int(k), n) for k, n in codes.items()), key=lambda kv: (-kv[1], kv[0]))
    )
    first = entries_row["first"] if entries else None
    last = entries_row["last"] if entries else None

    sig = _frame(tables["signatures"])
    sig["severity"] = sig["severity_rank"].map(lambda r: _SEVERITY_NAME.get(_int(r), "DEFAULT"))
    sig["revisions"] = sig["revisions"].fillna("")
    sig["insert_ids"] = sig["insert_ids"].fillna("")
    sig = sig.sort_values(
        ["count", "first_seen", "template"], ascending=[False, True, True], kind="stable"
    ).reset_index(drop=True)
    sig = sig.loc[:, list(SIGNATURE_COLUMNS)].astype(
        {
            "template": _STR, "count": "int64", "first_seen": _TS, "last_seen": _TS,
            "revisions": _STR, "instances": "int64", "severity": _STR, "example": _STR,
            "insert_ids": _STR,
        }
    )

    errors = _frame(tables["error_counts"]).rename(columns={"n": "count"})
    errors = errors.astype({"revision": _STR, "template": _STR, "count": "int64"})
    bins = _frame(tables["severity_bins"]).rename(columns={"n": "count"})
    bins = bins.astype({"severity": _STR, "count": "int64"})

    revisions = _frame(tables["revisions"])
    revisions = revisions.astype(
        {k: v for k, v in REVISION_COLUMNS.items() if k != "errors"}
    ).loc[:, [c for c in REVISION_COLUMNS if c != "errors"]]
    firsts = _frame(tables["revision_firsts"]).astype({"service": _STR, "revision": _STR})
    found = _frame(tables["instance_found"]).astype(INSTANCE_EVENT_COLUMNS)
    bounds = _frame(tables["instance_bounds"]).astype(
        {"instance_id": _STR, "first_revision": _STR, "last_revision": _STR}
    )
    session_rows = _frame(tables["session_rows"])
    total = _int(session_rows["total"].iloc[0]) if len(session_rows) else 0
    duration = session_rows["duration_s"].astype("Float64")
    sessions = pd.DataFrame(
        {
            "start": session_rows["start"],
            "end": session_rows["start"] + pd.to_timedelta(duration.astype("float64"), unit="s"),
            "duration_s": duration,
            "at_timeout": (
                (duration - settings.request_timeout_s).abs() <= settings.tolerance_s
            ).fillna(False),
            **{c: session_rows[c] for c in list(SESSION_COLUMNS)[4:]},
        }
    ).astype(SESSION_COLUMNS)
    session_counts = _frame(tables["sessions"]).rename(columns={"n": "count"})
    session_counts = session_counts.astype(
        {"revision": _STR, "count": "int64", "at_timeout": "int64", "unknown_duration": "int64",
         "max_s": "Float64", "p50_s": "Float64", "p95_s": "Float64"}
    )
    return LogAggregates(
        entries=entries,
        first=None if first is None or pd.isna(first) else pd.Timestamp(first),
        last=None if last is None or pd.isna(last) else pd.Timestamp(last),
        severity_counts=dim("severity"),
        log_kinds=dim("log_kind"),
        close_codes=close_codes,
        signatures=sig,
        error_counts=errors,
        severity_bins=bins,
        bin_s=settings.bin_s,
        revisions=revisions,
        revision_firsts=firsts,
        instance_found=found,
        instance_bounds=bounds,
        sessions=sessions,
        session_counts=session_counts,
        sessions_total=total,
        request_timeout_s=settings.request_timeout_s,
        tolerance_s=settings.tolerance_s,
        min_severity=settings.min_severity,
        gap_s=settings.gap_s,
        max_examples=settings.max_examples,
        rows_near_failures=rows_near_failures,
    )
