"""One WebSocket session in main mode: negotiate, accept, authenticate, serve agent runs.

The sequence and the failure answers are the backend's (``routes/websocket_ssot.py``): an
unsupported subprotocol is closed before accept (the client sees HTTP 403); bad auth gets an
error frame and close 1008; a missing WebSocket manager (database, redis or services not ready)
gets an error frame and close 1011 "Service initialization failed". Exceptions that escape are
left to uvicorn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.websockets import WebSocket, WebSocketDisconnect

from uvs_analysis.testbed.applog import LogContext
from uvs_analysis.testbed.auth import (
    AuthFailure,
    Credentials,
    Identity,
    extract_credentials,
    negotiate_subprotocol,
    verify_token,
)
from uvs_analysis.testbed.faults import connection_hit
from uvs_analysis.testbed.protocol import WIRE_EXTENSION
from uvs_analysis.testbed.state import TestbedState
from uvs_analysis.testbed.workflow import (
    RunContext,
    agent_event,
    connection_established,
    error_frame,
    final_report,
    heartbeat,
    legacy_component_error,
    plan_workflow,
    server_message,
    triage_sufficiency,
)

__all__ = ["AGENT_MESSAGE_TYPES", "Session", "run_session"]

AGENT_MESSAGE_TYPES: Final = frozenset({"start_agent", "user_message", "chat", "agent_request"})
DEMO_USER: Final = "demo-user-001"
_asyncio_log = logging.getLogger("asyncio")


class _Gone(Exception):
    """The session's own socket is closed; stop the run."""


def authenticate(creds: Credentials, state: TestbedState) -> Identity:
    """Check the credentials found on the handshake.

    Raises:
        AuthFailure: nothing usable, or the token/ticket is not valid.
    """
    now = state.clock()
    if creds.ticket is not None:
        return state.tickets.redeem(creds.ticket, now=now)
    if creds.token is not None:
        if not creds.token:
            raise AuthFailure("TOKEN_EXTRACTION", "subprotocol carries no decodable JWT")
        state.writer.add_secret(creds.token)
        identity = verify_token(creds.token, state.secret, now=now)
        return Identity(identity.user_id, creds.method, identity.expires_at)
    if state.settings.auth_mode == "demo":
        return Identity(DEMO_USER, "demo-permissive")
    raise AuthFailure("TOKEN_EXTRACTION", "No valid JWT token found via any method")


async def run_session(ws: WebSocket, state: TestbedState) -> None:
    """Handle one connection from handshake to close."""
    trace_id = ws.scope.get("testbed.trace", ("0" * 32, "0"))[0]
    conn = f"main_{state.hex_id(8)}"
    ordinal = state.next_ordinal()
    ctx = LogContext(connection_id=conn, trace_id=trace_id, request_id=f"req_{state.hex_id(12)}")
    offered = list(ws.scope.get("subprotocols") or [])
    acceptable, chosen = negotiate_subprotocol(offered)
    if not acceptable:
        state.log.log("no_subprotocol", "WARNING", ctx, offered=offered)
        await ws.close(code=1003, reason="No supported subprotocols")
        return
    await ws.accept(subprotocol=chosen)
    headers = {k.lower(): v for k, v in ws.headers.items()}
    query = dict(parse_qsl(ws.scope.get("query_string", b"").decode("latin-1")))
    creds = extract_credentials(offered, headers, query)
    try:
        identity = authenticate(creds, state)
    except AuthFailure as exc:
        if creds.method == "none":
            state.log.log("auth_exhausted", "CRITICAL", ctx,
                          header="PRESENT" if creds.header_present else "MISSING",
                          subprotocol=creds.subprotocol_prefix or ("NONE" if not offered else
                                                                   ",".join(offered)),
                          query_keys=sorted(query))
        state.log.log("auth_failed", "CRITICAL", ctx, kind=exc.kind, detail=exc.detail,
                      method=creds.method)
        await _send(ws, error_frame("AUTH_FAILED", f"Authentication failed: {exc.detail}",
                                    now=state.clock()))
        await ws.close(code=1008, reason="Authentication failed")
        return
    ctx = LogContext(conn, identity.user_id, None, None, trace_id, ctx.request_id)
    state.log.log("auth_ok", "INFO", ctx, user8=identity.user_id[:8], method=identity.method)
    if not await _services_ok(ws, state, ctx, ordinal):
        return
    session = Session(ws, state, conn, ordinal, identity, ctx)
    await session.serve()


