"""The backend's own application log lines, in its two JSON formatters and two wordings.

``gcp`` is ``netra_backend/app/core/logging_formatters.py::gcp_json_formatter`` (the shape of
real staging excerpts: ``labels`` and ``trace`` stay inside ``jsonPayload``); ``unified`` is the
loguru SSOT formatter (``service``, ``logger``, ``trace_id``, ``textPayload`` copy, ...). The
``alt`` wording rewords every message so that rules can be shown to match on shape, not text.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from uvs_analysis.testbed.cloudrun_logs import LogEntryWriter

__all__ = ["MESSAGES", "AppLogger", "LogContext"]

#: key -> (module, function, default wording, alt wording).
MESSAGES: Final[Mapping[str, tuple[str, str, str, str]]] = MappingProxyType({
    "startup_phase": (
        "netra_backend.app.websocket_core.gcp_initialization_validator",
        "validate_gcp_readiness_for_websocket",
        "[🔴] RACE CONDITION DETECTED: Startup phase '{phase}' did not reach 'services' within "
        "{waited:.1f}s - this would cause WebSocket 1011 errors",
        "Startup phase '{phase}' still short of 'services' after {waited:.1f}s; WebSocket "
        "sessions opened now may not get a manager"),
    "reject_not_ready": (
        "netra_backend.app.middleware.gcp_websocket_readiness_middleware", "_reject_websocket",
        "[🚫] Rejecting WebSocket connection (Issue #449 protection) - State: {state}, Failed "
        "services: {failed}, Error: service_not_ready, Path: {path}",
        "WebSocket upgrade refused with {status} while warming up (state={state}, "
        "pending={failed}, path={path})"),
    "services_failed": (
        "netra_backend.app.websocket_core.gcp_initialization_validator", "validate_service_group",
        "❌ Service group validation FAILED: {ready}/{total} services ready. Failed services: "
        "{failed}",
        "Only {ready} of {total} backing services answered; missing: {failed}"),
    "db_unavailable": (
        "netra_backend.app.db.postgres_core", "get_session_factory",
        "Database unavailable (session factory initialization failed - check database URL and "
        "connectivity): connection to {host}:5432 refused",
        "Could not open a Postgres session to {host}:5432 (connect: connection refused)"),
    "redis_unavailable": (
        "netra_backend.app.redis_manager", "check_readiness",
        "Redis readiness check failed: Error 111 connecting to {host}:6379. Connection refused.",
        "Cache backend {host}:6379 did not accept the connection (errno 111)"),
    "manager_failure": (
        "netra_backend.app.routes.websocket_ssot", "_handle_main_mode",
        "ALERT:  GOLDEN PATH MANAGER FAILURE: Failed to create WebSocket manager for user "
        "{user8}... connection {conn}",
        "WebSocket manager unavailable for user {user8}... on {conn}; closing with {code}"),
    "auth_exhausted": (
        "netra_backend.app.websocket_core.unified_auth_ssot", "authenticate_websocket_connection",
        "❌ WebSocket authentication FAILED - all methods exhausted. Auth header: {header}, "
        "Subprotocol: {subprotocol}, Query keys: {query_keys}",
        "No credential accepted on the handshake (authorization={header}, "
        "subprotocol={subprotocol}, query={query_keys})"),
    "auth_failed": (
        "netra_backend.app.routes.websocket_ssot", "_handle_main_mode",
        "ALERT:  GOLDEN PATH AUTH FAILURE: WebSocket authentication failed for connection {conn} "
        "- {kind}: {detail} (method: {method})",
        "Handshake credential rejected on {conn} ({method}; {kind}: {detail})"),
    "auth_ok": (
        "netra_backend.app.auth_integration.auth_permissiveness",
        "authenticate_with_permissiveness",
        "[🔑] GOLDEN PATH AUTH=REDACTED permissive authentication with circuit breaker for "
        "connection {conn} - user_id: {user8}..., method: {method}",
        "{conn} authenticated as {user8}... via {method}"),
    "no_subprotocol": (
        "netra_backend.app.routes.websocket_ssot", "_negotiate_subprotocol",
        "No supported subprotocols offered (offered: {offered}) - closing before accept",
        "Subprotocol negotiation found nothing usable among {offered}"),
    "connected": (
        "netra_backend.app.routes.websocket_ssot", "_handle_main_mode",
        "WebSocket connection established: {conn} (mode: main, user: {user8}...)",
        "{conn} ready for user {user8}... in main mode"),
    "disconnected": (
        "netra_backend.app.routes.websocket_ssot", "_cleanup_connection",
        "WebSocket {conn} disconnected after {elapsed:.2f}s: code={code} reason={reason!r}",
        "{conn} gone after {elapsed:.2f}s (close {code}, {reason!r})"),
    "run_started": (
        "netra_backend.app.agents.supervisor.workflow_orchestrator", "execute_standard_workflow",
        "Starting agent workflow for run {run_id} (thread {thread_id}): {workflow}",
        "run {run_id} on thread {thread_id} will execute {workflow}"),
    "agent_done": (
        "netra_backend.app.agents.supervisor.workflow_orchestrator", "_execute_step",
        "Agent {agent} completed for run {run_id} in {elapsed:.2f}s",
        "{agent} finished ({elapsed:.2f}s) in run {run_id}"),
    "run_done": (
        "netra_backend.app.agents.supervisor.workflow_orchestrator", "execute_standard_workflow",
        "Agent workflow completed for run {run_id} in {elapsed:.2f}s (report: {report_type})",
        "run {run_id} delivered a {report_type} report after {elapsed:.2f}s"),
    "coordination": (
        "netra_backend.app.agents.supervisor.agent_coordination_validator", "validate",
        "COORDINATION VALIDATION FAILED for workflow {run_id}: Order: {order}, Handoffs: ok, "
        "Propagation: ok",
        "Workflow {run_id} executed agents as {order}, which the coordination check refuses"),
    "emit_failed": (
        "netra_backend.app.services.agent_websocket_bridge", "_emit_with_retry",
        "Failed to emit {event} for run {run_id} after 3 attempts",
        "{event} of run {run_id} could not be delivered (3 tries)"),
    "no_user_connection": (
        "netra_backend.app.websocket_core.unified_manager", "send_to_thread",
        "No active WebSocket connections for user {key}; delivering to most recent connection",
        "user {key} has no socket; event handed to the newest connection"),
    "component_error": (
        "netra_backend.app.routes.websocket", "websocket_endpoint",
        "🎯 ERROR CLASSIFIED: {component} failure (Code: {code}) - {error}",
        "{component} problem mapped to close code {code}: {error}"),
    "run_failed": (
        "netra_backend.app.agents.supervisor.workflow_orchestrator", "execute_standard_workflow",
        "Agent workflow failed for run {run_id}: {error}",
        "run {run_id} aborted: {error}"),
    "shutdown": (
        "netra_backend.app.core.lifespan_manager", "shutdown",
        "Application shutdown: closing {count} active WebSocket connections",
        "Shutting down with {count} WebSocket sessions open"),
    "bad_message": (
        "netra_backend.app.routes.websocket_ssot", "_main_message_loop",
        "Invalid message on {conn}: {error}",
        "{conn} sent an unreadable message ({error})"),
})


@dataclass(frozen=True)
class LogContext:
    """Who a log line is about; empty fields are left out."""

    connection_id: str | None = None
    user_id: str | None = None
    run_id: str | None = None
    thread_id: str | None = None
    trace_id: str | None = None
    request_id: str | None = None


class AppLogger:
    """Format application log lines and hand them to Cloud Run's stdout capture."""

    def __init__(self, writer: LogEntryWriter, *, log_format: str, wording: str,
                 service_label: str = "netra-backend") -> None:
        self.writer = writer
        self.log_format = log_format
        self.alt = wording == "alt"
        self.service_label = service_label

    def render(self, key: str, /, **values: Any) -> str:
        """The message text for ``key`` in the configured wording."""
        default, alt = MESSAGES[key][2:]
        return (alt if self.alt else default).format(**values)

    def log(self, key: str, severity: str, ctx: LogContext | None = None, /, *,
            exc: BaseException | None = None, **values: Any) -> None:
        """Write one application log line; ``exc`` adds the backend's ``error`` block."""
        module, function = MESSAGES[key][:2]
        ctx = ctx or LogContext()
        known = {"conn": ctx.connection_id, "user8": (ctx.user_id or "")[:8],
                 "run_id": ctx.run_id, "thread_id": ctx.thread_id}
        message = self.render(key, **{**known, **values})
        obj = (self._gcp if self.log_format == "gcp" else self._unified)(
            severity, message, module, function, ctx, exc)
        self.writer.stdout_json(obj)

    def _gcp(self, severity: str, message: str, module: str, function: str, ctx: LogContext,
             error: BaseException | None) -> dict[str, Any]:
        now = self.writer.clock()
        labels: dict[str, str] = {"module": module, "function": function,
                                  "line": str(100 + len(function) * 7)}
        if ctx.request_id:
            labels["request_id"] = ctx.request_id
        if ctx.user_id:
            labels["user_id"] = ctx.user_id
        context = {"name": module, "service": "netra-service"}
        context.update({k: v for k, v in (("connection_id", ctx.connection_id),
                                          ("run_id", ctx.run_id),
                                          ("thread_id", ctx.thread_id)) if v})
        obj: dict[str, Any] = {
            "severity": severity,
            "message": message.replace("\n", "\\n"),
            "timestamp": datetime.fromtimestamp(now, UTC).isoformat(),
            "labels": labels,
            "context": context,
        }
        if ctx.trace_id:
            obj["trace"] = self.writer.trace_name(ctx.trace_id)
        if error is not None:
            obj["error"] = {"type": type(error).__name__, "value": str(error),
                            "traceback": _traceback(error)}
        return obj

    def _unified(self, severity: str, message: str, module: str, function: str, ctx: LogContext,
                 error: BaseException | None) -> dict[str, Any]:
        now = self.writer.clock()
        obj: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "severity": severity,
            "service": self.service_label,
            "logger": module,
            "message": message,
            "request_id": ctx.request_id,
            "user_id": ctx.user_id,
            "trace_id": ctx.trace_id,
            "event_type": function,
        }
        obj.update({k: v for k, v in (("connection_id", ctx.connection_id),
                                      ("run_id", ctx.run_id),
                                      ("thread_id", ctx.thread_id)) if v})
        if error is not None:
            obj["error"] = {"type": type(error).__name__, "message": str(error),
                            "traceback": _traceback(error)}
        obj["textPayload"] = message
        obj["validation"] = {"validated_at": obj["timestamp"], "message_length": len(message),
                             "severity": severity, "zero_empty_guarantee": True}
        return obj


def _traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))
