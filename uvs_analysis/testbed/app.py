"""The testbed backend: a FastAPI app with the real backend's routes, middleware and failures.

Routes: WebSocket ``/ws`` and ``/api/v1/websocket`` (main mode), ``GET /health``,
``GET /health/ready``, ``GET /ws/health``, ``GET /ws/config`` and ``POST /api/websocket/ticket``.
Two pure-ASGI middlewares wrap it: the Cloud Run request log (one entry per request or session,
written when it ends) and the readiness guard (503 with ``Retry-After`` before the upgrade while
the app state does not exist yet).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from uvs_analysis.testbed.applog import LogContext
from uvs_analysis.testbed.auth import AuthFailure, verify_token
from uvs_analysis.testbed.cloudrun_logs import CURRENT_INSTANCE
from uvs_analysis.testbed.session import run_session
from uvs_analysis.testbed.state import TestbedState
from uvs_analysis.testbed.workflow import CRITICAL_EVENTS, iso

__all__ = ["ReadinessMiddleware", "RequestLogMiddleware", "create_app"]

STARTUP_REASON = ("Starting new instance. Reason: AUTOSCALING - Instance started due to "
                  "configured scaling factors (e.g. CPU utilization, request throughput, etc.) or "
                  "no existing capacity for current traffic.")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class RequestLogMiddleware:
    """Write the request-log entry of every HTTP request and WebSocket session when it ends."""

    def __init__(self, app: ASGIApp, state: TestbedState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = self.state
        instance = state.instance
        CURRENT_INSTANCE.set(instance)
        start = state.clock()
        trace_id, span_id = self._trace(scope)
        scope["testbed.trace"] = (trace_id, span_id)
        outcome: dict[str, Any] = {"status": None, "size": 0}

        async def send_wrapper(message: Message) -> None:
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                outcome["status"] = message["status"]
            elif kind == "websocket.accept":
                outcome["status"] = 101
            elif kind == "websocket.close" and outcome["status"] is None:
                outcome["status"] = 403
            body = message.get("body") or message.get("bytes") or message.get("text") or b""
            outcome["size"] += len(body)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            if outcome["status"] is None:
                outcome["status"] = 500
            raise
        finally:
            if outcome["status"] is None:
                outcome["status"] = 500
            query = scope.get("query_string", b"").decode("latin-1")
            client = scope.get("client")
            state.writer.request(
                method=scope.get("method", "GET"),
                url=state.settings.public_url + scope["path"] + (f"?{query}" if query else ""),
                status=int(outcome["status"]), start=start, end=state.clock(),
                user_agent=_header(scope, b"user-agent"),
                remote_ip=client[0] if client else None,
                request_size=sum(len(k) + len(v) + 4 for k, v in scope.get("headers", [])),
                response_size=int(outcome["size"]), trace_id=trace_id, span_id=span_id,
                instance=instance)

    def _trace(self, scope: Scope) -> tuple[str, str]:
        """Trace and span from ``X-Cloud-Trace-Context``, else new ones (as the GFE does)."""
        header = _header(scope, b"x-cloud-trace-context")
        if header:
            trace, _, rest = header.partition("/")
            span = rest.split(";")[0]
            if len(trace) == 32 and all(c in "0123456789abcdefABCDEF" for c in trace):
                return trace.lower(), span or self.state.hex_id(16)
        return self.state.hex_id(32), self.state.hex_id(16)


class ReadinessMiddleware:
    """Refuse WebSocket upgrades with 503 + ``Retry-After`` while the app state is missing."""

    def __init__(self, app: ASGIApp, state: TestbedState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        if scope["type"] != "websocket" or state.startup_phase() != "no_app_state":
            await self.app(scope, receive, send)
            return
        await receive()  # websocket.connect
        failed = ["app_state", "agent_supervisor", "websocket_bridge"]
        ctx = LogContext(trace_id=scope.get("testbed.trace", ("", ""))[0] or None)
        state.log.log("startup_phase", "ERROR", ctx, phase="no_app_state", waited=state.waited())
        state.log.log("reject_not_ready", "WARNING", ctx, state="unknown", failed=failed,
                      path=scope["path"], status=503)
        body = json.dumps({
            "error": "service_not_ready",
            "message": "WebSocket service is not ready. Enhanced uvicorn compatibility check "
                       "failed.",
            "details": {"state": "unknown", "failed_services": failed,
                        "retry_after": state.timings.retry_after_s},
        }).encode()
        await send({"type": "websocket.http.response.start", "status": 503, "headers": [
            (b"content-type", b"application/json"),
            (b"retry-after", str(state.timings.retry_after_s).encode()),
            (b"x-cloud-run-compatible", b"true"),
            (b"x-issue-449-fix", b"enhanced-rejection"),
        ]})
        await send({"type": "websocket.http.response.body", "body": body})


def create_app(state: TestbedState) -> FastAPI:
    """Build the app around ``state`` (which holds settings, clock, secret and log writer)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        container = f"{state.settings.service}-1"
        state.writer.system(STARTUP_REASON, container=container)
        state.started_at = state.clock()
        state.writer.system(f'Default STARTUP TCP probe succeeded after 1 attempt for container '
                            f'"{container}" on port 8080.', container=container)
        yield
        state.log.log("shutdown", "INFO", count=len(state.sessions))

    app = FastAPI(title="uvs-analysis testbed backend", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)

    @app.get("/health")
    async def health() -> JSONResponse:
        if state.startup_phase() == "no_app_state":
            return JSONResponse({"status": "starting", "service": "netra-backend"}, 503)
        return JSONResponse({"status": "healthy", "service": "netra-backend", "version": "1.4.2",
                             "timestamp": iso(state.clock())})

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        phase = state.startup_phase()
        if phase != "ready":
            return JSONResponse({"status": "not_ready", "phase": phase}, 503,
                                headers={"Retry-After": str(state.timings.retry_after_s)})
        return JSONResponse({"status": "ready", "phase": phase})

    @app.get("/ws/health")
    async def ws_health() -> JSONResponse:
        return JSONResponse({"status": "healthy", "active_connections": len(state.sessions),
                             "golden_path_events": list(CRITICAL_EVENTS)})

    @app.get("/ws/config")
    async def ws_config() -> JSONResponse:
        timings = state.timings
        return JSONResponse({"websocket_config": {
            "heartbeat_interval": timings.heartbeat_s, "connection_timeout": 300 * timings.scale,
            "max_message_size": 1 << 20, "paths": ["/ws", "/api/v1/websocket"]}})

    @app.post("/api/websocket/ticket")
    async def ticket(request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return JSONResponse({"detail": "Authorization header required"}, 401)
        token = auth[7:].strip()
        state.writer.add_secret(token)
        try:
            identity = verify_token(token, state.secret, now=state.clock())
        except AuthFailure as exc:
            return JSONResponse({"detail": f"Invalid token: {exc.detail}"}, 401)
        ticket_id = state.tickets.issue(identity.user_id, now=state.clock())
        state.writer.add_secret(ticket_id)
        return JSONResponse({"ticket_id": ticket_id, "expires_in": state.tickets.ttl_s,
                             "websocket_url": f"/ws?ticket={ticket_id}"})

    async def endpoint(websocket: WebSocket) -> None:
        await run_session(websocket, state)

    app.add_api_websocket_route("/ws", endpoint)
    app.add_api_websocket_route("/api/v1/websocket", endpoint)
    app.add_middleware(ReadinessMiddleware, state=state)
    app.add_middleware(RequestLogMiddleware, state=state)
    return app
