"""uvicorn's sans-I/O WebSocket protocol with two wire-level powers the app cannot have.

uvicorn refuses to put reserved close codes (1005, 1006, 1015) on the wire and offers no way to
drop a connection without a close frame. The testbed needs both (a misguided "component code"
close; a platform cutting a session), so this subclass exposes them to the app through the
ASGI scope extension ``testbed.wire`` with two callables: ``raw_close(code, reason)`` writes a
hand-built close frame, ``cut()`` closes the TCP connection with no close frame.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

__all__ = ["WIRE_EXTENSION", "TestbedWebSocketProtocol", "close_frame"]

WIRE_EXTENSION: Final = "testbed.wire"


def close_frame(code: int, reason: str = "") -> bytes:
    """An unmasked server close frame with any 16-bit code, valid or not."""
    payload = struct.pack("!H", code) + reason.encode("utf-8")[:123]
    return bytes([0x88, len(payload)]) + payload


class TestbedWebSocketProtocol(WebSocketsSansIOProtocol):
    """The default uvicorn WebSocket protocol plus the ``testbed.wire`` extension."""

    __test__ = False

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: Any = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][WIRE_EXTENSION] = {"raw_close": self.raw_close, "cut": self.cut}

    def raw_close(self, code: int, reason: str = "") -> None:
        """Write a close frame byte by byte, bypassing the code check, and await the reply."""
        if self.close_sent or self.transport.is_closing():
            return
        self.transport.write(close_frame(code, reason))
        self.close_sent = True
        self.stop_keepalive()
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)

    def cut(self) -> None:
        """Close the TCP connection now, with no close frame (the peer sees 1006)."""
        if not self.transport.is_closing():
            self.close_sent = True
            self.transport.close()
