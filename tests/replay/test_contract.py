"""Tests for the agent-run contract and SLOs (pure, all three event shapes)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from uvs_analysis.replay.contract import ContractParams, check_contract, is_run
from uvs_analysis.replay.events import parse_event
from uvs_analysis.replay.trace import AttemptTrace, FrameRecord, trace_from_dict

from .conftest import agent_events

DATA = Path(__file__).parent / "data"
RECORDED = json.loads((DATA / "testbed_traces.json").read_text())
T0 = datetime(2025, 9, 10, 21, 30, tzinfo=UTC)
SHAPES = ["bridge", "flat", "validator"]


def run_of(events: list[dict[str, Any]], step_ms: float = 10.0) -> AttemptTrace:
    frames = []
    for i, ev in enumerate(events):
        text = json.dumps(ev)
        p = parse_event(text)
        frames.append(FrameRecord(
            index=i, direction="recv", t_ms=i * step_ms, opcode="text", size=len(text),
            text=text, event_type=p.event_type, agent_name=p.agent_name, tool_name=p.tool_name,
            run_id=p.run_id, user_id=p.user_id, thread_id=p.thread_id, shape=p.shape,
            has_result=p.has_result))
    return AttemptTrace(attempt=0, try_index=0, user=0, thread_id="t", url="ws://x",
                        started_at=T0, ended_at=T0, http_status=101, frames=tuple(frames),
                        frames_total=len(frames), messages_sent=1, agent_events=len(frames),
                        completed=True)


@pytest.mark.parametrize("shape", SHAPES)
def test_healthy_run_honours_the_contract(shape: str) -> None:
    """A full triage -> data_helper -> reporting run passes in every shape."""
    result = check_contract(run_of(agent_events(shape, thread_id="t")),
                            ContractParams(required_agents=("triage", "data_helper", "reporting")))
    assert result.violations == ()
    assert result.agents == ("triage", "data_helper", "reporting")
    assert result.data_s is not None and result.report_s is not None


@pytest.mark.parametrize("name", ["healthy_bridge", "healthy_flat", "healthy_validator"])
def test_recorded_healthy_testbed_runs(name: str) -> None:
    """Recorded healthy testbed runs give no violation."""
    trace = trace_from_dict(RECORDED[name])
    assert is_run(trace)
    assert check_contract(trace, ContractParams(slo_data_s=1.0, slo_report_s=1.0)).ok


def test_recorded_pipeline_order_violation() -> None:
    """The recorded pipeline-order fault breaks agent_order."""
    result = check_contract(trace_from_dict(RECORDED["pipeline_order"]))
    assert "agent_order" in {v.rule for v in result.violations}


def test_recorded_missing_event() -> None:
    """The recorded missing-event fault leaves an unmatched tool_executing."""
    result = check_contract(trace_from_dict(RECORDED["missing_event"]))
    assert "unmatched_tool" in {v.rule for v in result.violations}


@pytest.mark.parametrize("shape", SHAPES)
def test_missing_critical_event(shape: str) -> None:
    """Dropping every agent_thinking is reported as a missing critical event."""
    result = check_contract(run_of(agent_events(shape, thread_id="t", skip=("agent_thinking",))))
    assert [v.detail for v in result.violations if v.rule == "missing_event"] == \
        ["no agent_thinking event was received"]


@pytest.mark.parametrize("shape", SHAPES)
def test_order_and_first_last(shape: str) -> None:
    """Reporting before data_helper breaks the order; an event before agent_started is flagged."""
    events = agent_events(shape, thread_id="t", agents=("triage", "reporting", "data_helper"))
    rules = {v.rule for v in check_contract(run_of(events)).violations}
    assert "agent_order" in rules
    shuffled = agent_events(shape, thread_id="t")
    shuffled[0], shuffled[1] = shuffled[1], shuffled[0]
    rules = {v.rule for v in check_contract(run_of(shuffled)).violations}
    assert "agent_not_started_first" in rules


def test_unmatched_tool_and_no_report() -> None:
    """A tool that never completes and a run with no report are both violations."""
    events = agent_events("bridge", thread_id="t", skip=("tool_completed",))
    rules = [v.rule for v in check_contract(run_of(events)).violations]
    assert rules.count("unmatched_tool") == 3
    no_report = agent_events("bridge", thread_id="t", agents=("triage", "data_helper"))
    assert "no_final_report" in {v.rule for v in check_contract(run_of(no_report)).violations}


def test_slo_breaches_use_the_parameters() -> None:
    """Stage latencies above their SLO are breaches; raising the SLO clears them."""
    trace = run_of(agent_events("bridge", thread_id="t"), step_ms=300.0)
    strict = check_contract(trace, ContractParams(slo_data_s=0.5, slo_report_s=0.5))
    assert set(strict.slo_breaches) == {"slo_data", "slo_report"}
    assert strict.data_s == pytest.approx(1.2)
    lenient = check_contract(trace, ContractParams(slo_data_s=5, slo_report_s=5))
    assert lenient.slo_breaches == ()


def test_missing_workflow_agent_and_expected_types() -> None:
    """A required agent that never ran and an expected type never seen are named."""
    trace = run_of(agent_events("bridge", thread_id="t"))
    result = check_contract(trace, ContractParams(required_agents=("optimization",),
                                                  expected_types=("heartbeat",)))
    assert {v.rule for v in result.violations} == {"missing_agent", "expected_type_missing"}


def test_is_run_needs_an_agent_event() -> None:
    """Tries without a sent message or without any agent event are not runs."""
    trace = run_of(agent_events("bridge", thread_id="t"))
    assert is_run(trace)
    assert not is_run(replace(trace, messages_sent=0))
    assert not is_run(replace(trace, agent_events=0))
