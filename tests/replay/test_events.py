"""Tests for event normalization across the three shapes."""

from __future__ import annotations

import json

import pytest

from uvs_analysis.replay.events import parse_event

from .conftest import event


@pytest.mark.parametrize("shape", ["bridge", "flat", "validator"])
def test_each_shape_yields_the_same_fields(shape: str) -> None:
    """agent, tool, run, user and thread ids are found in every shape."""
    ev = event("tool_executing", shape, "data_helper", run_id="r1", user_id="u1",
               thread_id="t1", tool="query")
    parsed = parse_event(json.dumps(ev))
    assert parsed.event_type == "tool_executing"
    assert parsed.agent_name == "data_helper"
    assert parsed.tool_name == "query"
    assert parsed.run_id == "r1"
    assert parsed.user_id == "u1"
    assert parsed.shape == shape
    if shape != "bridge":
        assert parsed.thread_id == "t1"


@pytest.mark.parametrize("shape", ["bridge", "flat", "validator"])
def test_report_result_is_detected(shape: str) -> None:
    """A completed reporting event with a result has_result in every shape."""
    ev = event("agent_completed", shape, "reporting", run_id="r", user_id="u", thread_id="t",
               result={"report": "x"})
    assert parse_event(json.dumps(ev)).has_result


@pytest.mark.parametrize("text", ["not json", "[1, 2]", "42", "", '{"no_type": 1}', "\x00\xff"])
def test_non_events_never_raise(text: str) -> None:
    """Garbage, arrays and objects without type give no event type."""
    assert parse_event(text).event_type is None


def test_server_message_shape() -> None:
    """connection_established (create_server_message) is a 'message', not an agent event."""
    parsed = parse_event('{"type": "connection_established", "data": {"user_id": "demo-use..."}}')
    assert parsed.shape == "message"
    assert parsed.user_id == "demo-use..."
