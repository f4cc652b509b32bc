"""Charts for the log analysis, one function per chart.

Each function takes the frame an analysis function returned and gives back a
``matplotlib.figure.Figure`` built without pyplot, so it works under any backend (Agg included),
keeps no global state and never shows anything itself. Empty input gives a figure that says
"no data". Times are drawn in UTC.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from uvs_analysis.errors import BadInputError
from uvs_analysis.logs.sessions import SESSION_COLUMNS, check_request_timeout
from uvs_analysis.logs.signatures import SIGNATURE_COLUMNS, require_columns
from uvs_analysis.logs.timeline import DEPLOY_COLUMNS, INSTANCE_EVENT_COLUMNS, REVISION_COLUMNS

__all__ = [
    "NO_DATA",
    "plot_close_codes",
    "plot_revision_timeline",
    "plot_session_lengths",
    "plot_severity_over_time",
    "plot_top_signatures",
]

NO_DATA: Final = "no data"
_SIZE: Final = (9.0, 4.0)
_TIME_LABEL: Final = "time (UTC)"
_SEVERITY_COLORS: Final = {
    "DEFAULT": "#9e9e9e",
    "DEBUG": "#b0bec5",
    "INFO": "#64b5f6",
    "NOTICE": "#4db6ac",
    "WARNING": "#ffb74d",
    "ERROR": "#e57373",
    "CRITICAL": "#c62828",
    "ALERT": "#8e24aa",
    "EMERGENCY": "#4a148c",
}
#: event -> (marker, color) on the revision timeline.
_EVENT_STYLE: Final = {
    "start": ("^", "#2e7d32"),
    "shutdown": ("v", "#616161"),
    "crash": ("X", "#c62828"),
    "oom": ("s", "#8e24aa"),
    "probe_failure": ("D", "#ef6c00"),
}
_LABEL_CHARS: Final = 70


def plot_severity_over_time(
    counts: pd.DataFrame, *, title: str = "Log entries by severity"
) -> Figure:
    """Stacked bars of entries per time bin, one colour per severity.

    Args:
        counts: the frame ``severity_over_time`` returned.
        title: the chart title.
    """
    if not isinstance(counts, pd.DataFrame) or not isinstance(counts.index, pd.DatetimeIndex):
        raise _not_from("counts", counts, "severity_over_time")
    if counts.empty or counts.shape[1] == 0 or int(counts.to_numpy().sum()) == 0:
        return _no_data(title)
    fig, ax = _figure(title)
    times = _naive(counts.index)
    width = _bar_width(counts.index)
    bottom = np.zeros(len(counts))
    for severity in counts.columns:
        values = counts[severity].to_numpy(dtype=float)
        ax.bar(
            times,
            values,
            width=width,
            bottom=bottom,
            align="edge",
            label=str(severity),
            color=_SEVERITY_COLORS.get(str(severity), "#bdbdbd"),
        )
        bottom += values
    ax.set_xlabel(_TIME_LABEL)
    ax.set_ylabel("entries per bin")
    ax.legend(title="severity", loc="upper left", fontsize="small")
    fig.autofmt_xdate()
    return fig


def plot_session_lengths(
    sessions: pd.DataFrame,
    request_timeout_s: float = 300.0,
    *,
    bins: int = 30,
    title: str = "WebSocket session lengths",
) -> Figure:
    """Histogram of session lengths with the request timeout marked.

    Args:
        sessions: the frame ``websocket_sessions`` returned.
        request_timeout_s: the service's request timeout in seconds.
        bins: number of histogram bins.
        title: the chart title.
    """
    require_columns(sessions, SESSION_COLUMNS, name="sessions")
    timeout = check_request_timeout(request_timeout_s)
    durations = sessions["duration_s"].dropna().to_numpy(dtype=float)
    if len(durations) == 0:
        return _no_data(title)
    at_timeout = int(sessions["at_timeout"].astype(bool).sum())
    fig, ax = _figure(f"{title} (n={len(durations)}, {at_timeout} at the timeout)")
    upper = max(timeout, float(durations.max())) * 1.02
    ax.hist(durations, bins=max(1, int(bins)), range=(0.0, upper), color="#64b5f6")
    ax.axvline(timeout, color="#c62828", linestyle="--", label=f"request timeout ({timeout:g} s)")
    ax.set_xlabel("session length (s)")
    ax.set_ylabel("sessions")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="best", fontsize="small")
    return fig


def plot_close_codes(counts: pd.Series, *, title: str = "WebSocket close codes") -> Figure:
    """Bars of how often each close code appears.

    Args:
        counts: the Series ``close_code_counts`` returned.
        title: the chart title.
    """
    if not isinstance(counts, pd.Series):
        raise _not_from("counts", counts, "close_code_counts")
    if counts.empty:
        return _no_data(title)
    fig, ax = _figure(title)
    labels = [str(code) for code in counts.index]
    ax.bar(labels, counts.to_numpy(dtype=float), color="#7986cb")
    ax.set_xlabel("close code")
    ax.set_ylabel("count")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def plot_top_signatures(
    signatures: pd.DataFrame, n: int = 10, *, title: str = "Top error signatures"
) -> Figure:
    """Horizontal bars of the ``n`` most frequent error templates, largest on top.

    Args:
        signatures: the frame ``error_signatures`` returned.
        n: how many templates to show.
        title: the chart title.
    """
    require_columns(signatures, SIGNATURE_COLUMNS, name="signatures")
    top = signatures.sort_values("count", ascending=False, kind="stable").head(max(0, n))
    if top.empty:
        return _no_data(title)
    fig, ax = _figure(title, size=(9.0, 1.0 + 0.4 * len(top)))
    labels = [_shorten(str(t)) for t in top["template"]]
    positions = np.arange(len(top))
    ax.barh(positions, top["count"].to_numpy(dtype=float), color="#e57373")
    ax.set_yticks(positions, labels, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("error events")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def plot_revision_timeline(
    revision_timeline: pd.DataFrame,
    deploys: pd.DataFrame,
    instance_events: pd.DataFrame,
    *,
    title: str = "Revisions, deploys and instance events",
) -> Figure:
    """One row per revision from first to last entry, deploys as dashed lines, instance events
    as markers on their revision's row (inferred events hollow).

    Args:
        revision_timeline: the frame ``revision_timeline`` returned.
        deploys: the frame ``deploys`` returned.
        instance_events: the frame ``instance_events`` returned.
        title: the chart title.
    """
    require_columns(revision_timeline, REVISION_COLUMNS, name="revision_timeline")
    require_columns(deploys, DEPLOY_COLUMNS, name="deploys")
    require_columns(instance_events, INSTANCE_EVENT_COLUMNS, name="instance_events")
    spans = revision_timeline.dropna(subset=["first_seen", "last_seen"])
    if spans.empty:
        return _no_data(title)
    names = [_revision_label(r) for r in spans["revision"]]
    fig, ax = _figure(title, size=(9.0, 1.5 + 0.5 * len(names)))
    rows = {name: i for i, name in enumerate(names)}
    ax.hlines(
        list(rows.values()),
        _naive(spans["first_seen"]),
        _naive(spans["last_seen"]),
        linewidth=6,
        color="#90caf9",
    )
    for i, t in enumerate(_naive(deploys["time"].dropna())):
        label = "deploy" if i == 0 else None
        ax.axvline(t, color="#455a64", linestyle="--", linewidth=1, label=label)
    _plot_events(ax, instance_events, rows)
    ax.set_yticks(list(rows.values()), names, fontsize="small")
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel(_TIME_LABEL)
    if ax.get_legend_handles_labels()[0]:
        fig.legend(loc="outside right upper", fontsize="small")
    fig.autofmt_xdate()
    return fig


# Private


def _figure(title: str, size: tuple[float, float] = _SIZE) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    return fig, ax


def _no_data(title: str) -> Figure:
    fig, ax = _figure(title)
    ax.text(0.5, 0.5, NO_DATA, ha="center", va="center", transform=ax.transAxes, color="#757575")
    ax.set_axis_off()
    return fig


def _naive(times: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """UTC times as naive datetime64 values (what matplotlib plots without a timezone)."""
    index = pd.DatetimeIndex(times)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.to_numpy()


def _bar_width(index: pd.DatetimeIndex) -> float:
    """Bar width in days (matplotlib's date unit): the bin spacing, else one minute."""
    width = pd.Timedelta(minutes=1)
    if len(index) > 1:
        step = pd.Series(index).diff().dropna().min()
        if isinstance(step, pd.Timedelta) and step > pd.Timedelta(0):
            width = step
    return float(width / pd.Timedelta(days=1))


def _plot_events(ax: Axes, events: pd.DataFrame, rows: dict[str, int]) -> None:
    for event, (marker, color) in _EVENT_STYLE.items():
        chosen = events.loc[(events["event"] == event).fillna(False).astype(bool)]
        chosen = chosen.dropna(subset=["time"])
        y = [rows.get(_revision_label(r)) for r in chosen["revision"]]
        keep = [v is not None for v in y]
        chosen = chosen.loc[keep]
        if chosen.empty:
            continue
        ys = [v for v in y if v is not None]
        inferred = (chosen["source"] == "inferred").fillna(False).to_numpy(dtype=bool)
        times = _naive(chosen["time"])
        if (~inferred).any():
            ax.scatter(
                times[~inferred],
                np.asarray(ys)[~inferred],
                marker=marker,
                color=color,
                label=event,
                zorder=3,
            )
        if inferred.any():
            ax.scatter(
                times[inferred],
                np.asarray(ys)[inferred],
                marker=marker,
                facecolors="none",
                edgecolors=color,
                label=f"{event} (inferred)",
                zorder=3,
            )


def _revision_label(revision: object) -> str:
    if revision is None or revision is pd.NA:
        return "(unknown)"
    return str(revision)


def _shorten(text: str, limit: int = _LABEL_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _not_from(name: str, value: object, producer: str) -> BadInputError:
    return BadInputError(
        f"{name} (a {type(value).__name__}) is not what {producer} returns",
        expected=f"the result of uvs_analysis.logs.timeline.{producer}",
    )
