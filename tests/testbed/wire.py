"""Helpers for the testbed tests: talk to a running testbed with a plain websockets client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

from uvs_analysis.testbed import TestbedHandle

SCALE = 0.05


class Wire:
    """Small websockets-client helpers bound to one testbed."""

    def __init__(self, handle: TestbedHandle) -> None:
        self.handle = handle
        self.token = os.environ[handle.token_env]  # minted by start_testbed

    def connect(self, *, url: str | None = None, subprotocols: list[str] | None = None,
                headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        kwargs.setdefault("open_timeout", 10)
        kwargs.setdefault("close_timeout", 2)
        return connect(url or self.handle.ws_url, subprotocols=subprotocols,  # type: ignore[arg-type]
                       additional_headers=headers, proxy=None, **kwargs)

    def auth(self, token: str | None = None) -> list[str]:
        return [f"jwt.{token or self.token}"]


async def recv_json(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    """Next JSON frame, skipping heartbeats."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame.get("type") != "heartbeat":
            return dict(frame)


async def run_agent(ws: ClientConnection, text: str = "please cut my cloud costs", *,
                    thread_id: str = "thread-test-1", timeout: float = 10.0,
                    until: Callable[[dict[str, Any]], bool] | None = None
                    ) -> list[dict[str, Any]]:
    """Send start_agent and collect frames until reporting completes (or ``until``)."""
    await ws.send(json.dumps({"type": "start_agent", "thread_id": thread_id,
                              "payload": {"user_request": text, "thread_id": thread_id}}))
    frames: list[dict[str, Any]] = []
    stop = until or (lambda f: f.get("type") == "agent_completed"
                     and agent_of(f) == "reporting")
    while True:
        frame = await recv_json(ws, timeout)
        frames.append(frame)
        if stop(frame):
            return frames


Frame = dict[str, Any]


def recorder(into: list[Any], stop: Callable[[Frame], bool] | None = None,
             key: Callable[[Frame], Any] = lambda f: f) -> Callable[[Frame], bool]:
    """An ``until`` predicate for run_agent that records every frame (via ``key``)."""

    def until(frame: dict[str, Any]) -> bool:
        into.append(key(frame))
        return bool(stop and stop(frame))

    return until


def agent_of(frame: dict[str, Any]) -> str | None:
    """agent_name in any of the three shapes."""
    return frame.get("agent_name") or (frame.get("payload") or {}).get("agent_name")


def b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def raw_close_code(wire: Wire) -> int:
    """Read the server's close frame bytes with a raw socket client."""
    parts = urlsplit(wire.handle.ws_url)
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall((f"GET /ws HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: jwt.{wire.token}"
                      "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(4096)
        buf = buf.split(b"\r\n\r\n", 1)[1]
        payload = json.dumps({"type": "start_agent", "payload": {"user_request": "x"}}).encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        sock.sendall(bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(payload)) + mask + masked)
        while True:
            while len(buf) < 2:
                buf += sock.recv(4096)
            length = buf[1] & 0x7F
            head = 2
            if length == 126:
                while len(buf) < 4:
                    buf += sock.recv(4096)
                length, head = struct.unpack("!H", buf[2:4])[0], 4
            while len(buf) < head + length:
                buf += sock.recv(4096)
            opcode, body, buf = buf[0] & 0x0F, buf[head:head + length], buf[head + length:]
            if opcode == 0x8:
                return int(struct.unpack("!H", body[:2])[0])
