"""Tests for health probes and the ticket step."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from uvs_analysis.replay.probes import TicketError, fetch_ticket, probe
from uvs_analysis.replay.redact import Redactor

from .conftest import AgentServer, FakeClock, closed_port


def test_probe_records_status_and_failures(agent_server: AgentServer) -> None:
    """A probe records the HTTP status, or the error class when nothing answers."""
    red = Redactor()
    ok = asyncio.run(probe(f"http://127.0.0.1:{agent_server.port}/reject503", "before",
                           redactor=red, clock=FakeClock()))
    assert ok.status == 503 and ok.retry_after == "0"
    down = asyncio.run(probe(f"http://127.0.0.1:{closed_port()}/health", "after",
                             redactor=red, clock=FakeClock(), timeout=1))
    assert down.status is None and down.error_type


def _http(status: str, body: bytes) -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def test_fetch_ticket_reads_the_ticket_id(raw_server: Any) -> None:
    """A JSON answer with ticket_id gives the ticket."""
    port = raw_server(_http("200 OK", b'{"ticket_id": "tk_123", "expires_in": 300}'))
    ticket = asyncio.run(fetch_ticket(f"http://127.0.0.1:{port}/api/websocket/ticket", "tok",
                                      timeout=2))
    assert ticket == "tk_123"


@pytest.mark.parametrize("status,body", [("401 Unauthorized", b"{}"), ("200 OK", b"nope"),
                                         ("200 OK", b'{"other": 1}')])
def test_fetch_ticket_failures_are_ticket_errors(raw_server: Any, status: str,
                                                 body: bytes) -> None:
    """An error status, non-JSON or a missing field raises TicketError with the status."""
    port = raw_server(_http(status, body))
    with pytest.raises(TicketError) as info:
        asyncio.run(fetch_ticket(f"http://127.0.0.1:{port}/t", None, timeout=2))
    assert info.value.status == int(status.split()[0])
