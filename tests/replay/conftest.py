"""Small local servers for the replay tests (127.0.0.1 only).

``agent_server`` is a websockets server whose behaviour is chosen by the request path, so one
server covers many scenarios. ``raw_server`` is a plain asyncio TCP server answering with fixed
bytes (or nothing). Both run in a background thread with their own event loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

CANARY = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlLWNhbmFyeQ"
CANARY_ENV = "UVS_TEST_CANARY_TOKEN"


class FakeClock:
    """A wall clock that advances 1 ms per reading, from a fixed UTC start."""

    def __init__(self) -> None:
        self.now = datetime(2025, 9, 10, 21, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


class LoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def event(kind: str, shape: str, agent: str, *, run_id: str, user_id: str, thread_id: str,
          tool: str | None = None, result: Any = None) -> dict[str, Any]:
    """One agent event in one of the backend's three shapes."""
    ts = "2025-09-10T21:30:00+00:00"
    if shape == "bridge":
        ev: dict[str, Any] = {"type": kind, "run_id": run_id, "user_id": user_id,
                              "agent_name": agent, "timestamp": ts, "data": {"status": kind}}
        if tool:
            ev["tool_name"] = tool
        if result is not None:
            ev["data"]["result"] = result
        return ev
    if shape == "flat":
        ev = {"type": kind, "critical": True, "user_id": user_id, "thread_id": thread_id,
              "run_id": run_id, "timestamp": 1757539800.0}
        if kind in ("agent_started", "tool_executing", "tool_completed"):
            ev["agent_name"] = agent
        if tool:
            ev["tool_name"] = tool
        if result is not None:
            ev["final_response"] = result
        return ev
    ev = {"type": kind, "run_id": run_id, "agent_name": agent, "timestamp": ts,
          "payload": {"thread_id": thread_id, "user_id": user_id}}
    if tool:
        ev["payload"]["tool_name"] = tool
    if result is not None:
        ev["payload"]["result"] = result
    return ev


