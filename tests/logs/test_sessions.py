"""WebSocket sessions from status-101 request logs and their summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.logs.frames import REV_1, REV_2, app_row, at, frame, request_row, session_row
from uvs_analysis.errors import BadInputError, UsageError
from uvs_analysis.logs.schema import empty_frame
from uvs_analysis.logs.sessions import (
    SESSION_COLUMNS,
    check_request_timeout,
    session_summary,
    websocket_sessions,
)


def test_only_status_101_request_logs_are_sessions() -> None:
    """A 200 request and an app line with a 101 status are not sessions; a 101 request log is."""
    data = frame(
        request_row(1, 200, 0.3),
        app_row(2, "upgrade", http_status=101),
        session_row(3, 42.5, http_path="/websocket"),
    )
    sessions = websocket_sessions(data)
    assert list(sessions.columns) == list(SESSION_COLUMNS)
    assert len(sessions) == 1
    only = sessions.iloc[0]
    assert only["start"] == at(3)
    assert only["end"] == at(3 + 42.5)
    assert only["duration_s"] == 42.5
    assert only["http_path"] == "/websocket"
    assert only["insert_id"] == data["insert_id"].iloc[2]


@pytest.mark.parametrize(
    ("latency", "expected"),
    [(300.0, True), (299.2, True), (300.9, True), (299.0, True), (298.9, False), (301.5, False)],
)
def test_sessions_within_one_second_of_the_default_timeout_are_flagged(
    latency: float, expected: bool
) -> None:
    """At the 300 s default, lengths within 1 s either side (bounds included) are at the timeout."""
    sessions = websocket_sessions(frame(session_row(0, latency)))
    assert bool(sessions["at_timeout"].iloc[0]) is expected


def test_custom_timeout_and_tolerance_move_the_flag() -> None:
    """With --request-timeout 3600 a 3599.87 s session is flagged and a 300 s one is not."""
    data = frame(session_row(0, 3599.87), session_row(1, 300.0), session_row(2, 3597.0))
    assert list(websocket_sessions(data, request_timeout_s=3600)["at_timeout"]) == [
        True,
        False,
        False,
    ]
    wide = websocket_sessions(data, request_timeout_s=3600, tolerance_s=5)
    assert list(wide["at_timeout"]) == [True, False, True]


@pytest.mark.parametrize("bad", [0, -5, 3600.5, 7200, "soon", float("nan")])
def test_request_timeouts_cloud_run_does_not_allow_are_refused(bad: object) -> None:
    """Timeouts outside (0, 3600] or not numbers give a UsageError naming the parameter."""
    with pytest.raises(UsageError, match="--request-timeout"):
        websocket_sessions(frame(session_row(0, 1.0)), request_timeout_s=bad)  # type: ignore[arg-type]


def test_the_largest_allowed_timeout_is_accepted() -> None:
    """3600 s, Cloud Run's maximum, is a valid request timeout."""
    assert check_request_timeout(3600) == 3600.0
    with pytest.raises(UsageError, match="tolerance_s"):
        websocket_sessions(empty_frame(), tolerance_s=-1)


def test_a_session_without_latency_is_kept_and_counted() -> None:
    """A 101 log with no latency stays, with NA length and end, not at the timeout."""
    sessions = websocket_sessions(frame(session_row(0, None), session_row(1, 300.0)))
    missing = sessions.iloc[0]
    assert pd.isna(missing["duration_s"]) and pd.isna(missing["end"])
    assert not missing["at_timeout"]
    summary = session_summary(sessions)
    assert (summary.count, summary.unknown_duration, summary.at_timeout) == (2, 1, 1)


def test_summary_counts_percentiles_and_revisions() -> None:
    """The summary's counts and percentiles match the session lengths."""
    lengths = [5.0, 12.0, 60.0, 299.5, 300.4, 120.0]
    rows = [session_row(i, x, revision=REV_1 if i < 4 else REV_2) for i, x in enumerate(lengths)]
    summary = session_summary(websocket_sessions(frame(rows)))
    assert summary.count == len(lengths)
    assert summary.at_timeout == 2
    assert summary.at_timeout_share == pytest.approx(2 / len(lengths))
    assert summary.p50_s == pytest.approx(float(np.percentile(lengths, 50)))
    assert summary.p95_s == pytest.approx(float(np.percentile(lengths, 95)))
    assert summary.max_s == max(lengths)
    assert summary.by_revision == {REV_1: 4, REV_2: 2}
    assert summary.at_timeout_by_revision == {REV_1: 1, REV_2: 1}


def test_summary_of_no_sessions_has_no_percentiles() -> None:
    """No sessions give zero counts and None percentiles."""
    summary = session_summary(websocket_sessions(empty_frame()))
    assert (summary.count, summary.p50_s, summary.max_s, summary.at_timeout_share) == (
        0,
        None,
        None,
        0.0,
    )


def test_summary_refuses_a_frame_that_is_not_sessions() -> None:
    """Passing the raw log frame to session_summary names the missing columns."""
    with pytest.raises(BadInputError, match="sessions lacks the columns start"):
        session_summary(empty_frame())
