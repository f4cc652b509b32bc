"""Application log lines in the backend's two formatters and two wordings."""

from __future__ import annotations

import io
import json

import pytest

from uvs_analysis.testbed.applog import MESSAGES, AppLogger, LogContext
from uvs_analysis.testbed.cloudrun_logs import Instance, LogEntryWriter

CTX = LogContext(connection_id="main_1234abcd", user_id="demo-user-001", run_id="run_1",
                 thread_id="th_1", trace_id="c" * 32, request_id="req_1")
VALUES = {"phase": "no_app_state", "waited": 2.1, "state": "unknown", "failed": ["a"],
          "path": "/ws", "status": 503, "ready": 1, "total": 2, "host": "10.0.0.1",
          "code": 1011, "header": "MISSING", "subprotocol": "NONE", "query_keys": [],
          "kind": "K", "detail": "d", "method": "m", "offered": [], "elapsed": 1.0,
          "reason": "", "workflow": "a -> b", "agent": "triage", "report_type": "partial",
          "order": "a -> b", "event": "tool_completed", "key": "th_1", "component": "Database",
          "error": "e", "count": 0}


def _logger(fmt: str, wording: str) -> tuple[AppLogger, io.StringIO]:
    stream = io.StringIO()
    writer = LogEntryWriter(stream, project="p", service="s", location="l",
                            default=Instance.create("s-00001-abc", seed=0), clock=lambda: 1e9)
    return AppLogger(writer, log_format=fmt, wording=wording), stream


@pytest.mark.parametrize("key", sorted(MESSAGES))
def test_every_message_renders_in_both_wordings_differently(key: str) -> None:
    """Each message key renders in both wordings, and the two texts differ."""
    default, _ = _logger("gcp", "default")
    alt, _ = _logger("gcp", "alt")
    known = {"conn": CTX.connection_id, "user8": "demo-use", "run_id": "run_1", "thread_id": "t"}
    a, b = default.render(key, **known, **VALUES), alt.render(key, **known, **VALUES)
    assert a and b and a != b


def test_gcp_format_keeps_labels_and_trace_in_the_payload() -> None:
    """gcp_json_formatter: labels/context/trace stay in jsonPayload; severity moves out."""
    logger, stream = _logger("gcp", "default")
    logger.log("auth_failed", "CRITICAL", CTX, kind="JWT_VALIDATION", detail="bad", method="m")
    entry = json.loads(stream.getvalue())
    payload = entry["jsonPayload"]
    assert entry["severity"] == "CRITICAL" and "severity" not in payload
    assert payload["labels"]["user_id"] == "demo-user-001"
    assert payload["context"]["connection_id"] == "main_1234abcd"
    assert payload["trace"] == "projects/p/traces/" + "c" * 32
    assert payload["timestamp"].endswith("+00:00")


def test_unified_format_has_the_loguru_keys_and_error_block() -> None:
    """The unified formatter: service, logger, trace_id, textPayload copy, error block."""
    logger, stream = _logger("unified", "alt")
    logger.log("run_failed", "ERROR", CTX, exc=RuntimeError("pool exhausted"), error="x")
    payload = json.loads(stream.getvalue())["jsonPayload"]
    assert payload["service"] == "netra-backend" and payload["trace_id"] == "c" * 32
    assert payload["textPayload"] == payload["message"]
    assert payload["error"]["type"] == "RuntimeError" and payload["run_id"] == "run_1"
