"""Agent events in the backend's three shapes, normalized (pure).

The backend emits the five critical events in three disagreeing shapes:

- ``bridge``: ``{type, run_id, user_id, agent_name, [tool_name], timestamp, data: {...}}``;
- ``flat``: ``{type, critical: true, user_id, thread_id, [agent_name], [tool_name], ...}`` with
  no wrapper (agent_thinking/agent_completed may lack agent_name);
- ``validator``: ``{type, run_id, agent_name, timestamp, payload: {...}}``.

Server messages built by ``create_server_message`` put everything but ``type`` under ``data``
(shape ``message``). Fields are looked up at the top level, then in ``data``, then ``payload``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

__all__ = [
    "AGENT_EVENTS",
    "CRITICAL_EVENTS",
    "REPORT_TYPES",
    "ParsedEvent",
    "parse_event",
]

#: The five events the backend must always deliver, in lifecycle order.
CRITICAL_EVENTS: Final = (
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_completed",
)
#: Every frame type that counts as an agent event (the first one ends "before first event").
AGENT_EVENTS: Final = frozenset({*CRITICAL_EVENTS, "agent_error", "agent_death"})
#: Frame types that deliver a final report by themselves.
REPORT_TYPES: Final = frozenset({"final_report", "report"})
_RESULT_KEYS: Final = ("result", "final_response", "report", "final_report", "results")


@dataclass(frozen=True)
class ParsedEvent:
    """The fields of one server message that the checks need."""

    event_type: str | None
    agent_name: str | None = None
    tool_name: str | None = None
    run_id: str | None = None
    user_id: str | None = None
    thread_id: str | None = None
    shape: str = ""
    has_result: bool = False


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value)
    return text or None


def _field(obj: dict[str, Any], key: str) -> str | None:
    for container in (obj, obj.get("data"), obj.get("payload")):
        if isinstance(container, dict):
            value = _str(container.get(key))
            if value is not None:
                return value
    return None


def _has_result(obj: dict[str, Any]) -> bool:
    for container in (obj, obj.get("data"), obj.get("payload")):
        if isinstance(container, dict):
            for key in _RESULT_KEYS:
                if container.get(key) not in (None, "", {}, []):
                    return True
    return False


def _shape(obj: dict[str, Any]) -> str:
    if obj.get("critical") is True or ("thread_id" in obj and "data" not in obj):
        return "flat"
    if isinstance(obj.get("payload"), dict) and "data" not in obj:
        return "validator"
    if isinstance(obj.get("data"), dict):
        return "bridge" if "run_id" in obj or "agent_name" in obj else "message"
    return "flat"


_NOT_EVENT: Final = ParsedEvent(event_type=None)


def parse_event(text: str | bytes) -> ParsedEvent:
    """Parse one message; never raises. Non-JSON or non-object messages have no event_type."""
    try:
        obj = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return _NOT_EVENT
    if not isinstance(obj, dict):
        return _NOT_EVENT
    event_type = _str(obj.get("type")) or _str(obj.get("event"))
    return ParsedEvent(
        event_type=event_type,
        agent_name=_field(obj, "agent_name") or _field(obj, "agent"),
        tool_name=_field(obj, "tool_name") or _field(obj, "tool"),
        run_id=_field(obj, "run_id"),
        user_id=_field(obj, "user_id"),
        thread_id=_field(obj, "thread_id"),
        shape=_shape(obj) if event_type in AGENT_EVENTS else ("message" if event_type else ""),
        has_result=_has_result(obj),
    )
