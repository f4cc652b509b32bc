"""The local API servers' shared plumbing: binding, endpoint URLs, the serving thread."""

from __future__ import annotations

import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from uvs_analysis.errors import UsageError
from uvs_analysis.localhttp import ServerThread, bind, endpoint_of


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_taken_port_is_a_usage_error_naming_the_address() -> None:
    """Binding a port already in use says which address and what to do."""
    first = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    port = first.server_address[1]
    try:
        with pytest.raises(UsageError, match=rf"cannot listen on 127.0.0.1:{port}"):
            bind(lambda: ThreadingHTTPServer(("127.0.0.1", port), _Hello), "127.0.0.1", port)
    finally:
        first.server_close()


def test_server_thread_serves_until_stopped_and_stops_once() -> None:
    """The handle serves at its endpoint; stop() releases the port and may be called again."""
    closed: list[bool] = []

    class Handle(ServerThread):
        def _closed(self) -> None:
            closed.append(True)

    server = bind(lambda: ThreadingHTTPServer(("127.0.0.1", 0), _Hello), "127.0.0.1", 0)
    with Handle(server, name="hello") as handle:
        assert handle.endpoint == endpoint_of(server) == f"http://127.0.0.1:{handle.port}"
        with urllib.request.urlopen(handle.endpoint, timeout=5) as reply:
            assert reply.read() == b"ok"
    handle.stop()
    assert closed == [True]
    with pytest.raises(OSError):
        urllib.request.urlopen(handle.endpoint, timeout=2)


def test_a_signal_passes_through_except_exception_handlers() -> None:
    """SIGTERM ends serving even where it lands inside `except Exception` (socketserver's
    handle_error), and the previous handler is restored afterwards."""
    import os
    import signal
    import time

    from uvs_analysis.localhttp import until_signalled

    before = signal.getsignal(signal.SIGTERM)
    swallowed: list[BaseException] = []
    served_on: list[bool] = []

    def serve() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except Exception as exc:  # what socketserver does with a request's error
            swallowed.append(exc)
        served_on.append(True)

    assert until_signalled(serve) is True
    assert swallowed == [] and served_on == []
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize(("text", "error"), [("-5", "negative"), ("70000", "above 65535"),
                                             ("http", "not a port number")])
def test_port_numbers_are_checked_before_binding(text: str, error: str) -> None:
    """--port takes 0..65535; anything else is a usage error that says why."""
    import argparse

    from uvs_analysis.localhttp import port_number

    assert port_number("0") == 0 and port_number("65535") == 65535
    with pytest.raises(argparse.ArgumentTypeError, match=error):
        port_number(text)
