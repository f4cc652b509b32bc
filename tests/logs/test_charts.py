"""Charts: each returns a Figure with the expected artists, and a "no data" figure when empty."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tests.logs.frames import (
    INSTANCE_B,
    REV_2,
    app_row,
    frame,
    session_row,
    system_row,
)
from uvs_analysis.errors import BadInputError, UsageError
from uvs_analysis.logs.charts import (
    NO_DATA,
    plot_close_codes,
    plot_revision_timeline,
    plot_session_lengths,
    plot_severity_over_time,
    plot_top_signatures,
)
from uvs_analysis.logs.schema import empty_frame
from uvs_analysis.logs.sessions import websocket_sessions
from uvs_analysis.logs.signatures import error_signatures
from uvs_analysis.logs.timeline import (
    close_code_counts,
    deploys,
    instance_events,
    revision_timeline,
    severity_over_time,
)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    """A few minutes of two revisions with errors, sessions, close codes and system entries."""
    return frame(
        system_row(0, "Starting new instance. Reason: AUTOSCALING"),
        app_row(5, "WebSocket error: boom 1", "ERROR", ws_close_code=1011),
        app_row(65, "WebSocket error: boom 2", "ERROR", ws_close_code=1011),
        app_row(70, "auth failed for main_1a2b", "WARNING", ws_close_code=1008),
        app_row(80, "Database unavailable", "CRITICAL"),
        session_row(10, 299.7),
        session_row(20, 30.0),
        session_row(30, 150.0),
        app_row(130, "hello", revision=REV_2, instance_id=INSTANCE_B),
        system_row(
            190, "Container called exit(1).", "WARNING", revision=REV_2, instance_id=INSTANCE_B
        ),
    )


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _legend_labels(fig: Figure) -> list[str]:
    legends = [ax.get_legend() for ax in fig.axes] + list(fig.legends)
    return [t.get_text() for legend in legends if legend is not None for t in legend.get_texts()]


def _bars(ax: Axes) -> list[Rectangle]:
    return [patch for patch in ax.patches if isinstance(patch, Rectangle)]


def _renders(fig: Figure) -> bool:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue().startswith(b"\x89PNG")


def test_severity_chart_stacks_one_bar_series_per_severity(small: pd.DataFrame) -> None:
    """One bar per bin and severity, a legend naming the severities, and time on x."""
    counts = severity_over_time(small, freq="1min")
    fig = plot_severity_over_time(counts)
    ax = fig.axes[0]
    assert len(ax.patches) == counts.size
    assert _legend_labels(fig) == list(counts.columns)
    assert ax.get_xlabel() == "time (UTC)"
    assert _renders(fig)


def test_session_chart_marks_the_request_timeout(small: pd.DataFrame) -> None:
    """The histogram has the asked bins and a labelled timeout line; the title counts sessions."""
    fig = plot_session_lengths(websocket_sessions(small), 300, bins=12)
    ax = fig.axes[0]
    assert len(ax.patches) == 12
    timeout_lines = [line for line in ax.get_lines() if "timeout" in str(line.get_label())]
    assert len(timeout_lines) == 1
    assert np.asarray(timeout_lines[0].get_xdata()).tolist() == [300, 300]
    assert "n=3, 1 at the timeout" in ax.get_title()
    assert _legend_labels(fig) == ["request timeout (300 s)"]
    with pytest.raises(UsageError, match="--request-timeout"):
        plot_session_lengths(websocket_sessions(small), 4000)


def test_close_code_chart_has_a_bar_per_code(small: pd.DataFrame) -> None:
    """Each close code gets a bar labelled with the code."""
    fig = plot_close_codes(close_code_counts(small))
    ax = fig.axes[0]
    assert [bar.get_height() for bar in _bars(ax)] == [2, 1]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1011", "1008"]


def test_signature_chart_shows_the_top_n_largest_first(small: pd.DataFrame) -> None:
    """Only n templates are drawn, largest at the top, labelled by template."""
    signatures = error_signatures(small)
    fig = plot_top_signatures(signatures, n=1)
    ax = fig.axes[0]
    assert len(ax.patches) == 1
    assert _bars(ax)[0].get_width() == signatures["count"].max()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["WebSocket error: boom <NUM>"]
    assert len(plot_top_signatures(signatures).axes[0].patches) == len(signatures)


def test_revision_chart_draws_revisions_deploys_and_events(small: pd.DataFrame) -> None:
    """A row per revision, a deploy line, and instance-event markers in the legend."""
    fig = plot_revision_timeline(revision_timeline(small), deploys(small), instance_events(small))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(
        revision_timeline(small)["revision"]
    )
    labels = _legend_labels(fig)
    assert labels.count("deploy") == 1
    assert {"start", "crash", "start (inferred)", "shutdown (inferred)"} <= set(labels)
    assert _renders(fig)


def test_every_chart_says_no_data_on_empty_input() -> None:
    """Empty inputs give a titled figure that says "no data" instead of failing."""
    empty = empty_frame()
    figures = [
        plot_severity_over_time(severity_over_time(empty)),
        plot_session_lengths(websocket_sessions(empty)),
        plot_close_codes(close_code_counts(empty)),
        plot_top_signatures(error_signatures(empty)),
        plot_revision_timeline(revision_timeline(empty), deploys(empty), instance_events(empty)),
    ]
    for fig in figures:
        assert isinstance(fig, Figure)
        assert _texts(fig) == [NO_DATA]
        assert fig.axes[0].get_title()
        assert _renders(fig)


def test_charts_refuse_frames_of_the_wrong_kind(small: pd.DataFrame) -> None:
    """Passing the raw log frame where an analysis result is expected names what is missing."""
    with pytest.raises(BadInputError, match="signatures lacks the columns"):
        plot_top_signatures(small)
    with pytest.raises(BadInputError, match="severity_over_time"):
        plot_severity_over_time(small)
    with pytest.raises(BadInputError, match="close_code_counts"):
        plot_close_codes(small)  # type: ignore[arg-type]
