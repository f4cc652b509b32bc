"""The normalized log schema: the one place that says what a log row looks like.

Every log source (Cloud Logging, export files, the emulator) ends in a DataFrame with exactly
these columns, in this order, with these dtypes. Timestamps are UTC. Missing values are NA.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import pandas as pd

__all__ = [
    "COLUMNS",
    "LOG_IDS",
    "LOG_KINDS",
    "SEVERITIES",
    "SEVERITY_RANK",
    "BadRecord",
    "LogAggregates",
    "LogLoad",
    "empty_frame",
    "log_kind_of",
]

STR: Final = "string[pyarrow]"
TS: Final = "datetime64[ns, UTC]"

#: name -> (dtype, meaning). Order is the column order of every normalized frame.
COLUMNS: Final = MappingProxyType(
    {
        "timestamp": (TS, "when the event happened (LogEntry.timestamp, else the payload's own)"),
        "receive_timestamp": (TS, "when Cloud Logging received it (receiveTimestamp)"),
        "severity": (STR, "LogSeverity name: DEFAULT, DEBUG, INFO ... ERROR, CRITICAL, EMERGENCY"),
        "severity_inferred": ("bool", "True when severity was inferred from the text (stderr)"),
        "log_kind": (STR, "request, stdout, stderr, system or other (from logName)"),
        "log_name": (STR, "the full logName, URL-decoded"),
        "service": (STR, "resource.labels.service_name"),
        "revision": (STR, "resource.labels.revision_name"),
        "location": (STR, "resource.labels.location"),
        "instance_id": (STR, "labels.instanceId (the Cloud Run instance)"),
        "trace": (STR, "trace id (projects/P/traces/ID), also from the payload's own trace field"),
        "span_id": (STR, "spanId"),
        "insert_id": (STR, "insertId"),
        "message": (STR, "textPayload, or jsonPayload.message"),
        "payload": (STR, "jsonPayload as compact JSON text (NA for text and request entries)"),
        "http_method": (STR, "httpRequest.requestMethod"),
        "http_url": (STR, "httpRequest.requestUrl"),
        "http_path": (STR, "path part of requestUrl"),
        "http_status": ("Int64", "httpRequest.status (101 for a WebSocket session)"),
        "http_latency_s": ("Float64", "httpRequest.latency in seconds (session length for 101)"),
        "http_user_agent": (STR, "httpRequest.userAgent"),
        "http_remote_ip": (STR, "httpRequest.remoteIp"),
        "ws_close_code": ("Int64", "WebSocket close code found in the payload or the message"),
        "ws_close_reason": (STR, "WebSocket close reason found beside the code"),
        "connection_id": (STR, "connection id (payload, labels or context)"),
        "user_id": (STR, "user id (payload, labels or context)"),
        "run_id": (STR, "agent run id"),
        "thread_id": (STR, "chat thread id"),
    }
)

#: Cloud Run log ids (unencoded) and the log_kind each maps to.
LOG_IDS: Final = MappingProxyType(
    {
        "run.googleapis.com/requests": "request",
        "run.googleapis.com/stdout": "stdout",
        "run.googleapis.com/stderr": "stderr",
        "run.googleapis.com/varlog/system": "system",
    }
)
LOG_KINDS: Final = ("request", "stdout", "stderr", "system", "other")

SEVERITIES: Final = (
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
)
#: LogSeverity numbers as Cloud Logging defines them (DEFAULT=0 ... EMERGENCY=800).
SEVERITY_RANK: Final = MappingProxyType(
    {
        "DEFAULT": 0,
        "DEBUG": 100,
        "INFO": 200,
        "NOTICE": 300,
        "WARNING": 400,
        "ERROR": 500,
        "CRITICAL": 600,
        "ALERT": 700,
        "EMERGENCY": 800,
    }
)


def log_kind_of(log_name: str | None) -> str:
    """Map a logName (URL-encoded or not) to its log_kind."""
    if not log_name:
        return "other"
    log_id = log_name.rsplit("/logs/", 1)[-1].replace("%2F", "/").replace("%2f", "/")
    return LOG_IDS.get(log_id, "other")


def empty_frame() -> pd.DataFrame:
    """A frame with the normalized columns and dtypes and no rows."""
    return pd.DataFrame({name: pd.Series([], dtype=dtype) for name, (dtype, _) in COLUMNS.items()})


@dataclass(frozen=True)
class BadRecord:
    """A record that was skipped, and why.

    Attributes:
        source: the file (or source URL) it came from.
        line: 1-based line number in the file (for a JSON array: the element's index, 1-based).
        reason: what was wrong and what was expected.
    """

    source: str
    line: int
    reason: str


@dataclass(frozen=True, eq=False)
class LogAggregates:
    """Analysis results computed where the logs live (a load pushed down to BigQuery).

    The analysis functions (``summarize_logs``, ``error_signatures``, ``websocket_sessions``,
    ``severity_over_time``, ``close_code_counts``, ``revision_timeline``, ``deploys``,
    ``instance_events``, ``error_waves``) read these instead of the frame when they are given
    a LogLoad that has them; the frame then holds only the rows near failures.

    Attributes:
        entries: entries matching the query, after deduplication (not only those fetched).
        first, last: the earliest and latest entry's timestamp (None without entries).
        severity_counts, log_kinds: entries per severity and per log kind.
        close_codes: entries per WebSocket close code.
        signatures: ``signatures.SIGNATURE_COLUMNS``, most frequent first.
        error_counts: error events per (time bin of ``bin_s`` seconds from the first entry's
            whole second, revision, template): timestamp (the bin's start), revision,
            template, count.
        severity_bins: entries per (time bin of ``bin_s`` seconds, severity): time, severity,
            count.
        bin_s: the bin width of ``severity_bins``.
        revisions: ``timeline.REVISION_COLUMNS`` without ``errors``.
        revision_firsts: first entry per (service, revision): service, revision, first_seen.
        instance_found: ``timeline.INSTANCE_EVENT_COLUMNS`` found in log texts.
        instance_bounds: per instance: instance_id, first_time, first_revision, last_time,
            last_revision.
        sessions: ``sessions.SESSION_COLUMNS`` of the fetched WebSocket sessions.
        session_counts: per revision: revision, count, at_timeout, unknown_duration, max_s,
            and the overall p50_s, p95_s.
        sessions_total: WebSocket sessions in the query (``len(sessions)`` may be capped).
        request_timeout_s, tolerance_s: what ``at_timeout`` was computed for.
        min_severity, gap_s, max_examples: the error-event settings of signatures.
        rows_near_failures: rows near failures (fetched or not).
    """

    entries: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    severity_counts: Mapping[str, int]
    log_kinds: Mapping[str, int]
    close_codes: Mapping[int, int]
    signatures: pd.DataFrame
    error_counts: pd.DataFrame
    severity_bins: pd.DataFrame
    bin_s: int
    revisions: pd.DataFrame
    revision_firsts: pd.DataFrame
    instance_found: pd.DataFrame
    instance_bounds: pd.DataFrame
    sessions: pd.DataFrame
    session_counts: pd.DataFrame
    sessions_total: int
    request_timeout_s: float
    tolerance_s: float
    min_severity: str
    gap_s: float
    max_examples: int
    rows_near_failures: int


@dataclass(frozen=True)
class LogLoad:
    """Entries loaded from one source, normalized, with full accounting.

    ``read == len(frame) + len(bad_records) + duplicates + filtered_out`` always holds for a
    load whose frame holds every entry. A load pushed down to BigQuery carries ``aggregates``
    and its frame holds only the rows near failures: there ``read`` counts the entries the
    query matched (duplicates included), ``filtered_out`` is 0 (the server does not count rows
    outside the query) and ``read == aggregates.entries + duplicates``, with
    ``aggregates.entries - len(frame)`` entries not fetched.
    """

    frame: pd.DataFrame
    source: str
    read: int = 0
    bad_records: tuple[BadRecord, ...] = ()
    bad_total: int = 0
    duplicates: int = 0
    filtered_out: int = 0
    meta: dict[str, object] = field(default_factory=dict)
    aggregates: LogAggregates | None = None
