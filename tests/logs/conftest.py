"""Hand-written Cloud Run LogEntry fixtures shared by the normalizer and file-reader tests."""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

PROJECT = "netra-staging"
LOG = f"projects/{PROJECT}/logs/run.googleapis.com%2F"
INSTANCE = "0069c7a98812e4f0b8d4b2c6a7e1f39d0c5b6a2e8f1d7c3b9a0e4f6d2c8b1a7e"
RESOURCE = {
    "type": "cloud_run_revision",
    "labels": {
        "configuration_name": "netra-backend-staging",
        "location": "us-central1",
        "project_id": PROJECT,
        "revision_name": "netra-backend-staging-00740-47l",
        "service_name": "netra-backend-staging",
    },
}
TRACE = f"projects/{PROJECT}/traces/4bf92f3577b34da6a3ce929d0e0e4736"


def _entries() -> list[dict[str, Any]]:
    return [
        {  # request log of a WebSocket session that ended at the request timeout
            "httpRequest": {
                "requestMethod": "GET",
                "requestUrl": "https://api.staging.netrasystems.ai/ws?ticket=abc",
                "requestSize": "612",
                "status": 101,
                "userAgent": "Mozilla/5.0",
                "remoteIp": "203.0.113.24",
                "latency": "3599.871254s",
                "protocol": "HTTP/1.1",
            },
            "insertId": "req-1",
            "labels": {"instanceId": INSTANCE},
            "logName": LOG + "requests",
            "receiveTimestamp": "2025-09-15T02:01:05.912345678Z",
            "resource": RESOURCE,
            "severity": "INFO",
            "spanId": "5f2c8e1d9a3b7c40",
            "timestamp": "2025-09-15T01:01:05.871522Z",
            "trace": TRACE,
        },
        {  # structured app log with the close code in the payload, ids in merged labels
            "insertId": "app-1",
            "jsonPayload": {
                "message": "websocket closed: keepalive ping timeout",
                "close_code": 1011,
                "close_reason": "keepalive ping timeout",
                "run_id": "run-7",
            },
            "labels": {"conn_id": "c-8f14e45f", "instanceId": INSTANCE},
            "logName": LOG + "stdout",
            "receiveTimestamp": "2025-09-15T01:42:17.402118364Z",
            "resource": RESOURCE,
            "severity": "ERROR",
            "timestamp": "2025-09-15T01:42:17.118Z",
            "trace": TRACE,
        },
        {  # plain stderr line: no severity key, a close code in the text
            "insertId": "err-1",
            "labels": {"instanceId": INSTANCE},
            "logName": LOG + "stderr",
            "receiveTimestamp": "2025-09-15T01:42:17.455901227Z",
            "resource": RESOURCE,
            "textPayload": "websockets.exceptions.ConnectionClosedError: received 1011 "
            "(internal error) keepalive ping timeout; then sent 1011 (internal error) "
            "keepalive ping timeout",
            "timestamp": "2025-09-15T01:42:17.120834Z",
        },
        {  # the backend's gcp_json_formatter: own timestamp (+00:00), labels/context
            "insertId": "gcp-1",
            "jsonPayload": {
                "context": {
                    "name": "netra_backend.app.websocket_core.gcp_initialization_validator",
                    "service": "netra-service",
                    "connection_id": "main_5b14bc0d",
                },
                "labels": {
                    "function": "validate_gcp_readiness_for_websocket",
                    "line": "897",
                    "module": "netra_backend.app.websocket_core.gcp_initialization_validator",
                    "user_id": "demo-user-001",
                },
                "message": "[🔴] RACE CONDITION DETECTED: Startup phase 'no_app_state' did not "
                'reach \'services\' within 2.1s\nSEARCH:  CONTEXT: {\n  "thread_id": "t-1"\n}',
                "timestamp": "2025-09-15T03:50:26.680191+02:00",
            },
            "logName": LOG + "stdout",
            "resource": RESOURCE,
            "severity": "ERROR",
        },
        {  # the unified loguru formatter: trace_id, error block, Z timestamp in the payload
            "insertId": "uni-1",
            "jsonPayload": {
                "timestamp": "2025-09-15T01:50:27.000001Z",
                "severity": "CRITICAL",
                "service": "netra-backend",
                "logger": "netra_backend.app.routes.websocket_ssot",
                "message": "ALERT:  GOLDEN PATH AUTH FAILURE: WebSocket authentication failed",
                "request_id": "req-42",
                "user_id": "user-9",
                "trace_id": "0af7651916cd43dd8448eb211c80319c",
                "thread_id": "thread-3",
                "error": {"type": "RuntimeError", "message": "boom", "traceback": "..."},
            },
            "logName": LOG + "stdout",
            "resource": RESOURCE,
        },
        {  # system log
            "insertId": "sys-1",
            "labels": {"container_name": "netra-backend-1", "instanceId": INSTANCE},
            "logName": LOG + "varlog%2Fsystem",
            "receiveTimestamp": "2025-09-15T02:30:10.201992106Z",
            "resource": RESOURCE,
            "severity": "WARNING",
            "textPayload": "Container called exit(1).",
            "timestamp": "2025-09-15T02:30:10.053646Z",
        },
        {  # a Python traceback line on stderr
            "insertId": "err-2",
            "labels": {"instanceId": INSTANCE},
            "logName": LOG + "stderr",
            "resource": RESOURCE,
            "textPayload": "Traceback (most recent call last):",
            "timestamp": "2025-09-15T01:42:17.121Z",
        },
    ]


@pytest.fixture
def cloud_run_entries() -> list[dict[str, Any]]:
    """A fresh copy of the hand-written entries (one of each shape)."""
    return copy.deepcopy(_entries())


def write_export(path: Path, entries: list[Any], fmt: str, *, gz: bool = False) -> Path:
    """Write ``entries`` as NDJSON (``ndjson``), a gcloud-style indented array (``json``) or a
    compact array (``compact``), optionally gzipped."""
    if fmt == "ndjson":
        text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
    elif fmt == "json":
        text = json.dumps(entries, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    else:
        text = json.dumps(entries, separators=(",", ":"), ensure_ascii=False)
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture
def export_writer(tmp_path: Path) -> Callable[..., Path]:
    """``export_writer(name, entries, fmt, gz=False)`` writes an export under tmp_path."""

    def write(name: str, entries: list[Any], fmt: str, *, gz: bool = False) -> Path:
        return write_export(tmp_path / name, entries, fmt, gz=gz)

    return write
