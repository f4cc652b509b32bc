"""A local HTTP server speaking Cloud Logging's ``POST /v2/entries:list``, plus control routes.

Routes:
    ``POST /v2/entries:list``   the API method (query string ignored).
    ``GET  /emulator/stats``    the accounting as JSON (``EmulatorStats.to_json``).
    ``POST /emulator/reset``    forget requests, served pages and quota use.
    ``GET  /emulator/faults``   the fault knobs in force; ``POST`` replaces them
                                (body: ``FaultConfig.to_json`` keys, missing keys = defaults).

Point the real client at it with ``handle.client()`` or::

    gl.Client(project="reader", credentials=AnonymousCredentials(), _use_grpc=False,
              client_options={"api_endpoint": handle.endpoint})

Read with a client project other than the entries' project and pass ``resource_names``: for an
entry whose logName is under the client's own project, google-cloud-logging builds a Logger
whose resource detection queries metadata.google.internal (5 s timeout per lookup offline).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Final

import orjson

from uvs_analysis.emulator.faults import FaultConfig
from uvs_analysis.emulator.service import EmulatorStats, LoggingService, Reply, error_body
from uvs_analysis.emulator.store import EntrySource, EntryStore, open_store
from uvs_analysis.errors import UsageError
from uvs_analysis.localhttp import JsonHandler, LocalServer, ServerThread, bind, endpoint_of

if TYPE_CHECKING:
    from google.cloud.logging_v2.client import Client

__all__ = ["EmulatorHandle", "make_server", "serve_forever", "start_emulator"]

_MAX_BODY: Final = 1 << 20
_LIST_PATH: Final = "/v2/entries:list"


class _Server(LocalServer):
    def __init__(
        self, address: tuple[str, int], service: LoggingService, sleep: Callable[[float], None]
    ) -> None:
        super().__init__(address, _Handler)
        self.service = service
        self.sleep = sleep


class _Handler(JsonHandler):
    server: _Server
    server_version = "uvs-logging-emulator"
    max_body = _MAX_BODY

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        body = self.read_body(error_body)
        if body is None:
            return
        service = self.server.service
        if path == _LIST_PATH:
            self._send_reply(service.list_entries(body))
        elif path == "/emulator/reset":
            service.reset()
            self.send_json(200, b"{}")
        elif path == "/emulator/faults":
            try:
                data = orjson.loads(body) if body.strip() else {}
                if not isinstance(data, dict):
                    raise UsageError("the body is not a JSON object", expected="a JSON object")
                service.set_faults(FaultConfig.from_json(data))
            except orjson.JSONDecodeError as exc:
                self.send_json(400, error_body(400, f"Invalid JSON payload received. {exc}"))
            except UsageError as exc:
                self.send_json(400, error_body(400, exc.message))
            else:
                self.send_json(200, orjson.dumps(service.faults.to_json()))
        else:
            self.send_json(404, error_body(404, f"No method at POST {path}"))

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        service = self.server.service
        if path == "/emulator/stats":
            self.send_json(200, orjson.dumps(service.stats().to_json()))
        elif path == "/emulator/faults":
            self.send_json(200, orjson.dumps(service.faults.to_json()))
        elif path == _LIST_PATH:
            self.send_json(404, error_body(404, "entries:list takes POST with a JSON body"))
        else:
            self.send_json(404, error_body(404, f"No method at GET {path}"))

    def _send_reply(self, reply: Reply) -> None:
        if reply.delay > 0:
            self.server.sleep(reply.delay)
        if not reply.disconnect:
            self.send_json(reply.status, reply.body)
            return
        self.close_connection = True  # half the body, then the connection is cut
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body[: len(reply.body) // 2])
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def make_server(
    service: LoggingService,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sleep: Callable[[float], None] = time.sleep,
) -> ThreadingHTTPServer:
    """Bind an HTTP server for ``service`` (port 0 picks a free port); not yet serving.

    Raises:
        UsageError: the address cannot be bound.
    """
    return bind(lambda: _Server((host, port), service, sleep), host, port)


class EmulatorHandle(ServerThread):
    """A running emulator (background thread). Use as a context manager or call ``stop()``."""

    def __init__(self, server: ThreadingHTTPServer, service: LoggingService) -> None:
        self.service = service
        super().__init__(server, name="logging-emulator")

    @property
    def stats(self) -> EmulatorStats:
        """A snapshot of requests and served pages."""
        return self.service.stats()

    @property
    def faults(self) -> FaultConfig:
        """The fault knobs in force."""
        return self.service.faults

    def set_faults(self, faults: FaultConfig) -> None:
        """Replace the fault knobs."""
        self.service.set_faults(faults)

    def reset(self) -> None:
        """Forget requests, served pages and quota use."""
        self.service.reset()

    def client(self, project: str = "demo") -> Client:
        """A real google-cloud-logging client (HTTP transport, anonymous) aimed at this server.

        Use a ``project`` other than the served entries' and pass ``resource_names`` to
        ``list_entries``; otherwise the client queries the GCE metadata server per log name.
        """
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import logging as gl

        result: Client = gl.Client(  # type: ignore[no-untyped-call]
            project=project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            _use_grpc=False,
            client_options={"api_endpoint": self.endpoint},
        )
        return result


def start_emulator(
    sources: EntryStore | Iterable[EntrySource],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    quota_per_minute: int | None = 60,
    faults: FaultConfig | None = None,
    seed: int = 0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> EmulatorHandle:
    """Serve ``sources`` (paths and/or LogEntry dicts, or a store) from a background thread.

    Args:
        sources: export files (NDJSON / JSON array, optionally gzipped), LogEntry dicts, or an
            ``EntryStore``.
        host: address to bind (keep it local).
        port: port to bind; 0 picks a free one (read it from ``.endpoint`` / ``.port``).
        quota_per_minute: read requests per minute per project (60 like the real API); None
            or 0 for no quota.
        faults: fault injection knobs (none by default).
        seed: seed of the fault draws.
        clock: seconds from a fixed origin, for the quota window.
        sleep: how slow pages wait.

    Raises:
        BadInputError: a file is missing, unreadable or not a log export; the port is taken.
    """
    store = open_store(sources)
    service = LoggingService(
        store, quota_per_minute=quota_per_minute, faults=faults, seed=seed, clock=clock
    )
    return EmulatorHandle(make_server(service, host=host, port=port, sleep=sleep), service)


def serve_forever(
    service: LoggingService,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve in the calling thread until interrupted (KeyboardInterrupt or an exception raised by
    a signal handler); ``on_ready`` receives the endpoint URL once the port is bound."""
    server = make_server(service, host=host, port=port)
    try:
        if on_ready is not None:
            on_ready(endpoint_of(server))
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