async def _services_ok(ws: WebSocket, state: TestbedState, ctx: LogContext, ordinal: int) -> bool:
    """Create the WebSocket manager; on failure send the error frame and close 1011."""
    settings = state.settings
    phase = state.startup_phase()
    if phase != "ready":
        state.log.log("startup_phase", "ERROR", ctx, phase=phase, waited=state.waited())
        state.log.log("services_failed", "ERROR", ctx, ready=4, total=6,
                      failed=["agent_supervisor", "websocket_bridge"])
    elif settings.has("database-down") and connection_hit(settings.seed, "database", ordinal,
                                                          settings.fault_rate):
        state.log.log("db_unavailable", "ERROR", ctx, host="10.107.0.5")
    elif settings.has("redis-down") and connection_hit(settings.seed, "redis", ordinal,
                                                       settings.fault_rate):
        state.log.log("redis_unavailable", "ERROR", ctx, host="10.107.0.3")
    else:
        return True
    user8 = (ctx.user_id or "")[:8]
    state.log.log("manager_failure", "CRITICAL", ctx, user8=user8, conn=ctx.connection_id,
                  code=1011)
    await _send(ws, error_frame("SERVICE_INIT_FAILED", "WebSocket manager creation failed",
                                now=state.clock()))
    await ws.close(code=1011, reason="Service initialization failed")
    return False


async def _send(ws: WebSocket, frame: dict[str, Any]) -> bool:
    try:
        await ws.send_text(json.dumps(frame))
    except (WebSocketDisconnect, RuntimeError, OSError):
        return False
    return True


