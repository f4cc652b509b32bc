"""Tests for the client adapter against small local servers (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from uvs_analysis.replay.classify import Outcome, classify, conformance
from uvs_analysis.replay.client import run_try
from uvs_analysis.replay.redact import Redactor
from uvs_analysis.replay.spec import DEFAULT_MESSAGE, HandshakeSpec, MessageStep
from uvs_analysis.replay.trace import AttemptTrace

from .conftest import CANARY, AgentServer, FakeClock, closed_port


def spec(url: str, **kw: Any) -> HandshakeSpec:
    kw.setdefault("messages", (MessageStep(DEFAULT_MESSAGE),))
    kw.setdefault("open_timeout_s", 2.0)
    kw.setdefault("run_timeout_s", 5.0)
    kw.setdefault("close_timeout_s", 1.0)
    return HandshakeSpec(url=url, **kw)


def attempt(s: HandshakeSpec, token: str | None = CANARY, **kw: Any) -> AttemptTrace:
    return asyncio.run(run_try(s, token=token, attempt=0, redactor=Redactor([CANARY]),
                               clock=FakeClock(), **kw))


def test_healthy_run_records_timings_frames_and_close(agent_server: AgentServer) -> None:
    """A healthy run completes with every phase timed, all frames kept and a clean close."""
    t = attempt(spec(agent_server.url("/healthy"), subprotocols=("jwt.{token}",)))
    assert classify(t).outcome is Outcome.COMPLETED
    assert t.http_status == 101 and t.subprotocol == "jwt.[REDACTED]"
    for name in ("dns_ms", "tcp_ms", "http_ms", "handshake_ms", "first_frame_ms", "close_ms"):
        assert getattr(t, name) is not None, name
    assert t.started_at < t.ended_at
    assert t.agent_events == 15 and t.messages_sent == 1
    assert t.close_sent is not None and t.close_sent.code == 1000
    assert t.closed_by == "client"


def test_closed_port_is_connect_failed() -> None:
    """Nothing listening: connect_failed in the tcp phase, exception class kept."""
    t = attempt(spec(f"ws://127.0.0.1:{closed_port()}/ws"))
    assert classify(t).outcome is Outcome.CONNECT_FAILED
    assert t.failed_phase == "tcp" and t.exception_type == "ConnectionRefusedError"


def test_dns_failure_simulated_in_process() -> None:
    """A resolver hook raising gaierror gives dns_failure, with no DNS traffic."""
    async def failing(host: str, port: int) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    t = attempt(spec("ws://backend.invalid/ws"), resolver=failing)
    assert classify(t).outcome is Outcome.DNS_FAILURE
    assert t.failed_phase == "dns"


def test_tls_against_plain_server(raw_server: Any) -> None:
    """wss:// against a plain HTTP answer is a TLS failure."""
    port = raw_server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    t = attempt(spec(f"wss://127.0.0.1:{port}/ws"))
    assert classify(t).outcome is Outcome.TLS_FAILURE


def test_server_that_never_answers(raw_server: Any) -> None:
    """TCP accepted, no HTTP answer within open_timeout: handshake_timeout in the http phase."""
    port = raw_server(None)
    t = attempt(spec(f"ws://127.0.0.1:{port}/ws", open_timeout_s=0.5))
    c = classify(t)
    assert c.outcome is Outcome.HANDSHAKE_TIMEOUT and c.phase == "http"


def test_non_101_answer(raw_server: Any) -> None:
    """A 200 answer is a refused handshake with status 200 and its body."""
    port = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    t = attempt(spec(f"ws://127.0.0.1:{port}/ws"))
    assert classify(t).label == "handshake_refused/200"
    assert t.response_body == "hello"


def test_garbage_instead_of_http(raw_server: Any) -> None:
    """Non-HTTP bytes are an invalid handshake."""
    port = raw_server(b"\x00\x01garbage\xff\r\n\r\n")
    t = attempt(spec(f"ws://127.0.0.1:{port}/ws"))
    assert classify(t).outcome is Outcome.HANDSHAKE_INVALID


