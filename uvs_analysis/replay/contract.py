"""The agent-run contract and its SLOs: pure checks over one recorded run.

A run is the messages a try received after asking for an agent run. The contract accepts the
backend's three event shapes (see ``events``):

- ``missing_event``: all five critical events present;
- ``agent_not_started_first`` / ``agent_not_completed_last``: for each agent, agent_started is
  its first event and agent_completed its last;
- ``unmatched_tool``: every tool_executing is matched by a tool_completed (same agent and tool);
- ``agent_order``: the agents present run in the expected relative order;
- ``missing_agent``: every agent of the required workflow ran;
- ``no_final_report``: a final report was delivered;
- ``expected_type_missing``: every message type a capture expected was seen;
- ``slo_data`` / ``slo_report``: data processing and report delivery within their SLOs.

Stage latencies use the client's receive times: what a user waits for.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from uvs_analysis.replay.events import CRITICAL_EVENTS, REPORT_TYPES
from uvs_analysis.replay.trace import AttemptTrace, FrameRecord

__all__ = [
    "DEFAULT_ORDER",
    "ContractParams",
    "ContractResult",
    "ContractViolation",
    "check_contract",
    "is_run",
]

#: The backend's agents in the only order they may run (any subset, this relative order).
DEFAULT_ORDER = ("triage", "data_helper", "data", "optimization", "actions", "reporting")


@dataclass(frozen=True)
class ContractParams:
    """What a run must satisfy.

    Attributes:
        order: agents in their required relative order (agents not listed are not ordered).
        required_agents: agents that must run (the expected workflow), e.g.
            ``("triage", "data_helper", "reporting")``; empty means none in particular.
        report_agent: the agent whose completion delivers the final report.
        data_agents: the agents that make up the data processing stage.
        slo_data_s: data processing SLO (first data agent started -> last completed).
        slo_report_s: report delivery SLO (report agent started -> report delivered).
        expected_types: message types a capture saw; each must appear (empty: no check).
    """

    order: tuple[str, ...] = DEFAULT_ORDER
    required_agents: tuple[str, ...] = ()
    report_agent: str = "reporting"
    data_agents: tuple[str, ...] = ("data_helper", "data")
    slo_data_s: float = 5.0
    slo_report_s: float = 2.0
    expected_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContractViolation:
    """One broken rule, with the frame that shows it (if one does)."""

    rule: str
    detail: str
    frame_index: int | None = None


@dataclass(frozen=True)
class ContractResult:
    """The contract verdict for one run.

    Attributes:
        attempt, try_index: which try.
        violations: broken rules (empty when the run honours the contract).
        agents: agents in the order they started.
        data_s, report_s: stage latencies in seconds (None when the stage did not finish).
        slo_breaches: the SLO rules broken ("slo_data", "slo_report").
    """

    attempt: int
    try_index: int
    violations: tuple[ContractViolation, ...]
    agents: tuple[str, ...]
    data_s: float | None
    report_s: float | None
    slo_breaches: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """No violation."""
        return not self.violations


def is_run(trace: AttemptTrace) -> bool:
    """Whether a try ran an agent pipeline: it opened, asked for a run and got an agent event.

    Tries that failed before any agent event are judged by their outcome, not the contract.
    """
    return trace.opened and trace.messages_sent > 0 and trace.agent_events > 0


def _attributed(frames: Sequence[FrameRecord]) -> list[tuple[FrameRecord, str | None]]:
    """Pair each agent event with its agent; events without agent_name go to the open agent."""
    current: str | None = None
    out = []
    for frame in frames:
        if frame.direction != "recv" or frame.event_type not in CRITICAL_EVENTS:
            continue
        agent = frame.agent_name
        if frame.event_type == "agent_started" and agent:
            current = agent
        agent = agent or current
        out.append((frame, agent))
        if frame.event_type == "agent_completed" and agent == current:
            current = None
    return out


def check_contract(trace: AttemptTrace, params: ContractParams | None = None) -> ContractResult:
    """Check one run against the contract and the SLOs."""
    p = params or ContractParams()
    v: list[ContractViolation] = []
    frames = [f for f in trace.frames if f.direction == "recv"]
    events = _attributed(frames)
    attributed = {f.index: agent for f, agent in events}
    seen_types = Counter(f.event_type for f, _ in events)
    for name in CRITICAL_EVENTS:
        if not seen_types[name]:
            v.append(ContractViolation("missing_event", f"no {name} event was received"))

    by_agent: dict[str, list[FrameRecord]] = {}
    for frame, agent in events:
        by_agent.setdefault(agent or "?", []).append(frame)
    for agent, evs in by_agent.items():
        if evs[0].event_type != "agent_started":
            v.append(ContractViolation(
                "agent_not_started_first",
                f"{agent}: first event is {evs[0].event_type}, not agent_started",
                evs[0].index))
        if evs[-1].event_type != "agent_completed":
            v.append(ContractViolation(
                "agent_not_completed_last",
                f"{agent}: last event is {evs[-1].event_type}, not agent_completed",
                evs[-1].index))
        pending: Counter[str] = Counter()
        for ev in evs:
            tool = ev.tool_name or "?"
            if ev.event_type == "tool_executing":
                pending[tool] += 1
            elif ev.event_type == "tool_completed":
                if pending[tool] > 0:
                    pending[tool] -= 1
                else:
                    v.append(ContractViolation(
                        "unmatched_tool", f"{agent}: tool_completed for {tool} without "
                        "tool_executing", ev.index))
        for tool, count in pending.items():
            if count:
                v.append(ContractViolation(
                    "unmatched_tool", f"{agent}: {count} tool_executing for {tool} never "
                    "completed"))

    started: list[tuple[str, FrameRecord]] = []
    for frame, agent in events:
        if frame.event_type == "agent_started" and agent and agent not in dict(started):
            started.append((agent, frame))
    agents = tuple(a for a, _ in started)
    rank = {name: i for i, name in enumerate(p.order)}
    ordered = [(a, f) for a, f in started if a in rank]
    for (a1, _), (a2, f2) in itertools.pairwise(ordered):
        if rank[a2] < rank[a1]:
            v.append(ContractViolation(
                "agent_order", f"{a2} started after {a1}; expected {a2} before {a1}", f2.index))
    for agent in p.required_agents:
        if agent not in agents:
            v.append(ContractViolation("missing_agent", f"the workflow agent {agent} never ran"))

    report = next(
        (f for f in frames if f.event_type in REPORT_TYPES
         or (f.event_type == "agent_completed" and f.has_result
             and attributed.get(f.index) == p.report_agent)),
        None,
    )
    if report is None:
        v.append(ContractViolation("no_final_report", "no final report was delivered"))
    if p.expected_types:
        all_types = {f.event_type for f in frames}
        for name in dict.fromkeys(p.expected_types):
            if name not in all_types:
                v.append(ContractViolation(
                    "expected_type_missing", f"the capture had {name} but this run did not"))

    data_s = _stage(events, p.data_agents, end_frame=None)
    report_s = _stage(events, (p.report_agent,), end_frame=report)
    breaches = []
    if data_s is not None and data_s > p.slo_data_s:
        breaches.append("slo_data")
        v.append(ContractViolation("slo_data",
                                   f"data processing took {data_s:.2f} s > {p.slo_data_s} s"))
    if report_s is not None and report_s > p.slo_report_s:
        breaches.append("slo_report")
        v.append(ContractViolation("slo_report",
                                   f"report delivery took {report_s:.2f} s > {p.slo_report_s} s"))
    return ContractResult(trace.attempt, trace.try_index, tuple(v), agents, data_s, report_s,
                          tuple(breaches))


def _stage(
    events: list[tuple[FrameRecord, str | None]],
    agents: Sequence[str],
    *,
    end_frame: FrameRecord | None,
) -> float | None:
    starts = [f.t_ms for f, a in events if a in agents and f.event_type == "agent_started"]
    if not starts:
        return None
    if end_frame is not None:
        end = end_frame.t_ms
    else:
        ends = [f.t_ms for f, a in events if a in agents and f.event_type == "agent_completed"]
        if not ends:
            return None
        end = max(ends)
    return max(0.0, (end - min(starts)) / 1000.0)
