"""Tests for cross-user isolation checks (pure)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from uvs_analysis.replay.isolation import check_isolation
from uvs_analysis.replay.trace import AttemptTrace

from .conftest import agent_events
from .test_contract import run_of


def user_run(user: int, events: list[dict[str, Any]]) -> AttemptTrace:
    return replace(run_of(events), user=user, attempt=user, thread_id=f"replay-u{user}-a{user}")


def test_separate_users_have_no_violation() -> None:
    """Two users each receiving their own events: no violation."""
    traces = [user_run(u, agent_events("flat", thread_id=f"replay-u{u}-a{u}", user_id=f"user-{u}"))
              for u in (0, 1)]
    report = check_isolation(traces, {0: "user-0", 1: "user-1"})
    assert report.ok and report.users == 2 and report.checked_frames == 30


def test_foreign_thread_id_is_a_violation_with_the_frame() -> None:
    """User 1 receiving user 0's thread is reported with the frame and the owner."""
    own = user_run(0, agent_events("flat", thread_id="replay-u0-a0", user_id="demo"))
    bled = user_run(1, agent_events("flat", thread_id="replay-u0-a0", user_id="demo"))
    report = check_isolation([own, bled])
    assert len(report.violations) == 15
    v = report.violations[0]
    assert (v.user, v.owner, v.field, v.value) == (1, 0, "thread_id", "replay-u0-a0")
    assert "replay-u0-a0" in v.frame_text


def test_foreign_user_id_from_tokens() -> None:
    """In the bridge shape (no thread id) a foreign user_id from the token's sub is caught."""
    own = user_run(0, agent_events("bridge", thread_id="x", user_id="user-0"))
    bled = user_run(1, agent_events("bridge", thread_id="y", user_id="user-0"))
    report = check_isolation([own, bled], {0: "user-0", 1: "user-1"})
    assert {v.field for v in report.violations} == {"user_id"}
    assert all(v.user == 1 for v in report.violations)


def test_shared_ids_identify_nobody() -> None:
    """One demo user id for everyone is not evidence of bleed."""
    traces = [user_run(u, agent_events("bridge", thread_id="x", user_id="demo")) for u in (0, 1)]
    assert check_isolation(traces, {0: "demo", 1: "demo"}).ok


def test_foreign_run_id_alone() -> None:
    """A frame carrying only another user's run id is a violation."""
    own = user_run(0, agent_events("flat", thread_id="replay-u0-a0", user_id="a"))
    stray = json.loads(own.frames[0].text)
    other = user_run(1, [{"type": "agent_thinking", "run_id": stray["run_id"]}])
    report = check_isolation([own, other])
    assert [(v.field, v.owner) for v in report.violations] == [("run_id", 0)]
