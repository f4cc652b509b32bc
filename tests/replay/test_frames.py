"""Tests for ReplayResult: DataFrames and the JSON summary (pure, on recorded traces)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from uvs_analysis.replay.frames import (
    ATTEMPT_COLUMNS,
    FRAME_COLUMNS,
    PROBE_COLUMNS,
    build_result,
    percentile,
)
from uvs_analysis.replay.trace import trace_from_dict

DATA = Path(__file__).parent / "data"
RECORDED = {k: trace_from_dict(v)
            for k, v in json.loads((DATA / "testbed_traces.json").read_text()).items()}
KEYS = {"attempts", "outcomes", "close_codes", "handshake_ms", "contract", "slo", "isolation",
        "conformance", "transient", "persistent"}


def result_of(names: list[str]):  # type: ignore[no-untyped-def]
    traces = [replace(RECORDED[n], attempt=i, try_index=0) for i, n in enumerate(names)]
    return build_result(traces, url="ws://x/ws", attempts=len(traces))


def test_summary_has_the_json_keys_and_counts() -> None:
    """The summary carries every --json key with counts that add up."""
    r = result_of(["healthy_bridge", "database_down", "handler_crash", "reserved_close_code",
                   "startup_race"])
    s = r.summary()
    assert KEYS <= set(s)
    assert s["attempts"] == 5 and sum(s["outcomes"].values()) == 5
    assert s["outcome_labels"]["handshake_refused/503"] == 1
    assert s["close_codes"] == {"1000": 1, "1011": 1, "1006": 2}
    assert s["persistent"] == 4 and s["transient"] == 0
    assert s["conformance"][0]["rule"] == "reserved_code_on_wire"
    assert set(s["handshake_ms"]) == {"p50", "p95"}
    json.dumps(s)


def test_frames_have_documented_columns() -> None:
    """Each DataFrame has exactly the documented columns, one row per try / message / probe."""
    r = result_of(["healthy_flat", "shutdown_mid_run"])
    attempts = r.attempts_frame()
    assert list(attempts.columns) == list(ATTEMPT_COLUMNS)
    assert len(attempts) == 2
    assert attempts["persistence"].tolist() == ["ok", "persistent"]
    frames = r.frames_frame()
    assert list(frames.columns) == list(FRAME_COLUMNS)
    assert len(frames) == sum(len(t.frames) for t in r.traces)
    assert str(frames["at"].dtype).startswith("datetime64")
    assert list(r.probes_frame().columns) == list(PROBE_COLUMNS)


def test_slo_block_uses_contract_results() -> None:
    """data and report p95 come from the runs; breaches count contract SLO breaches."""
    s = result_of(["healthy_bridge", "slow_data_helper"]).summary()
    assert s["contract"]["runs"] == 2
    assert s["slo"]["data_p95_s"] is not None and s["slo"]["report_p95_s"] is not None


def test_percentile() -> None:
    """Linear percentile, None for no data."""
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([], 95) is None
    assert percentile([5.0], 95) == 5.0
