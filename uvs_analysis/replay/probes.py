"""Plain HTTP beside the WebSocket: health probes and the single-use ticket step.

Both run urllib in a worker thread with proxies disabled, so diagnostics reach the target itself.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import cast

import orjson

from uvs_analysis.replay.redact import Redactor
from uvs_analysis.replay.trace import Clock, ProbeRecord

__all__ = ["Monotonic", "TicketError", "exc_name", "fetch_ticket", "probe"]

Monotonic = Callable[[], float]
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def exc_name(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}" if cls.__module__ != "builtins" else cls.__name__


async def _http(
    url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request in a worker thread, no proxy. HTTP errors are returned, not raised."""

    def call() -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(url, method=method, headers=headers or {},
                                         data=b"" if method == "POST" else None)
        try:
            with _NO_PROXY.open(request, timeout=timeout) as resp:
                return resp.status, dict(resp.headers.items()), resp.read(65536)
        except urllib.error.HTTPError as err:
            body = err.read(65536) if err.fp is not None else b""
            return err.code, dict(err.headers.items()) if err.headers else {}, body

    return await asyncio.to_thread(call)


class TicketError(Exception):
    """The ticket endpoint did not give a ticket."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


async def fetch_ticket(url: str, token: str | None, *, timeout: float) -> str:
    """POST for a single-use ticket; returns its id. Raises TicketError or OSError."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, body = await _http(url, method="POST", headers=headers, timeout=timeout)
    if status >= 400:
        raise TicketError(f"ticket endpoint answered HTTP {status}", status)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise TicketError("ticket endpoint did not answer JSON", status) from exc
    if isinstance(data, dict):
        for key in ("ticket", "ticket_id", "id"):
            if isinstance(data.get(key), str) and data[key]:
                return cast(str, data[key])
    raise TicketError("ticket endpoint answer has no ticket/ticket_id field", status)


async def probe(
    url: str,
    phase: str,
    *,
    redactor: Redactor,
    clock: Clock,
    monotonic: Monotonic = time.perf_counter,
    timeout: float = 5.0,
) -> ProbeRecord:
    """GET a health/readiness URL and record the answer; never raises."""
    started = clock()
    t0 = monotonic()
    try:
        status, headers, body = await _http(url, timeout=timeout)
    except Exception as exc:  # a probe records every failure
        return ProbeRecord(redactor.url(url), phase, started, (monotonic() - t0) * 1000.0, None,
                           error_type=exc_name(exc), body=redactor.text(str(exc))[:2000])
    retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    return ProbeRecord(redactor.url(url), phase, started, (monotonic() - t0) * 1000.0, status,
                       retry_after=retry_after,
                       body=redactor.text(body.decode("utf-8", "replace"))[:2000])
