"""What the local API servers (the Cloud Logging emulator, the BigQuery stand-in) share.

Binding with a clear error, the endpoint URL a client is given, and a handle that serves from
a background thread and stops idempotently (also as a context manager).
"""

from __future__ import annotations

import argparse
import signal
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self, TypeVar

from uvs_analysis.errors import UsageError

__all__ = [
    "JsonHandler",
    "LocalServer",
    "ServerThread",
    "bind",
    "endpoint_of",
    "port_number",
    "until_signalled",
]

_S = TypeVar("_S", bound=ThreadingHTTPServer)


class LocalServer(ThreadingHTTPServer):
    """A threaded HTTP server for a local service: daemon request threads, an immediate
    stop (idle keep-alive connections must not hold up ``stop()``), a port reusable at once."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class JsonHandler(BaseHTTPRequestHandler):
    """A keep-alive JSON API handler: quiet, bounded request bodies, JSON replies."""

    protocol_version = "HTTP/1.1"
    timeout = 120  # seconds an idle keep-alive connection may hold a thread
    #: the largest request body accepted
    max_body: int = 1 << 20

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep quiet: each server keeps its own accounting."""

    def read_body(self, error_body: Callable[[int, str], bytes]) -> bytes | None:
        """The request body, or None after answering 400 (``error_body(status, message)``
        in the API's own error shape) when Content-Length is missing a sane value."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > self.max_body:
            self.close_connection = True
            self.send_json(
                400, error_body(400, f"Content-Length must be 0..{self.max_body} bytes")
            )
            return None
        return self.rfile.read(length) if length else b""

    def send_json(self, status: int, body: bytes) -> None:
        """Answer ``status`` with a JSON body."""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def port_number(text: str) -> int:
    """argparse type of a --port option: 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from exc
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text} is above 65535, the highest port")
    return value


def bind(make: Callable[[], _S], host: str, port: int) -> _S:
    """``make()`` the server, turning a refused address into a UsageError.

    Raises:
        UsageError: the address cannot be bound.
    """
    try:
        return make()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc})",
            expected="a free port on a local address",
            hint="pick another --port, or 0 for any free port",
        ) from exc


def endpoint_of(server: ThreadingHTTPServer) -> str:
    """The server's base URL (IPv6 hosts bracketed)."""
    host, port = server.server_address[:2]
    text = host.decode() if isinstance(host, bytes) else str(host)
    return f"http://[{text}]:{port}" if ":" in text else f"http://{text}:{port}"


class _Stopped(BaseException):
    """Raised by the signal handler to leave the serving loop.

    A BaseException: socketserver's ``handle_error`` catches Exception, so a signal that lands
    while the main thread accepts a request would otherwise be swallowed and serving go on.
    """


def until_signalled(serve: Callable[[], None]) -> bool:
    """Run ``serve()`` until SIGTERM or SIGINT; True when a signal ended it.

    Both signals are handled, also when started from a shell that ignores SIGINT in background
    jobs (the disposition is inherited, so Python would otherwise never see Ctrl-C). The
    previous handlers are restored afterwards.
    """

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise _Stopped

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        serve()
    except (KeyboardInterrupt, _Stopped):
        return True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return False


class ServerThread:
    """Serves ``server`` from a daemon thread until ``stop()``.

    Attributes:
        endpoint: the base URL.
        port: the bound port.
    """

    def __init__(self, server: ThreadingHTTPServer, *, name: str) -> None:
        self._server = server
        self.endpoint = endpoint_of(server)
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._stopped = False

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._closed()

    def _closed(self) -> None:
        """Called once after the server stopped (release what the subclass holds)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