class Session:
    """An authenticated, established connection and its agent runs."""

    def __init__(self, ws: WebSocket, state: TestbedState, conn: str, ordinal: int,
                 identity: Identity, ctx: LogContext) -> None:
        self.ws = ws
        self.state = state
        self.conn = conn
        self.ordinal = ordinal
        self.identity = identity
        self.ctx = ctx
        self.instance = state.writer.instance()
        self.open = True
        self.messages = 0
        self.events = 0
        self.runs: set[asyncio.Task[None]] = set()

    @property
    def user_id(self) -> str:
        """The authenticated user."""
        return self.identity.user_id

    async def send(self, frame: dict[str, Any]) -> bool:
        """Send one frame; False once the socket is gone."""
        if not self.open:
            return False
        self.open = await _send(self.ws, frame)
        return self.open

    def wire(self, name: str) -> Any:
        """A ``testbed.wire`` power (``raw_close`` or ``cut``), or None under plain uvicorn."""
        return self.ws.scope.get("extensions", {}).get(WIRE_EXTENSION, {}).get(name)

    def cut(self) -> None:
        """Drop the connection with no close frame (platform request timeout)."""
        cut = self.wire("cut")
        if cut is not None:
            cut()

    async def serve(self) -> None:
        """Run the message loop until the peer goes away."""
        state, started = self.state, self.state.clock()
        state.sessions.append(self)
        await self.send(connection_established(self.conn, self.user_id, now=state.clock()))
        state.log.log("connected", "INFO", self.ctx, conn=self.conn, user8=self.user_id[:8])
        loop = asyncio.get_running_loop()
        beats = asyncio.create_task(self._heartbeats())
        timer = loop.call_later(state.timings.request_timeout_s, self.cut)
        code: int | None = 1006
        reason = ""
        crashed = False
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    code, reason = message.get("code"), message.get("reason") or ""
                    break
                self.messages += 1
                await self._dispatch(message.get("text") or (message.get("bytes") or b"").decode(
                    "utf-8", "replace"))
        except BaseException:
            crashed = True
            raise
        finally:
            self.open = False
            timer.cancel()
            beats.cancel()
            for task in (beats, *self.runs):
                task.cancel()
            await asyncio.gather(beats, *self.runs, return_exceptions=True)
            if self in state.sessions:
                state.sessions.remove(self)
            if not crashed:
                state.log.log("disconnected", "INFO" if code in (1000, 1001) else "WARNING",
                              self.ctx, conn=self.conn, code=code, reason=reason,
                              elapsed=state.clock() - started)

    async def _dispatch(self, text: str) -> None:
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("message is not a JSON object")
        except ValueError as exc:
            self.state.log.log("bad_message", "WARNING", self.ctx, conn=self.conn,
                               error=type(exc).__name__)
            await self.send(error_frame("JSON_PARSE_ERROR", "Invalid JSON message",
                                        now=self.state.clock()))
            return
        kind = data.get("type")
        if kind in AGENT_MESSAGE_TYPES:
            if self.state.settings.has("handler-crash"):
                raise AttributeError("'AgentWebSocketBridge' object has no attribute "
                                     "'handle_message'")
            task = asyncio.create_task(self._run(data))
            self.runs.add(task)
            task.add_done_callback(self.runs.discard)
        elif kind == "ping":
            await self.send(server_message("pong", {}, now=self.state.clock()))
        elif kind == "heartbeat":
            await self.send(server_message("heartbeat_ack", {}, now=self.state.clock()))

    async def _heartbeats(self) -> None:
        while self.open:
            await asyncio.sleep(self.state.timings.heartbeat_s)
            await self.send(heartbeat(self.conn, self.messages, self.events,
                                      now=self.state.clock()))

    async def _run(self, message: dict[str, Any]) -> None:
        from uvs_analysis.testbed.disruptions import schedule_disruption

        payload = message.get("payload") if isinstance(message.get("payload"), dict) else {}
        assert isinstance(payload, dict)
        text = next((str(payload[k]) for k in ("user_request", "message", "content", "text")
                     if payload.get(k)), "")
        thread_id = str(payload.get("thread_id") or message.get("thread_id")
                        or f"thread_{self.state.hex_id(12)}")
        run = RunContext(str(payload.get("run_id") or f"run_{self.state.hex_id(12)}"),
                         self.user_id, thread_id)
        ctx = LogContext(self.conn, self.user_id, run.run_id, thread_id, self.ctx.trace_id,
                         self.ctx.request_id)
        settings, state = self.state.settings, self.state
        agents = plan_workflow(triage_sufficiency(text, settings.data_sufficiency),
                               swap_order=settings.has("pipeline-order"))
        state.log.log("run_started", "INFO", ctx, run_id=run.run_id, thread_id=thread_id,
                      workflow=" -> ".join(agents))
        schedule_disruption(state)
        start = state.clock()
        try:
            for seq, agent in enumerate(agents, 1):
                if settings.has("reserved-close-code") and seq == 2:
                    await self._component_failure(ctx)
                    return
                await self._agent(run, ctx, agent, seq, agents, text)
        except _Gone:
            return
        except Exception as exc:  # the orchestrator logs and drops a failed run
            state.log.log("run_failed", "ERROR", ctx, exc=exc, run_id=run.run_id,
                          error=f"{type(exc).__name__}: {exc}")
            return
        report = final_report(agents, text)["report_type"]
        state.log.log("run_done", "INFO", ctx, run_id=run.run_id, report_type=report,
                      elapsed=state.clock() - start)
        if settings.has("pipeline-order"):
            state.log.log("coordination", "ERROR", ctx, run_id=run.run_id,
                          order=" -> ".join(agents))

    async def _agent(self, run: RunContext, ctx: LogContext, agent: str, seq: int,
                     agents: tuple[str, ...], text: str) -> None:
        state, settings, timings = self.state, self.state.settings, self.state.timings
        start = state.clock()
        shape = settings.event_shape

        async def emit(event: str, extra: dict[str, Any] | None = None) -> None:
            frame = agent_event(shape, event, run, agent, now=state.clock(), seq=seq, extra=extra)
            await self._emit(run, ctx, frame)

        await emit("agent_started")
        await asyncio.sleep(timings.think_s)
        await emit("agent_thinking")
        execution_id = f"exec_{state.hex_id(8)}"
        await emit("tool_executing", {"execution_id": execution_id})
        tool_start = state.clock()
        tool_s = max(0.0, timings.steps_s.get(agent, timings.think_s) - timings.think_s)
        if agent == "data_helper" and settings.has("event-loop-blocked"):
            time.sleep(timings.block_s)  # the synchronous call that blocks the loop
            _asyncio_log.warning("Executing %s took %.3f seconds",
                                 "<Task pending name='agent-data_helper' coro=<DataHelperAgent."
                                 "execute() running at data_helper_agent.py:212>>",
                                 state.clock() - tool_start)
        elif agent == "data_helper" and settings.has("proxy-idle-cut"):
            await asyncio.sleep(timings.silent_step_s)
        else:
            await asyncio.sleep(tool_s)
        ms = round((state.clock() - tool_start) * 1000)
        result: dict[str, Any] = (final_report(agents, text) if agent == "reporting"
                                  else {"agent": agent, "status": "ok"})
        if agent == "data_helper" and settings.has("missing-event"):
            state.log.log("emit_failed", "WARNING", ctx, event="tool_completed",
                          run_id=run.run_id)
        else:
            await emit("tool_completed", {"execution_id": execution_id, "result": result,
                                          "execution_time_ms": ms})
        await emit("agent_completed", {"result": result, "execution_time_ms": ms})
        state.log.log("agent_done", "INFO", ctx, agent=agent, run_id=run.run_id,
                      elapsed=state.clock() - start)

    async def _emit(self, run: RunContext, ctx: LogContext, frame: dict[str, Any]) -> None:
        target: Session = self
        if self.state.settings.has("cross-user-bleed"):
            owners = [s for s in self.state.sessions if s.user_id == run.thread_id and s.open]
            if owners:
                target = owners[-1]
            else:
                if frame["type"] == "agent_started":
                    self.state.log.log("no_user_connection", "WARNING", ctx, key=run.thread_id)
                live = [s for s in self.state.sessions if s.open]
                target = live[-1] if live else self
        self.events += 1
        delivered = await target.send(frame)
        if target is self and not delivered:
            raise _Gone
        if not self.open:
            raise _Gone

    async def _component_failure(self, ctx: LogContext) -> None:
        """The old route's "component-specific close code" for a failure (1005 or 1006)."""
        state = self.state
        if connection_hit(state.settings.seed, "reserved", self.ordinal, 0.5):
            code, component, error = 1005, "Database", "session factory initialization failed"
        else:
            code, component, error = 1006, "Dependencies", "required services unavailable"
        state.log.log("component_error", "ERROR", ctx, component=component, code=code,
                      error=error)
        await self.send(legacy_component_error(code, component, error, self.user_id,
                                               now=state.clock()))
        raw_close = self.wire("raw_close")
        self.open = False
        if raw_close is not None:
            raw_close(code, f"{component}: {error}"[:50])
        else:
            await self.ws.close(code=1011, reason=f"{component}: {error}"[:50])
