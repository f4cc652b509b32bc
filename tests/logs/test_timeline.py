"""Revision timeline, deploys, instance events, error waves, severity bins and close codes."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.logs.frames import (
    INSTANCE_A,
    INSTANCE_B,
    REV_1,
    REV_2,
    SERVICE,
    app_row,
    at,
    frame,
    request_row,
    session_row,
    stderr_row,
    system_row,
    traceback_rows,
)
from uvs_analysis.errors import UsageError
from uvs_analysis.logs.schema import empty_frame
from uvs_analysis.logs.timeline import (
    DEPLOY_COLUMNS,
    INSTANCE_EVENT_COLUMNS,
    REVISION_COLUMNS,
    WAVE_COLUMNS,
    close_code_counts,
    deploys,
    error_waves,
    instance_events,
    revision_timeline,
    severity_over_time,
)

REV_3 = "netra-backend-staging-00827-lxh"


def test_revision_timeline_counts_per_revision() -> None:
    """Entries, error events (a traceback once), instances and sessions per revision."""
    data = frame(
        app_row(10, "boot", revision=REV_2, instance_id=INSTANCE_B),
        app_row(0, "hello"),
        traceback_rows(20, "ValueError: x"),
        session_row(30, 120.0),
        session_row(31, 300.0, instance_id=INSTANCE_B),
        request_row(40, 503, revision=REV_2, instance_id=INSTANCE_B),
    )
    table = revision_timeline(data)
    assert list(table.columns) == list(REVISION_COLUMNS)
    assert list(table["revision"]) == [REV_1, REV_2]
    first = table.iloc[0]
    assert (first["first_seen"], first["last_seen"]) == (at(0), at(31))
    assert (first["entries"], first["errors"], first["instances"], first["ws_sessions"]) == (
        9,
        1,
        2,
        2,
    )
    second = table.iloc[1]
    assert (second["entries"], second["errors"], second["ws_sessions"]) == (2, 1, 0)
    assert second["service"] == SERVICE


def test_entries_without_a_revision_are_kept_as_their_own_row() -> None:
    """Rows with no revision label are counted, not dropped."""
    table = revision_timeline(frame(app_row(0, "a"), app_row(1, "b", revision=None)))
    assert table["entries"].sum() == 2
    assert table["revision"].isna().sum() == 1


def test_each_new_revision_is_a_deploy_after_the_one_before() -> None:
    """Three revisions in sequence give two deploys; another service has its own sequence."""
    data = frame(
        app_row(0, "a", revision=REV_1),
        app_row(50, "b", revision=REV_1),
        app_row(60, "c", revision=REV_2),
        app_row(70, "d", revision=REV_1),
        app_row(90, "e", revision=REV_3),
        app_row(5, "f", service="auth-service", revision="auth-service-00012-abc"),
        app_row(80, "g", service="auth-service", revision="auth-service-00013-def"),
        app_row(85, "h", revision=None),
    )
    table = deploys(data)
    assert list(table.columns) == list(DEPLOY_COLUMNS)
    assert list(table.itertuples(index=False, name=None)) == [
        (at(60), SERVICE, REV_2, REV_1),
        (at(80), "auth-service", "auth-service-00013-def", "auth-service-00012-abc"),
        (at(90), SERVICE, REV_3, REV_2),
    ]


def test_one_revision_means_no_deploy() -> None:
    """The earliest revision in the window is the baseline, not a deploy."""
    assert deploys(frame(app_row(0, "a"), app_row(9, "b"))).empty
    assert list(deploys(empty_frame()).columns) == list(DEPLOY_COLUMNS)


@pytest.mark.parametrize(
    ("message", "event"),
    [
        ("Starting new instance. Reason: AUTOSCALING - Instance started due to traffic.", "start"),
        ("Container called exit(1).", "crash"),
        ("Container called exit(0).", "shutdown"),
        ("Uncaught signal: 6, pid=1, tid=1, fault_addr=0.", "crash"),
        ("Memory limit of 512 MiB exceeded with 530 MiB used. Consider increasing", "oom"),
        (
            'Default STARTUP TCP probe failed 1 time consecutively for container "app" on '
            "port 8080. The instance was not started.",
            "probe_failure",
        ),
        (
            "LIVENESS HTTP probe failed 1 time consecutively for container app on port 8080. "
            "The instance has been shut down.",
            "probe_failure",
        ),
        ("Shutting down user disabled instance", "shutdown"),
    ],
)
def test_system_messages_name_instance_events(message: str, event: str) -> None:
    """Each documented system text maps to its instance event."""
    events = instance_events(frame(system_row(5, message)))
    system = events.loc[events["source"] == "system"]
    assert list(system["event"]) == [event]
    assert system.iloc[0]["message"] == message
    assert system.iloc[0]["time"] == at(5)


def test_instances_without_system_entries_get_inferred_start_and_shutdown() -> None:
    """First and last entries stand in for missing start and end entries, marked inferred."""
    data = frame(
        app_row(3, "a", instance_id=INSTANCE_B, revision=REV_2),
        app_row(9, "b", instance_id=INSTANCE_B, revision=REV_2),
        system_row(0, "Starting new instance. Reason: DEPLOYMENT"),
        app_row(4, "c"),
        system_row(8, "Container called exit(137).", "WARNING"),
        stderr_row(7, "INFO:     Shutting down", instance_id=INSTANCE_B, revision=REV_2),
    )
    events = instance_events(data)
    assert list(events.columns) == list(INSTANCE_EVENT_COLUMNS)
    rows = list(
        events[["time", "instance_id", "event", "source"]].itertuples(index=False, name=None)
    )
    assert rows == [
        (at(0), INSTANCE_A, "start", "system"),
        (at(3), INSTANCE_B, "start", "inferred"),
        (at(7), INSTANCE_B, "shutdown", "app"),
        (at(8), INSTANCE_A, "crash", "system"),
    ]


def test_an_instance_seen_only_in_app_logs_is_inferred_both_ways() -> None:
    """An instance with no lifecycle texts gets an inferred start and shutdown."""
    events = instance_events(frame(app_row(2, "x"), app_row(6, "y")))
    assert list(zip(events["event"], events["time"], events["source"], strict=True)) == [
        ("start", at(2), "inferred"),
        ("shutdown", at(6), "inferred"),
    ]


def _burst_frame() -> pd.DataFrame:
    """An hour with one stray error every 10 minutes and a burst of 24 errors in two minutes."""
    rows = [app_row(t, f"heartbeat {t}") for t in range(0, 3600, 60)]
    rows += [app_row(t, f"slow query {t}ms", "ERROR") for t in range(30, 3600, 600)]
    rows += [
        app_row(1800 + 5 * i, f"[🔴] RACE CONDITION: connection main_{i:04x} rejected", "ERROR")
        for i in range(24)
    ]
    return frame(rows)


def test_an_error_burst_is_one_wave_named_by_its_template() -> None:
    """A burst well above the per-minute median is one wave with its bounds and top template."""
    waves = error_waves(_burst_frame(), bin_s=60, factor=3.0, min_errors=5)
    assert list(waves.columns) == list(WAVE_COLUMNS)
    assert len(waves) == 1
    wave = waves.iloc[0]
    assert (wave["start"], wave["end"]) == (at(1800), at(1920))
    assert wave["errors"] == 24 + 1
    assert wave["peak_per_min"] == 12 + 1
    assert wave["baseline_per_min"] == 0
    assert wave["top_template"] == "<EMOJI> RACE CONDITION: connection <ID> rejected"


def test_wave_thresholds_are_parameters() -> None:
    """A higher min_errors drops the burst; coarser bins keep it; bad values are refused."""
    data = _burst_frame()
    assert error_waves(data, min_errors=30).empty
    assert len(error_waves(data, bin_s=300)) == 1
    assert error_waves(frame(app_row(0, "ok"), app_row(600, "ok"))).empty
    with pytest.raises(UsageError, match="bin_s"):
        error_waves(data, bin_s=0)


def test_severity_over_time_fills_empty_bins() -> None:
    """Counts per bin and severity, in severity order, with zero rows for quiet bins."""
    data = frame(
        app_row(0, "a", "ERROR"),
        app_row(10, "b"),
        app_row(65, "c", "WARNING"),
        app_row(190, "d"),
        stderr_row(200, "e", severity=None),
    )
    counts = severity_over_time(data, freq="1min")
    assert list(counts.columns) == ["DEFAULT", "INFO", "WARNING", "ERROR"]
    assert list(counts.index) == [at(0), at(60), at(120), at(180)]
    assert counts.index.name == "time"
    assert counts.loc[at(0)].to_dict() == {"DEFAULT": 0, "INFO": 1, "WARNING": 0, "ERROR": 1}
    assert counts.loc[at(120)].sum() == 0
    assert counts.to_numpy().sum() == len(data)
    assert counts.attrs["without_timestamp"] == 0


def test_rows_without_a_time_are_counted_not_binned() -> None:
    """Rows with no timestamp are reported in attrs by the binned views."""
    data = frame(app_row(0, "a", "ERROR"), app_row(1, "b", "ERROR", timestamp=pd.NaT))
    assert severity_over_time(data).attrs["without_timestamp"] == 1
    assert severity_over_time(data).to_numpy().sum() == 1
    assert error_waves(data).attrs["without_timestamp"] == 1


def test_severity_over_time_checks_its_bin_and_handles_no_rows() -> None:
    """A bad bin width is refused; no rows give an empty frame with a UTC time index."""
    with pytest.raises(UsageError, match="freq 'monthly'"):
        severity_over_time(empty_frame(), freq="monthly")
    with pytest.raises(UsageError, match="freq '0s'"):
        severity_over_time(empty_frame(), freq="0s")
    empty = severity_over_time(empty_frame())
    assert empty.empty and isinstance(empty.index, pd.DatetimeIndex)
    assert str(empty.index.tz) == "UTC"


def test_close_codes_are_counted_most_frequent_first() -> None:
    """Close codes from any row are counted; rows without one are ignored."""
    data = frame(
        app_row(0, "closed", ws_close_code=1011),
        app_row(1, "closed", ws_close_code=1006),
        app_row(2, "closed", ws_close_code=1011),
        app_row(3, "no code"),
        app_row(4, "closed", ws_close_code=1000),
    )
    counts = close_code_counts(data)
    assert counts.to_dict() == {1011: 2, 1000: 1, 1006: 1}
    assert list(counts.index) == [1011, 1000, 1006]
    assert counts.name == "count" and counts.index.name == "ws_close_code"
    assert close_code_counts(empty_frame()).empty
