"""The agent pipeline and the frames the backend sends, in its three event shapes.

* ``bridge``: ``agent_websocket_bridge`` events, with a ``data`` wrapper and an ISO timestamp.
* ``flat``: ``unified_manager.emit_critical_event``, flat, ``"critical": true``, float timestamp.
* ``validator``: ``event_validator.EVENT_SCHEMAS``, ``{run_id, agent_name, timestamp, payload}``.

Everything here is pure: callers pass the clock reading and get dictionaries back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "CRITICAL_EVENTS",
    "AgentStep",
    "RunContext",
    "agent_event",
    "connection_established",
    "error_frame",
    "final_report",
    "heartbeat",
    "legacy_component_error",
    "plan_workflow",
    "server_message",
    "triage_sufficiency",
]

CRITICAL_EVENTS: Final = ("agent_started", "agent_thinking", "tool_executing", "tool_completed",
                          "agent_completed")
TOOLS: Final = {"triage": "request_classifier", "data_helper": "data_request_generator",
                "data": "usage_data_query", "optimization": "cost_optimizer",
                "reporting": "report_builder"}


@dataclass(frozen=True)
class RunContext:
    """Identifiers of one agent run."""

    run_id: str
    user_id: str
    thread_id: str


@dataclass(frozen=True)
class AgentStep:
    """One agent of a workflow and how long its tool runs (seconds)."""

    agent: str
    tool_s: float


def triage_sufficiency(user_request: str, mode: str) -> str:
    """Triage's data-sufficiency verdict: fixed by ``mode``, or from the request (``auto``).

    In ``auto`` mode a request quoting three or more figures counts as carrying enough data.
    """
    if mode != "auto":
        return mode
    return "sufficient" if len(re.findall(r"\d+(?:\.\d+)?", user_request)) >= 3 else "insufficient"


def plan_workflow(sufficiency: str, *, swap_order: bool = False) -> tuple[str, ...]:
    """Agents in run order: triage -> data_helper -> [optimization ->] reporting.

    ``swap_order`` models the pipeline-order fault: reporting runs before data_helper.
    """
    agents = ["triage", "data_helper"]
    if sufficiency == "sufficient":
        agents.append("optimization")
    agents.append("reporting")
    if swap_order:
        agents.remove("reporting")
        agents.insert(1, "reporting")
    return tuple(agents)


def iso(ts: float) -> str:
    """ISO-8601 UTC with offset, as the bridge writes it."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


def server_message(kind: str, data: Mapping[str, Any], *, now: float) -> dict[str, Any]:
    """``create_server_message``: ``{type, data, timestamp, server_id, correlation_id}``."""
    return {"type": kind, "data": dict(data), "timestamp": now, "server_id": None,
            "correlation_id": None}


def connection_established(connection_id: str, user_id: str, *, now: float) -> dict[str, Any]:
    """The first frame of a main-mode session."""
    return server_message("connection_established", {
        "mode": "main",
        "user_id": user_id[:8] + "...",
        "connection_id": connection_id,
        "golden_path_events": list(CRITICAL_EVENTS),
        "features": {"full_business_logic": True, "golden_path_integration": True,
                     "cloud_run_optimized": True, "emergency_fallback": True,
                     "agent_orchestration": True},
        "timestamp": iso(now),
    }, now=now)


def heartbeat(connection_id: str, messages: int, events: int, *, now: float) -> dict[str, Any]:
    """A periodic heartbeat frame."""
    return server_message("heartbeat", {
        "connection_id": connection_id, "timestamp": iso(now),
        "stats": {"messages_processed": messages, "agent_events_processed": events},
    }, now=now)


def error_frame(code: str, message: str, *, now: float) -> dict[str, Any]:
    """``create_error_message``: the backend's error frame."""
    return {"type": "error_message", "error_code": code, "error_message": message, "details": {},
            "timestamp": now, "recovery_suggestions": None}


