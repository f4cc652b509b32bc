"""The I/O adapter: turns a HandshakeSpec into AttemptTraces on the websockets client.

One call of ``run_try`` is one connection try. It records whatever the server does and never
lets an exception escape (except cancellation): the exception's class is recorded instead.
DNS and TCP are done here (for their timings, through an injectable resolver); TLS, the HTTP
upgrade and the frames go through ``websockets.asyncio.client.connect`` with a tracing
connection class. Redirects are not followed: a 3xx is recorded as the handshake answer.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from uvs_analysis.replay.events import AGENT_EVENTS, parse_event
from uvs_analysis.replay.probes import Monotonic, TicketError, exc_name, fetch_ticket
from uvs_analysis.replay.redact import RedactingLogger, Redactor
from uvs_analysis.replay.spec import HandshakeSpec, render
from uvs_analysis.replay.trace import AttemptTrace, Clock, CloseInfo, FrameRecord

__all__ = ["Monotonic", "Resolver", "default_resolver", "run_try"]

#: ``(host, port) -> getaddrinfo-style list``; tests pass one that fails to simulate DNS.
Resolver = Callable[[str, int], Awaitable[list[tuple[Any, ...]]]]
_WIRE_LOG = logging.getLogger("uvs_analysis.replay.wire")


async def default_resolver(host: str, port: int) -> list[tuple[Any, ...]]:
    """Resolve with the running loop's getaddrinfo (TCP only); IP literals skip the resolver."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        address = (str(ip), port) if ip.version == 4 else (str(ip), port, 0, 0)
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]
    loop = asyncio.get_running_loop()
    return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)


@dataclass
class _Recorder:
    """Mutable scratch state of one try; frozen into an AttemptTrace at the end."""

    mono: Monotonic
    t0: float
    redactor: Redactor
    max_chars: int
    max_kept: int
    phase: str | None = "dns"
    marks: dict[str, float] = field(default_factory=dict)
    frames: list[FrameRecord] = field(default_factory=list)
    total: int = 0
    sent: int = 0
    agent_events: int = 0
    close_payload: bytes | None = None
    conn: ClientConnection | None = None

    def mark(self, name: str) -> float:
        value = (self.mono() - self.t0) * 1000.0
        self.marks.setdefault(name, value)
        return value

    def frame(self, direction: str, message: str | bytes) -> FrameRecord:
        t_ms = (self.mono() - self.t0) * 1000.0
        index = self.total
        self.total += 1
        if isinstance(message, str):
            opcode, text, size = "text", message, len(message.encode("utf-8", "replace"))
        else:
            opcode, text, size = "binary", message.decode("utf-8", "replace"), len(message)
        text = self.redactor.text(text)
        event = parse_event(text) if opcode == "text" else parse_event("")
        if direction == "recv" and event.event_type in AGENT_EVENTS:
            self.agent_events += 1
        record = FrameRecord(
            index=index, direction=direction, t_ms=t_ms, opcode=opcode, size=size,
            text=text[: self.max_chars], truncated=len(text) > self.max_chars,
            event_type=event.event_type, agent_name=event.agent_name,
            tool_name=event.tool_name, run_id=event.run_id, user_id=event.user_id,
            thread_id=event.thread_id, shape=event.shape, has_result=event.has_result,
        )
        if len(self.frames) < self.max_kept:
            self.frames.append(record)
        return record


class _TracingConnection(ClientConnection):
    """A ClientConnection that timestamps TLS end and the 101, and keeps raw Close payloads."""

    recorder: _Recorder

    def __init__(self, protocol: Any, *, recorder: _Recorder, **kwargs: Any) -> None:
        super().__init__(protocol, **kwargs)
        self.recorder = recorder
        recorder.conn = self
        original = protocol.recv_frame

        def recv_frame(frame: Frame) -> None:
            if frame.opcode is Opcode.CLOSE:
                recorder.close_payload = bytes(frame.data)
            original(frame)

        protocol.recv_frame = recv_frame

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.recorder.mark("tls_done")
        self.recorder.phase = "http"
        super().connection_made(transport)

    def process_event(self, event: Any) -> None:
        if self.response is None:
            self.recorder.mark("response")
        super().process_event(event)