def agent_events(shape: str, *, thread_id: str, user_id: str = "user-1",
                 agents: tuple[str, ...] = ("triage", "data_helper", "reporting"),
                 skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """A full run: each agent started, thinking, one tool, completed; the report last."""
    run_id = f"run-{thread_id}"
    out = []
    for agent in agents:
        for kind, tool in (("agent_started", None), ("agent_thinking", None),
                           ("tool_executing", f"{agent}_tool"), ("tool_completed", f"{agent}_tool"),
                           ("agent_completed", None)):
            if kind in skip:
                continue
            result = {"report": "all good"} if agent == "reporting" and kind == "agent_completed" \
                else None
            out.append(event(kind, shape, agent, run_id=run_id, user_id=user_id,
                             thread_id=thread_id, tool=tool, result=result))
    return out


async def _handler(ws: ServerConnection) -> None:
    assert ws.request is not None
    parts = urllib.parse.urlsplit(ws.request.path)
    path, q = parts.path, dict(urllib.parse.parse_qsl(parts.query))
    shape = q.get("shape", "bridge")
    if path == "/crash":
        await ws.send(json.dumps({"type": "connection_established", "data": {}}))
        await asyncio.sleep(0.05)
        ws.transport.abort()
        return
    if path == "/close1011":
        await ws.send(json.dumps({"type": "error_message", "error_code": "SERVICE_INIT_FAILED"}))
        await ws.close(1011, "Service initialization failed")
        return
    if path.startswith("/rawclose/"):
        payload = bytes.fromhex(path.rsplit("/", 1)[1]) if path.rsplit("/", 1)[1] != "empty" \
            else b""
        await ws.send(json.dumps({"type": "connection_established", "data": {}}))
        ws.transport.write(bytes([0x88, len(payload)]) + payload)
        await asyncio.sleep(1.0)
        ws.transport.abort()
        return
    if path == "/flood":
        n = int(q.get("n", "1000"))
        for i in range(n):
            await ws.send('{"type":"heartbeat","n":' + str(i) + '}')
        await ws.close(1000, "flood done")
        return
    if path == "/big":
        await ws.send("x" * (2 * 2**20))
        await asyncio.sleep(2)
        return
    if path == "/echo":
        proto = ws.request.headers.get("Sec-WebSocket-Protocol", "")
        auth = ws.request.headers.get("Authorization", "")
        token = CANARY
        await ws.send(json.dumps({"type": "echo", "protocol": proto, "auth": auth,
                                  "b64": base64.urlsafe_b64encode(token.encode()).decode(),
                                  "url": urllib.parse.quote(token, safe=""),
                                  "path": ws.request.path}))
        await ws.send(f"raw {token} {json.dumps(token)}".encode())
        await ws.close(1000, f"bye {token}")
        return
    if path == "/auth":
        proto = ws.request.headers.get("Sec-WebSocket-Protocol", "")
        auth = ws.request.headers.get("Authorization", "")
        if CANARY not in proto and CANARY not in auth and CANARY not in ws.request.path:
            await ws.send(json.dumps({"type": "error_message", "error_code": "AUTH_FAILED"}))
            await ws.close(1008, "Authentication failed")
            return
    # an agent run
    await ws.send(json.dumps({"type": "connection_established", "data": {"mode": "main"}}))
    try:
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
    except (TimeoutError, Exception):
        return
    thread_id = first.get("thread_id") or first.get("payload", {}).get("thread_id", "t")
    if path == "/bleed":
        thread_id = "replay-u0-a0"
    agents: tuple[str, ...] = ("triage", "data_helper", "reporting")
    if path == "/order":
        agents = ("triage", "reporting", "data_helper")
    skip = ("tool_completed",) if path == "/missing" else ()
    events = agent_events(shape, thread_id=thread_id, agents=agents, skip=skip)
    for i, ev in enumerate(events):
        if path == "/slow" and i % 5 == 4 and agents[i // 5] in ("data_helper", "reporting"):
            await asyncio.sleep(0.3)
        if path == "/midrun" and i == 3:
            await ws.close(1011, "main mode error")
            return
        if path == "/hang" and i == 3:
            await asyncio.sleep(2)
        await ws.send(json.dumps(ev))
    try:
        await asyncio.wait_for(ws.wait_closed(), 10)
    except TimeoutError:
        pass


_FLAKY = {"count": 0}


def _process_request(conn: ServerConnection, request: Request) -> Response | None:
    path = urllib.parse.urlsplit(request.path).path
    if path == "/reject503" or (path == "/flaky" and _FLAKY["count"] % 2 == 0):
        if path == "/flaky":
            _FLAKY["count"] += 1
        return Response(503, "Service Unavailable",
                        Headers([("Retry-After", "0"), ("Content-Type", "application/json")]),
                        b'{"error": "service_not_ready"}')
    if path == "/flaky":
        _FLAKY["count"] += 1
    if path == "/forbidden":
        return Response(403, "Forbidden", Headers(), b"")
    return None


def _select(conn: ServerConnection, offered: list[str]) -> str | None:
    for proto in offered:
        if proto.startswith(("jwt.", "jwt-auth.", "bearer.")) or proto == "agent_chat":
            return proto
    return None


class AgentServer:
    """Handle on the running agent server."""

    def __init__(self, loop: LoopThread, port: int) -> None:
        self.loop_thread = loop
        self.port = port

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="session")
def agent_server() -> Iterator[AgentServer]:
    """A websockets server with path-selected behaviours, for the whole session."""
    lt = LoopThread()

    async def start() -> Any:
        return await serve(_handler, "127.0.0.1", 0, process_request=_process_request,
                           select_subprotocol=_select, max_size=2**22, ping_interval=None)

    server = lt.run(start())
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        yield AgentServer(lt, port)
    finally:
        async def stop() -> None:
            server.close()
            await server.wait_closed()

        lt.run(stop())
        lt.stop()


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(scope="session")
def raw_server() -> Iterator[Callable[[bytes | None], int]]:
    """Start raw TCP servers: ``raw_server(answer)`` returns a port; None never answers."""
    lt = LoopThread()
    servers: list[asyncio.Server] = []
    handlers: set[asyncio.Task[Any]] = set()

    def start(answer: bytes | None) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                handlers.add(task)
            try:
                await reader.read(4096)
                if answer is None:
                    await asyncio.sleep(30)
                else:
                    writer.write(answer)
                    await writer.drain()
                    await asyncio.sleep(0.2)
            except asyncio.CancelledError:
                pass
            finally:
                writer.close()

        async def go() -> asyncio.Server:
            return await asyncio.start_server(handle, "127.0.0.1", 0)

        server: asyncio.Server = lt.run(go())
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    try:
        yield start
    finally:
        async def stop() -> None:
            for s in servers:
                s.close()
            for task in list(handlers):
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        lt.run(stop())
        lt.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``cond`` (for set-up only, never as a timed assertion)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()
