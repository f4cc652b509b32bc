"""The normalized log schema: the one place that says what a log row looks like.

Every log source (Cloud Logging, export files, the emulator) ends in a DataFrame with exactly
these columns, in this order, with these dtypes. Timestamps are UTC. Missing values are NA.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class LogLoad:
    """Entries loaded from one source, normalized, with full accounting.

    ``read == len(frame) + len(bad_records) + duplicates + filtered_out`` always holds.
    """

    frame: pd.DataFrame
    source: str
    read: int = 0
    bad_records: tuple[BadRecord, ...] = ()
    bad_total: int = 0
    duplicates: int = 0
    filtered_out: int = 0
    meta: dict[str, object] = field(default_factory=dict)