def _stop_rule(final_types: tuple[str, ...]) -> Callable[[str | None, str | None], bool]:
    plain = {t for t in final_types if ":" not in t}
    pairs = {tuple(t.split(":", 1)) for t in final_types if ":" in t}

    def done(event_type: str | None, agent: str | None) -> bool:
        return event_type in plain or (event_type, agent) in pairs

    return done


async def _session(ws: ClientConnection, spec: HandshakeSpec, messages: Any,
                   rec: _Recorder) -> tuple[bool, bool, BaseException | None]:
    """Send the messages and read until the stop rule, a close or the deadline.

    Returns (completed, timed_out, exception).
    """
    seen: dict[str, asyncio.Event] = {}
    for step in messages:
        if step.after_type:
            seen.setdefault(step.after_type, asyncio.Event())
    sender_done = asyncio.Event()
    handshake_only = not messages
    wait_after_send = not spec.final_types
    scope: list[asyncio.Timeout] = []

    async def sender() -> None:
        try:
            for step in messages:
                if step.after_type:
                    await seen[step.after_type].wait()
                if step.delay_s:
                    await asyncio.sleep(step.delay_s)
                data: str | bytes = base64.b64decode(step.text) if step.binary else step.text
                await ws.send(data)
                rec.sent += 1
                rec.frame("sent", data)
        except Exception:  # the receive side records how the connection ended
            pass
        finally:
            sender_done.set()
            if wait_after_send and scope:
                scope[0].reschedule(asyncio.get_running_loop().time() + spec.hold_s)

    done = _stop_rule(spec.final_types)
    task: asyncio.Task[None] | None = None
    completed = timed_out = False
    error: BaseException | None = None
    current: str | None = None
    try:
        async with asyncio.timeout(spec.hold_s if handshake_only else spec.run_timeout_s) as cm:
            scope.append(cm)
            if messages:
                task = asyncio.create_task(sender())
            while True:
                msg = await ws.recv()
                record = rec.frame("recv", msg)
                rec.mark("first_frame")
                kind = record.event_type
                if kind in seen:
                    seen[kind].set()
                if kind == "agent_started" and record.agent_name:
                    current = record.agent_name
                agent = record.agent_name or current
                if kind == "agent_completed" and agent == current:
                    current = None
                if not handshake_only and not completed and done(kind, agent):
                    completed = True
                    if spec.linger_s <= 0:
                        break
                    cm.reschedule(asyncio.get_running_loop().time() + spec.linger_s)
    except TimeoutError:
        if handshake_only or completed or (wait_after_send and sender_done.is_set()):
            completed = True
        else:
            timed_out = True
    except Exception as exc:  # ConnectionClosed and anything else: recorded, never raised
        rec.mark("closed")
        error = exc
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return completed, timed_out, error