def test_garbage_instead_of_frames(raw_server: Any) -> None:
    """A valid 101 followed by non-frame bytes ends as an abnormal closure, never an error."""
    answer = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: x\r\n\r\n\xff\xff\xff\xff")
    t = attempt(spec(f"ws://127.0.0.1:{raw_server(answer)}/ws"))
    assert classify(t).outcome in (Outcome.HANDSHAKE_INVALID, Outcome.ABNORMAL_CLOSURE)


def test_refused_with_retry_after(agent_server: AgentServer) -> None:
    """A 503 with Retry-After is recorded with both."""
    t = attempt(spec(agent_server.url("/reject503")))
    assert classify(t).label == "handshake_refused/503"
    assert t.retry_after == "0" and "service_not_ready" in t.response_body


def test_frame_over_max_size(agent_server: AgentServer) -> None:
    """A message over max_size: 1006 received, the client's 1009 kept."""
    t = attempt(spec(agent_server.url("/big")))
    assert classify(t).label == "abnormal_closure/1006"
    assert t.close_sent is not None and t.close_sent.code == 1009


@pytest.mark.parametrize("payload,code", [("03ed", 1005), ("03ee", 1006), ("03ec", 1004),
                                          ("07d0", 2000)])
def test_invalid_and_reserved_close_codes(agent_server: AgentServer, payload: str,
                                          code: int) -> None:
    """A Close frame with an invalid code: 1006 for the library, raw payload and finding kept."""
    t = attempt(spec(agent_server.url(f"/rawclose/{payload}")))
    assert classify(t).outcome is Outcome.ABNORMAL_CLOSURE
    assert t.close_payload_hex == payload
    assert t.close_sent is not None and t.close_sent.code == 1002
    assert [f.code for f in conformance(t)] == [code]


def test_close_without_status(agent_server: AgentServer) -> None:
    """An empty server Close frame: seen as 1005, named as a conformance finding."""
    t = attempt(spec(agent_server.url("/rawclose/empty")))
    assert t.close_rcvd is not None and t.close_rcvd.code == 1005
    assert [f.rule for f in conformance(t)] == ["close_without_status"]


def test_handler_crash_is_1006_and_close_1011_before_first_event(agent_server: AgentServer) -> None:
    """A dropped connection is 1006; an app close(1011) before any agent event keeps its code."""
    crash = attempt(spec(agent_server.url("/crash")))
    assert classify(crash).label == "abnormal_closure/1006"
    assert crash.closed_by == "transport"
    closed = attempt(spec(agent_server.url("/close1011")))
    assert classify(closed).label == "closed_before_first_event/1011"
    assert closed.close_rcvd is not None and closed.close_rcvd.reason == \
        "Service initialization failed"
    mid = attempt(spec(agent_server.url("/midrun")))
    assert classify(mid).label == "closed_mid_run/1011"


def test_hundred_thousand_frames_all_counted(agent_server: AgentServer) -> None:
    """100,000 frames are all recorded; a cap keeps fewer but still counts every one."""
    t = attempt(spec(agent_server.url("/flood?n=100000"), messages=(), hold_s=30,
                     run_timeout_s=30))
    assert t.frames_total == 100_000 and len(t.frames) == 100_000
    assert classify(t).label == "closed_before_first_event/1000"
    capped = attempt(spec(agent_server.url("/flood?n=5000"), messages=(), hold_s=30,
                          max_frames_kept=100))
    assert capped.frames_total == 5000 and capped.frames_dropped == 4900


def test_run_timeout(agent_server: AgentServer) -> None:
    """A run that stalls past run_timeout is timed_out, and the client closes it."""
    t = attempt(spec(agent_server.url("/hang"), run_timeout_s=0.5))
    assert classify(t).outcome is Outcome.TIMED_OUT
    assert t.close_sent is not None and t.close_sent.reason == "replay timeout"


def test_canary_in_every_form_is_redacted(agent_server: AgentServer) -> None:
    """The token echoed raw, base64url, URL-encoded, JSON-escaped and in a reason never lands."""
    t = attempt(spec(agent_server.url("/echo?token={token}"), subprotocols=("jwt.{token}",),
                     headers=(("Authorization", "Bearer {token}"),)))
    blob = repr(t)
    received = [f for f in t.frames if f.direction == "recv"]
    assert len(received) == 2
    assert CANARY not in blob
    assert "[REDACTED]" in received[0].text and "[REDACTED]" in t.url
