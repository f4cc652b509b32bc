"""Typed records of what a replay observed: one AttemptTrace per connection try, with its frames.

Every value here is already redacted: no record carries a credential. Times are both wall-clock
(UTC, for joining with server logs by time window) and offsets in milliseconds from the start
of the try (for latencies).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

__all__ = [
    "AttemptTrace",
    "Clock",
    "CloseInfo",
    "FrameRecord",
    "ProbeRecord",
    "trace_from_dict",
    "trace_to_dict",
]

#: A wall clock returning an aware UTC datetime; passed in, never read deep inside.
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class CloseInfo:
    """A Close frame's status code and reason."""

    code: int
    reason: str


@dataclass(frozen=True)
class FrameRecord:
    """One data message received or sent.

    Attributes:
        index: 0-based position among the try's recorded messages (both directions).
        direction: "recv" or "sent".
        t_ms: milliseconds since the try started.
        opcode: "text" or "binary".
        size: payload size in bytes.
        text: the payload (binary decoded as UTF-8 with replacement), redacted, cut to the
            spec's ``max_text_chars``.
        truncated: True when ``text`` was cut.
        event_type: the message's ``type`` field, if it is a JSON object with one.
        agent_name, tool_name, run_id, user_id, thread_id: fields found at the top level or in
            ``data``/``payload`` (any of the backend's three event shapes).
        shape: "bridge", "flat", "validator", "message" or "" (see ``events.parse_event``).
        has_result: the event carries a non-empty result/report/final_response.
    """

    index: int
    direction: str
    t_ms: float
    opcode: str
    size: int
    text: str
    truncated: bool = False
    event_type: str | None = None
    agent_name: str | None = None
    tool_name: str | None = None
    run_id: str | None = None
    user_id: str | None = None
    thread_id: str | None = None
    shape: str = ""
    has_result: bool = False


@dataclass(frozen=True)
class ProbeRecord:
    """One HTTP health/readiness probe.

    Attributes:
        url: the probed URL (redacted).
        phase: "before", "during" or "after" the attempts.
        started_at: wall-clock start (UTC).
        elapsed_ms: time to the answer or the error.
        status: HTTP status, None when no answer.
        error_type: exception class name when no answer.
        retry_after: the Retry-After header, if any.
        body: the body, redacted and cut to 2,000 characters.
    """

    url: str
    phase: str
    started_at: datetime
    elapsed_ms: float
    status: int | None
    error_type: str | None = None
    retry_after: str | None = None
    body: str = ""


@dataclass(frozen=True)
class AttemptTrace:
    """Everything observed during one connection try.

    Attempt ``attempt`` may take several tries (``try_index`` 0, 1, ...) under the retry policy.

    Attributes:
        attempt, try_index, user: which logical attempt, which try of it, which simulated user.
        thread_id: the thread id this try asked for (from the spec's template).
        url: the WebSocket URL (redacted).
        started_at, ended_at: wall-clock bounds (UTC) of the try.
        subprotocols_offered: the offered subprotocols (redacted).
        request_headers: extra request headers sent (redacted).
        failed_phase: where an opening failure happened: "ticket", "dns", "tcp", "tls", "http",
            or None when the handshake completed.
        dns_ms, tcp_ms, tls_ms, http_ms: durations of each opening phase (None if not reached).
        handshake_ms: from the start of DNS to the handshake response.
        first_frame_ms, close_ms, duration_ms: offsets of the first received message, of the
            close, and the try's total length.
        http_status, http_reason, response_headers, response_body, retry_after: the handshake
            response (any status), redacted.
        subprotocol: the negotiated subprotocol (redacted), extensions: negotiated extensions.
        frames: recorded messages in order; frames_total counts every message even if the
            record was capped (frames_dropped = frames_total - len(frames)).
        messages_sent: data messages sent by the client.
        agent_events: received messages that are one of the agent events.
        close_rcvd, close_sent: the Close frames received and sent (None if none).
        rcvd_then_sent: True if the server closed first, False if the client did, None if not
            both frames exist.
        close_code: what the library reports (1006 when no Close frame was received).
        closed_by: "server", "client" or "transport" (no Close frame either way).
        close_payload_hex: raw payload of the last Close frame received, hex (kept even when
            the library rejected the frame).
        completed: the client ended the session on its own terms (stop rule met, or the hold
            of a handshake-only spec elapsed).
        timed_out: the run deadline passed with the connection still open.
        exception_type: qualified class name of the exception that ended the try, if any.
        exception_mro: class names of that exception's MRO (for pure classification).
        exception_message: its message (redacted).
        exception_cause: class name and message (redacted) of its ``__cause__``.
        ticket_ms: duration of the ticket step, if any.
    """

    attempt: int
    try_index: int
    user: int
    thread_id: str
    url: str
    started_at: datetime
    ended_at: datetime
    subprotocols_offered: tuple[str, ...] = ()
    request_headers: tuple[tuple[str, str], ...] = ()
    failed_phase: str | None = None
    dns_ms: float | None = None
    tcp_ms: float | None = None
    tls_ms: float | None = None
    http_ms: float | None = None
    handshake_ms: float | None = None
    first_frame_ms: float | None = None
    close_ms: float | None = None
    duration_ms: float = 0.0
    http_status: int | None = None
    http_reason: str | None = None
    response_headers: tuple[tuple[str, str], ...] = ()
    response_body: str = ""
    retry_after: str | None = None
    subprotocol: str | None = None
    extensions: tuple[str, ...] = ()
    frames: tuple[FrameRecord, ...] = ()
    frames_total: int = 0
    messages_sent: int = 0
    agent_events: int = 0
    close_rcvd: CloseInfo | None = None
    close_sent: CloseInfo | None = None
    rcvd_then_sent: bool | None = None
    close_code: int | None = None
    closed_by: str | None = None
    close_payload_hex: str | None = None
    completed: bool = False
    timed_out: bool = False
    exception_type: str | None = None
    exception_mro: tuple[str, ...] = ()
    exception_message: str | None = None
    exception_cause: str | None = None
    ticket_ms: float | None = None

    @property
    def opened(self) -> bool:
        """Whether the WebSocket handshake completed (HTTP 101)."""
        return self.http_status == 101 and self.failed_phase is None

    @property
    def frames_dropped(self) -> int:
        """Messages counted but not kept (the record cap)."""
        return self.frames_total - len(self.frames)


def trace_to_dict(trace: AttemptTrace) -> dict[str, Any]:
    """A JSON-ready dict of a trace (times as ISO 8601), e.g. to save recorded traces."""
    data = asdict(trace)
    data["started_at"] = trace.started_at.isoformat()
    data["ended_at"] = trace.ended_at.isoformat()
    return data


def trace_from_dict(data: dict[str, Any]) -> AttemptTrace:
    """The inverse of ``trace_to_dict``."""
    known = {f.name for f in fields(AttemptTrace)}
    values = {k: v for k, v in data.items() if k in known}
    values["started_at"] = datetime.fromisoformat(data["started_at"])
    values["ended_at"] = datetime.fromisoformat(data["ended_at"])
    values["frames"] = tuple(FrameRecord(**f) for f in data.get("frames", ()))
    for key in ("close_rcvd", "close_sent"):
        if data.get(key) is not None:
            values[key] = CloseInfo(**data[key])
    for key in ("subprotocols_offered", "extensions", "exception_mro"):
        values[key] = tuple(data.get(key) or ())
    for key in ("request_headers", "response_headers"):
        values[key] = tuple(tuple(pair) for pair in data.get(key) or ())
    return AttemptTrace(**values)
