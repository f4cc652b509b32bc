"""Workflow plans and the three event shapes."""

from __future__ import annotations

import pytest

from uvs_analysis.testbed.workflow import (
    CRITICAL_EVENTS,
    RunContext,
    agent_event,
    connection_established,
    error_frame,
    final_report,
    plan_workflow,
    triage_sufficiency,
)

CTX = RunContext("run_1", "user-1", "thread-1")
NOW = 1_760_000_000.5


def test_triage_decides_from_figures_in_auto_mode() -> None:
    """Three or more figures count as enough data; fixed modes override."""
    assert triage_sufficiency("spend 10 on 2 vms and 3 dbs", "auto") == "sufficient"
    assert triage_sufficiency("help me save", "auto") == "insufficient"
    assert triage_sufficiency("help me save", "sufficient") == "sufficient"


def test_plans_follow_the_uvs_flow_and_the_order_fault() -> None:
    """Default flow, the optimization flow, and reporting moved ahead for pipeline-order."""
    assert plan_workflow("insufficient") == ("triage", "data_helper", "reporting")
    assert plan_workflow("sufficient") == ("triage", "data_helper", "optimization", "reporting")
    assert plan_workflow("insufficient", swap_order=True) == ("triage", "reporting",
                                                              "data_helper")


@pytest.mark.parametrize("event", CRITICAL_EVENTS)
def test_shapes_carry_the_same_identifiers(event: str) -> None:
    """bridge, flat and validator frames all carry run/user/thread ids, agent and timestamp."""
    frames = {shape: agent_event(shape, event, CTX, "data_helper", now=NOW)
              for shape in ("bridge", "flat", "validator")}
    for frame in frames.values():
        assert frame["type"] == event
        assert (frame["run_id"], frame["user_id"], frame["thread_id"]) == (
            "run_1", "user-1", "thread-1")
    assert frames["bridge"]["agent_name"] == "data_helper" and "data" in frames["bridge"]
    assert frames["flat"]["critical"] is True and frames["flat"]["timestamp"] == NOW
    assert "payload" in frames["validator"] and isinstance(frames["validator"]["timestamp"], str)


def test_tool_events_name_the_tool_and_result() -> None:
    """tool_completed carries the tool name and its results in both wrapped and flat shapes."""
    extra = {"result": {"rows": 3}, "execution_time_ms": 42}
    bridge = agent_event("bridge", "tool_completed", CTX, "triage", now=NOW, extra=extra)
    flat = agent_event("flat", "tool_completed", CTX, "triage", now=NOW, extra=extra)
    assert bridge["tool_name"] == flat["tool_name"] == "request_classifier"
    assert bridge["results"] == flat["results"] == {"rows": 3}
    assert flat["execution_time"] == pytest.approx(0.042)


def test_report_type_depends_on_sections() -> None:
    """The final report is never empty and grades itself by the agents that ran."""
    full = final_report(("triage", "data_helper", "optimization", "reporting"), "x")
    assert full["report_type"] == "full_analysis" and full["next_steps"]
    assert final_report(("reporting",), "x")["report_type"] == "guidance"


def test_server_frames_have_the_backend_shape() -> None:
    """connection_established truncates the user id; error frames use error_message."""
    frame = connection_established("main_ab12cd34", "demo-user-001", now=NOW)
    assert frame["data"]["user_id"] == "demo-use..." and frame["server_id"] is None
    assert error_frame("AUTH_FAILED", "nope", now=NOW)["type"] == "error_message"