def legacy_component_error(code: int, component: str, message: str, user_id: str, *,
                           now: float) -> dict[str, Any]:
    """The old route's ``WebSocketComponentError.to_websocket_response``."""
    return {"type": "error", "error": {"code": code, "component": component, "message": message,
                                       "user_id": user_id, "timestamp": iso(now), "details": {},
                                       "root_cause": None}}


def final_report(agents: tuple[str, ...], user_request: str) -> dict[str, Any]:
    """The reporting agent's result: never empty, always with ``next_steps``."""
    sections = [a for a in agents if a in ("triage", "data_helper", "data", "optimization")]
    report_type = ("full_analysis" if len(sections) >= 3 else
                   "partial" if sections else "guidance")
    return {
        "report_type": report_type,
        "summary": f"Analysis of: {user_request[:80]}",
        "sections": sections,
        "next_steps": ["Share usage data for the last 30 days",
                       "Review the recommended configuration changes"],
    }


def _bridge_data(event: str, agent: str, tool: str, seq: int, extra: Mapping[str, Any]
                 ) -> dict[str, Any]:
    if event == "agent_started":
        return {"status": "started", "context": {},
                "message": f"{agent} has started processing your request"}
    if event == "agent_thinking":
        return {"reasoning": f"{agent} is analysing the request", "step_number": seq,
                "progress_percentage": min(95, 20 * seq), "status": "thinking",
                "business_progress": {"phase": agent, "value_indicators": [],
                                      "actionable_insights": [], "technical_specificity": "medium",
                                      "business_impact": "pending"}}
    if event == "tool_executing":
        return {"parameters": {"scope": "account"}, "status": "executing",
                "message": f"{agent} is using {tool}"}
    if event == "tool_completed":
        return {"result": extra.get("result", {"ok": True}),
                "execution_time_ms": extra.get("execution_time_ms", 0), "status": "completed",
                "message": f"{tool} finished"}
    return {"status": "completed", "result": extra.get("result", {"ok": True}),
            "execution_time_ms": extra.get("execution_time_ms", 0),
            "message": f"{agent} has completed processing your request"}


def _flat_fields(event: str, agent: str, tool: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    if event == "agent_started":
        return {"agent_name": agent, "task_description": f"{agent} step"}
    if event == "agent_thinking":
        return {"agent_name": agent, "reasoning": f"{agent} is analysing the request"}
    if event == "tool_executing":
        return {"agent_name": agent, "tool_name": tool, "tool_args": {"scope": "account"},
                "parameters": {"scope": "account"}, "execution_id": extra.get("execution_id")}
    if event == "tool_completed":
        ms = extra.get("execution_time_ms", 0)
        return {"agent_name": agent, "tool_name": tool,
                "results": extra.get("result", {"ok": True}),
                "execution_time": ms / 1000, "duration": ms / 1000, "success": True,
                "execution_id": extra.get("execution_id")}
    return {"agent_name": agent, "status": "completed",
            "final_response": extra.get("result", {"ok": True})}


def agent_event(shape: str, event: str, ctx: RunContext, agent: str, *, now: float, seq: int = 1,
                extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One critical event for ``agent`` in the requested shape.

    ``extra`` may carry ``result``, ``execution_time_ms`` and ``execution_id``.
    """
    extra = extra or {}
    tool = TOOLS.get(agent, f"{agent}_tool")
    ids = {"run_id": ctx.run_id, "user_id": ctx.user_id, "thread_id": ctx.thread_id}
    if shape == "flat":
        return {"type": event, **ids, **_flat_fields(event, agent, tool, extra),
                "critical": True, "timestamp": now}
    data = _bridge_data(event, agent, tool, seq, extra)
    if shape == "validator":
        return {"type": event, **ids, "agent_name": agent, "timestamp": iso(now), "payload": data}
    frame: dict[str, Any] = {"type": event, **ids, "agent_name": agent, "timestamp": iso(now)}
    if event in ("tool_executing", "tool_completed"):
        frame["tool_name"] = tool
    if event == "tool_completed":
        frame["results"] = data["result"]
    frame["data"] = data
    return frame
