"""Run the testbed in this process: uvicorn on a bound socket, nginx in front if needed.

When the server listens, one line ``READY {json}`` goes to ``ready_stream`` with the URLs (and
the process arguments); that line is the only place the fault names appear. Cloud Run style
logs go to the NDJSON log file only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import uvicorn

from uvs_analysis.errors import UsageError
from uvs_analysis.testbed.app import create_app
from uvs_analysis.testbed.applog import AppLogger
from uvs_analysis.testbed.auth import SECRET_ENV, TicketStore
from uvs_analysis.testbed.cloudrun_logs import CloudRunTextHandler, Instance, LogEntryWriter
from uvs_analysis.testbed.faults import TestbedSettings
from uvs_analysis.testbed.protocol import TestbedWebSocketProtocol
from uvs_analysis.testbed.proxy import NginxProxy, start_nginx
from uvs_analysis.testbed.state import TestbedState

__all__ = ["SECRET_ENV", "build_state", "serve"]

#: The environment variable that carries the JWT signing secret into the testbed process.
_LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio")


def build_state(settings: TestbedSettings, *, secret: str, stream: TextIO | None) -> TestbedState:
    """Wire settings, clock, secret and log writer into the shared state."""
    clock = time.time
    writer = LogEntryWriter(stream, project=settings.project, service=settings.service,
                            location=settings.location,
                            default=Instance.create(settings.revision, seed=settings.seed),
                            clock=clock, seed=settings.seed)
    timings = settings.timings()
    return TestbedState(
        settings=settings, timings=timings, secret=secret, writer=writer,
        log=AppLogger(writer, log_format=settings.log_format, wording=settings.wording),
        tickets=TicketStore(seed=settings.seed, ttl_s=timings.ticket_ttl_s), clock=clock,
        terminate=lambda: os.kill(os.getpid(), signal.SIGTERM),
        rng=random.Random(f"{settings.seed}:ids"))


def _route_library_logs(writer: LogEntryWriter) -> None:
    handler = CloudRunTextHandler(writer)
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


def serve(settings: TestbedSettings, *, host: str = "127.0.0.1", port: int = 0,
          log_file: Path | None = None, proxy: bool | None = None,
          argv: Sequence[str] = (), ready_stream: TextIO = sys.stdout) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code.

    Raises:
        UsageError: the JWT secret is missing from the environment.
    """
    secret = os.environ.get(SECRET_ENV) or ""
    if not secret:
        raise UsageError(f"the JWT signing secret is not set (environment variable {SECRET_ENV})",
                         expected="a non-empty secret in the environment, never on the command "
                                  "line", hint="start the testbed with "
                                  "uvs_analysis.testbed.start_testbed(), which sets it")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} (--host/--port): {exc.strerror}",
                         hint="pick another port, or 0 for a free one") from None
    stream = log_file.open("a", encoding="utf-8") if log_file else None
    try:
        state = build_state(settings, secret=secret, stream=stream)
        _route_library_logs(state.writer)
        with_proxy = settings.needs_proxy if proxy is None else (proxy or settings.needs_proxy)
        asyncio.run(_serve(state, sock, with_proxy=with_proxy, argv=argv,
                           ready_stream=ready_stream, log_file=log_file))
        state.writer.system("Container called exit(0).", severity="WARNING",
                            container=f"{settings.service}-1")
    finally:
        sock.close()
        if stream is not None:
            stream.close()
    return 0


async def _serve(state: TestbedState, sock: socket.socket, *, with_proxy: bool,
                 argv: Sequence[str], ready_stream: TextIO, log_file: Path | None) -> None:
    timings = state.timings
    config = uvicorn.Config(
        create_app(state), ws=TestbedWebSocketProtocol, log_config=None, lifespan="on",
        ws_ping_interval=timings.ws_ping_s, ws_ping_timeout=timings.ws_ping_s,
        timeout_graceful_shutdown=max(1, math.ceil(timings.graceful_shutdown_s)),
        proxy_headers=False, server_header=False)
    server = uvicorn.Server(config)
    for sig in (signal.SIGTERM, signal.SIGINT):  # uvicorn re-raises these after shutdown
        signal.signal(sig, lambda *_: None)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    nginx: NginxProxy | None = None
    try:
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            await task
            return
        host, port = sock.getsockname()[:2]
        info: dict[str, Any] = {"pid": os.getpid(), "upstream_port": port,
                                "http_url": f"http://{host}:{port}", "argv": list(argv),
                                "log_file": str(log_file) if log_file else None}
        if with_proxy:
            nginx = await asyncio.to_thread(
                start_nginx, port, strip_auth=state.settings.has("proxy-strip-auth"),
                idle_cut_s=timings.idle_cut_s if state.settings.has("proxy-idle-cut") else None)
            info.update(proxy_port=nginx.port, proxy_pid=nginx.process.pid,
                        http_url=f"http://127.0.0.1:{nginx.port}")
        info["ws_url"] = info["http_url"].replace("http://", "ws://", 1) + "/ws"
        ready_stream.write("READY " + json.dumps(info) + "\n")
        ready_stream.flush()
        await task
    finally:
        if nginx is not None:
            nginx.stop()
        if not task.done():
            server.should_exit = True
            await task
