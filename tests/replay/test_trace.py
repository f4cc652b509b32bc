"""Tests for trace records and their JSON round trip."""

from __future__ import annotations

import json
from pathlib import Path

from uvs_analysis.replay.trace import trace_from_dict, trace_to_dict

DATA = Path(__file__).parent / "data"


def test_recorded_traces_round_trip() -> None:
    """Every recorded testbed trace survives to_dict -> JSON -> from_dict unchanged."""
    recorded = json.loads((DATA / "testbed_traces.json").read_text())
    assert len(recorded) >= 10
    for data in recorded.values():
        trace = trace_from_dict(data)
        again = trace_from_dict(json.loads(json.dumps(trace_to_dict(trace))))
        assert again == trace
        assert again.frames_dropped == 0


def test_opened_means_101_without_failure() -> None:
    """opened is True only for a completed upgrade."""
    recorded = json.loads((DATA / "testbed_traces.json").read_text())
    assert trace_from_dict(recorded["healthy_bridge"]).opened
    assert not trace_from_dict(recorded["startup_race"]).opened