async def run_try(
    spec: HandshakeSpec,
    *,
    token: str | None,
    attempt: int,
    try_index: int = 0,
    user: int = 0,
    user_id: str | None = None,
    redactor: Redactor,
    clock: Clock,
    monotonic: Monotonic = time.perf_counter,
    resolver: Resolver = default_resolver,
    ssl_context: ssl.SSLContext | None = None,
) -> AttemptTrace:
    """Run one connection try and record it. Never raises (except cancellation).

    Args:
        spec: what to replay.
        token: the token (expanded in memory; only its redacted forms are recorded).
        attempt, try_index, user: identify the try.
        user_id: the user id templates expand ``{user_id}`` to.
        redactor: masks secrets in everything recorded.
        clock: wall clock (UTC) for ``started_at``/``ended_at``.
        monotonic: clock for durations.
        resolver: DNS resolver hook.
        ssl_context: TLS context for wss:// (default: the system's verified context).
    """
    started_at = clock()
    t0 = monotonic()
    rec = _Recorder(monotonic, t0, redactor, spec.max_text_chars, spec.max_frames_kept)
    info: dict[str, Any] = {}
    ws: ClientConnection | None = None
    rendered = None
    error: BaseException | None = None
    completed = timed_out = False
    try:
        async with asyncio.timeout(spec.open_timeout_s):
            ticket = None
            if spec.ticket_url:
                rec.phase = "ticket"
                ticket = await fetch_ticket(spec.ticket_url, token, timeout=spec.open_timeout_s)
                rec.redactor = redactor = redactor.with_secrets([ticket])
                info["ticket_ms"] = rec.mark("ticket_done")
            rendered = render(spec, token=token, attempt=attempt, user=user, user_id=user_id,
                              ticket=ticket)
            parts = urlsplit(rendered.url)
            host = parts.hostname or ""
            secure = parts.scheme == "wss"
            port = parts.port or (443 if secure else 80)
            rec.phase = "dns"
            dns_start = rec.mark("dns_start")
            infos = await resolver(host, port)
            if not infos:
                raise socket.gaierror(socket.EAI_NONAME, f"no address for {host}")
            rec.mark("dns_done")
            rec.phase = "tcp"
            sock = await _tcp_connect(infos)
            rec.mark("tcp_done")
            rec.phase = "tls" if secure else "http"
            kwargs: dict[str, Any] = {}
            if spec.user_agent:
                kwargs["user_agent_header"] = spec.user_agent
            if secure:
                kwargs["ssl"] = ssl_context or ssl.create_default_context()
                kwargs["server_hostname"] = host
            ws = await connect(
                rendered.url,
                sock=sock,
                origin=cast(Any, spec.origin),
                subprotocols=cast(Any, list(rendered.subprotocols) or None),
                additional_headers=list(rendered.headers) or None,
                compression="deflate" if spec.compression else None,
                open_timeout=None,
                ping_interval=spec.ping_interval_s,
                ping_timeout=spec.ping_timeout_s,
                close_timeout=spec.close_timeout_s,
                max_size=spec.max_size,
                logger=RedactingLogger(_WIRE_LOG, redactor),
                create_connection=cast(Any, _factory(rec)),
                **kwargs,
            )
            info["dns_start"] = dns_start
        rec.phase = None
        completed, timed_out, error = await _session(ws, spec, rendered.messages, rec)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure is recorded, none escapes
        error = exc
    finally:
        if ws is not None:
            try:
                if ws.state is not State.CLOSED:
                    reason = "replay complete" if completed else "replay timeout"
                    await ws.close(1000, reason)
            except Exception as exc:
                error = error or exc
            rec.mark("closed")
    ended_at = clock()
    return _freeze(spec, rec, ws, error, completed, timed_out, started_at, ended_at, attempt,
                   try_index, user, rendered, redactor, info)


def _factory(rec: _Recorder) -> Callable[..., ClientConnection]:
    def make(protocol: Any, **kwargs: Any) -> ClientConnection:
        return _TracingConnection(protocol, recorder=rec, **kwargs)

    return make


async def _tcp_connect(infos: list[tuple[Any, ...]]) -> socket.socket:
    loop = asyncio.get_running_loop()
    last: OSError | None = None
    for family, type_, proto, _, address in infos:
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except BaseException as exc:
            sock.close()
            if isinstance(exc, OSError):
                last = exc
                continue
            raise
        return sock
    raise last or OSError("no address to connect to")


