"""Shared state: revision naming and the startup-race phases on an injected clock."""

from __future__ import annotations

import io

from uvs_analysis.testbed.faults import TestbedSettings
from uvs_analysis.testbed.server import build_state
from uvs_analysis.testbed.state import next_revision


def test_next_revision_increments_the_number() -> None:
    """A deploy makes revision N+1 with a new suffix, keeping the digit width."""
    new = next_revision("netra-backend-staging-00009-abc", seed=0)
    assert new.startswith("netra-backend-staging-00010-") and not new.endswith("-abc")
    assert next_revision("svc-00009-abc", seed=0) == next_revision("svc-00009-abc", seed=0)


def test_startup_phases_follow_the_clock() -> None:
    """no_app_state for the first half of the delay, dependencies next, then ready."""
    state = build_state(TestbedSettings(faults=("startup-race",), time_scale=0.1,
                                        startup_delay_s=10), secret="x", stream=io.StringIO())
    now = [100.0]
    state.clock = lambda: now[0]
    assert state.startup_phase() == "no_app_state"
    state.started_at = 100.0
    for t, phase in ((100.4, "no_app_state"), (100.6, "dependencies"), (101.0, "ready")):
        now[0] = t
        assert state.startup_phase() == phase
    healthy = build_state(TestbedSettings(), secret="x", stream=None)
    assert healthy.startup_phase() == "ready"


def test_deploy_moves_new_traffic_to_a_new_instance() -> None:
    """After deploy() the default instance has a new revision and a new instance id."""
    state = build_state(TestbedSettings(), secret="x", stream=None)
    old = state.deploy()
    assert state.instance.revision != old.revision
    assert state.instance.instance_id != old.instance_id
