"""The LogEntry writer: capture rules, redaction, request logs, text and system entries."""

from __future__ import annotations

import base64
import io
import json
import logging
from typing import Any
from urllib.parse import quote

from uvs_analysis.testbed.cloudrun_logs import (
    CloudRunTextHandler,
    Instance,
    LogEntryWriter,
    capture_json_line,
    redact,
)

TOKEN = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjE3NjAwMDAwMDB9."
         "c2lnbmF0dXJlLXBhcnQtb2YtdGhlLXRva2Vu")


def _writer() -> tuple[LogEntryWriter, io.StringIO]:
    stream = io.StringIO()
    clock = iter(1_760_000_000.0 + i for i in range(1000))
    writer = LogEntryWriter(stream, project="p1", service="svc", location="us-central1",
                            default=Instance.create("svc-00001-abc", seed=1),
                            clock=lambda: next(clock), seed=1)
    return writer, stream


def _entries(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_special_fields_move_onto_the_entry() -> None:
    """severity and logging.googleapis.com/* leave the payload; plain trace/labels stay."""
    payload, fields = capture_json_line({
        "severity": "ERROR", "message": "m", "trace": "t", "labels": {"a": "b"},
        "logging.googleapis.com/trace": "projects/p/traces/x",
        "logging.googleapis.com/labels": {"k": "v"}})
    assert payload == {"message": "m", "trace": "t", "labels": {"a": "b"}}
    assert fields == {"severity": "ERROR", "trace": "projects/p/traces/x", "labels": {"k": "v"}}


def test_redact_removes_tokens_in_every_form() -> None:
    """Known secrets and JWT-like text are scrubbed, raw, base64url, URL- or JSON-encoded."""
    b64 = base64.urlsafe_b64encode(TOKEN.encode()).decode()
    text = (f"GET /ws?token={TOKEN}&x=1 Authorization: Bearer {TOKEN} sub jwt-auth.{b64} "
            f"{quote(TOKEN, safe='')} {json.dumps(TOKEN)} ticket_id=tkt_123")
    clean = redact(text)
    for form in (TOKEN, b64, b64.rstrip("="), "tkt_123", TOKEN.split(".")[2]):
        assert form not in clean
    assert "x=1" in clean and "[REDACTED]" in clean
    assert redact("plain text, nothing secret") == "plain text, nothing secret"


def test_writer_entries_have_the_cloud_run_shape() -> None:
    """Each line is a LogEntry with resource labels, instanceId, RFC 3339 Z and unique ids."""
    writer, stream = _writer()
    writer.add_secret("opaque-credential-value")
    writer.stdout_json({"severity": "WARNING", "message": "saw opaque-credential-value"})
    writer.text("run.googleapis.com/stderr", "Traceback (most recent call last):\n  line\n\n")
    writer.system("Container called exit(0).", severity="WARNING")
    entries = _entries(stream)
    assert [e["logName"] for e in entries] == [
        "projects/p1/logs/run.googleapis.com%2Fstdout",
        "projects/p1/logs/run.googleapis.com%2Fstderr",
        "projects/p1/logs/run.googleapis.com%2Fstderr",
        "projects/p1/logs/run.googleapis.com%2Fvarlog%2Fsystem"]
    assert len({e["insertId"] for e in entries}) == 4 == writer.entries_written
    assert entries[0]["jsonPayload"] == {"message": "saw [REDACTED]"}
    assert "severity" not in entries[1] and entries[2]["textPayload"] == "  line"
    assert entries[3]["labels"]["container_name"] == "svc-1"
    for entry in entries:
        assert entry["resource"]["labels"]["revision_name"] == "svc-00001-abc"
        assert str(entry["timestamp"]).endswith("Z")


def test_request_entry_is_stamped_at_start_with_latency() -> None:
    """The request log's timestamp is the start; latency is the duration; 5xx is ERROR."""
    writer, stream = _writer()
    writer.request(method="GET", url="https://x/ws?token=abc", status=101, start=1_760_000_000.0,
                   end=1_760_000_012.5, user_agent="ua", remote_ip="127.0.0.1", request_size=10,
                   response_size=20, trace_id="a" * 32, span_id="1")
    writer.request(method="GET", url="https://x/ws", status=503, start=1_760_000_000.0,
                   end=1_760_000_000.1, user_agent=None, remote_ip=None, request_size=1,
                   response_size=1, trace_id="b" * 32, span_id="2")
    ok, refused = _entries(stream)
    assert ok["timestamp"] == "2025-10-09T08:53:20.000000Z"
    assert ok["httpRequest"]["latency"] == "12.500000000s"
    assert ok["httpRequest"]["requestUrl"] == "https://x/ws?token=[REDACTED]"
    assert ok["trace"] == "projects/p1/traces/" + "a" * 32 and ok["severity"] == "INFO"
    assert refused["severity"] == "ERROR"


def test_text_handler_routes_uvicorn_and_tracebacks() -> None:
    """uvicorn's access log goes to stdout; errors and traceback lines to stderr, one each."""
    writer, stream = _writer()
    handler = CloudRunTextHandler(writer)
    access = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "GET /health 200",
                               None, None)
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        error = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1,
                                  "Exception in ASGI application", None, sys.exc_info())
    handler.emit(access)
    handler.emit(error)
    entries = _entries(stream)
    assert entries[0]["logName"].endswith("%2Fstdout")
    assert entries[0]["textPayload"] == "INFO:     GET /health 200"
    stderr = [e["textPayload"] for e in entries[1:]]
    assert stderr[0] == "ERROR:    Exception in ASGI application"
    assert stderr[-1] == "ValueError: boom" and len(stderr) > 3