def _freeze(
    spec: HandshakeSpec, rec: _Recorder, ws: ClientConnection | None,
    error: BaseException | None, completed: bool, timed_out: bool, started_at: Any,
    ended_at: Any, attempt: int, try_index: int, user: int, rendered: Any,
    redactor: Redactor, info: dict[str, Any],
) -> AttemptTrace:
    m = rec.marks
    red = redactor
    conn = ws if ws is not None else rec.conn
    response = conn.response if conn is not None else None
    if response is None and isinstance(error, InvalidStatus):
        response = error.response
    if response is None and error is not None and isinstance(error.__cause__, InvalidStatus):
        response = error.__cause__.response
    fields: dict[str, Any] = {}
    if response is not None:
        headers = tuple(response.headers.raw_items())
        fields.update(
            http_status=response.status_code,
            http_reason=response.reason_phrase,
            response_headers=red.headers(headers),
            response_body=red.text((response.body or b"").decode("utf-8", "replace"))[:4000],
            retry_after=next((v for k, v in headers if k.lower() == "retry-after"), None),
        )
    if ws is not None:
        proto = ws.protocol
        fields.update(
            subprotocol=red.subprotocol(ws.subprotocol) if ws.subprotocol else None,
            extensions=tuple(e.name for e in proto.extensions),
            close_rcvd=CloseInfo(proto.close_rcvd.code, red.text(proto.close_rcvd.reason))
            if proto.close_rcvd else None,
            close_sent=CloseInfo(proto.close_sent.code, red.text(proto.close_sent.reason))
            if proto.close_sent else None,
            rcvd_then_sent=proto.close_rcvd_then_sent,
            close_code=proto.close_code,
        )
        if proto.close_rcvd is not None and (proto.close_rcvd_then_sent is not False):
            fields["closed_by"] = "server"
        elif proto.close_sent is not None:
            fields["closed_by"] = "client"
        else:
            fields["closed_by"] = "transport"
        fields["close_ms"] = m.get("closed")
    if isinstance(error, TicketError):
        fields["http_status"] = error.status
    exc_fields = _exc_fields(error, red) if error is not None else {}
    dns = _span(m, "dns_start", "dns_done")
    failed_phase = rec.phase if ws is None else None
    if ws is None and rec.phase == "http" and "response" in m and response is None:
        failed_phase = "http"
    url = rendered.url if rendered is not None else spec.url
    return AttemptTrace(
        attempt=attempt,
        try_index=try_index,
        user=user,
        thread_id=rendered.thread_id if rendered is not None
        else f"{spec.thread_prefix}-u{user}-a{attempt}",
        url=red.url(url),
        started_at=started_at,
        ended_at=ended_at,
        subprotocols_offered=red.subprotocols(rendered.subprotocols) if rendered else (),
        request_headers=red.headers(rendered.headers) if rendered else (),
        failed_phase=failed_phase,
        dns_ms=dns,
        tcp_ms=_span(m, "dns_done", "tcp_done"),
        tls_ms=_span(m, "tcp_done", "tls_done") if url.startswith("wss:") else None,
        http_ms=_span(m, "tls_done", "response"),
        handshake_ms=_span(m, "dns_start", "response"),
        first_frame_ms=m.get("first_frame"),
        duration_ms=(rec.mono() - rec.t0) * 1000.0,
        frames=tuple(rec.frames),
        frames_total=rec.total,
        messages_sent=rec.sent,
        agent_events=rec.agent_events,
        close_payload_hex=rec.close_payload.hex() if rec.close_payload is not None else None,
        completed=completed,
        timed_out=timed_out,
        ticket_ms=info.get("ticket_ms"),
        **fields,
        **exc_fields,
    )


def _span(marks: dict[str, float], start: str, end: str) -> float | None:
    if start in marks and end in marks:
        return marks[end] - marks[start]
    return None


def _exc_fields(error: BaseException, red: Redactor) -> dict[str, Any]:
    cause = error.__cause__
    names = tuple(c.__name__ for c in type(error).__mro__)
    if cause is not None:
        names += tuple(f"cause:{c.__name__}" for c in type(cause).__mro__)
    return {
        "exception_type": exc_name(error),
        "exception_mro": names,
        "exception_message": red.text(str(error))[:2000],
        "exception_cause": f"{exc_name(cause)}: {red.text(str(cause))[:500]}" if cause else None,
    }
