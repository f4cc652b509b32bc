"""Charts for the replay and the report: timeline, handshake timings, agent swimlanes.

Each function takes DataFrames (the replay's attempts/frames frames, normalized logs, the
timeline frames of ``uvs_analysis.logs.timeline``) and returns a matplotlib Figure built without
pyplot; empty input gives a figure saying so.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

__all__ = ["plot_handshake_times", "plot_swimlane", "plot_timeline"]

_OK, _FAIL, _LOG = "#2e7d32", "#c62828", "#546e7a"


def _empty(title: str, text: str) -> Figure:
    fig = Figure(figsize=(9, 2.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#757575")
    ax.set_axis_off()
    return fig


def plot_timeline(
    attempts: pd.DataFrame,
    logs: pd.DataFrame,
    deploys: pd.DataFrame,
    instance_events: pd.DataFrame,
    waves: pd.DataFrame,
) -> Figure:
    """Failures from the replay and from the request logs over time, with deploys, instance
    starts and shutdowns, and error waves."""
    title = "Timeline: replayed tries, request logs, deploys and instances"
    requests = logs[logs["log_kind"] == "request"] if len(logs) else logs
    if not len(attempts) and not len(requests):
        return _empty(title, "no replay and no request logs")
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    if len(attempts):
        ok = attempts["outcome"] == "completed"
        ax.scatter(attempts.loc[ok, "started_at"], [2] * int(ok.sum()), marker="o", s=14,
                   color=_OK, label="replay: completed")
        ax.scatter(attempts.loc[~ok, "started_at"], [2] * int((~ok).sum()), marker="x", s=28,
                   color=_FAIL, label="replay: failed")
    if len(requests):
        bad = requests["http_status"].fillna(0).astype(int) >= 400
        ax.scatter(requests.loc[~bad, "timestamp"], [1] * int((~bad).sum()), marker="|", s=40,
                   color=_LOG, label="request log")
        ax.scatter(requests.loc[bad, "timestamp"], [1] * int(bad.sum()), marker="x", s=28,
                   color=_FAIL, label="request log: status >= 400")
    if len(instance_events):
        starts = instance_events[instance_events["event"] == "start"]
        stops = instance_events[instance_events["event"] != "start"]
        ax.scatter(starts["time"], [0] * len(starts), marker="^", color="#1565c0",
                   label="instance start")
        ax.scatter(stops["time"], [0] * len(stops), marker="v", color="#6d4c41",
                   label="instance shutdown/crash")
    for i, time in enumerate(deploys["time"] if len(deploys) else []):
        ax.axvline(time, color="#1565c0", linestyle="--", linewidth=1,
                   label="deploy" if i == 0 else None)
    for i, (start, end) in enumerate(zip(waves["start"], waves["end"], strict=True)
                                     if len(waves) else []):
        ax.axvspan(start, end, color=_FAIL, alpha=0.12, label="error wave" if i == 0 else None)
    ax.set_yticks([0, 1, 2], ["instances", "request logs", "replay"])
    ax.set_ylim(-0.6, 2.6)
    ax.set_xlabel("time (UTC)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.autofmt_xdate()
    return fig


def plot_handshake_times(attempts: pd.DataFrame) -> Figure:
    """Distribution of handshake durations (ms), completed versus failed tries."""
    title = "Handshake timings"
    data = attempts.dropna(subset=["handshake_ms"]) if len(attempts) else attempts
    if not len(data):
        return _empty(title, "no handshake completed")
    fig = Figure(figsize=(7, 2.8), layout="constrained")
    ax = fig.add_subplot()
    ok = data["outcome"] == "completed"
    values = [data.loc[ok, "handshake_ms"].astype(float), data.loc[~ok, "handshake_ms"]
              .astype(float)]
    ax.hist(values, bins=20, stacked=True, color=[_OK, _FAIL], label=["completed", "failed"])
    ax.set_title(title)
    ax.set_xlabel("DNS start to handshake response (ms)")
    ax.set_ylabel("tries")
    ax.legend(frameon=False)
    return fig


def plot_swimlane(frames: pd.DataFrame, attempts: pd.DataFrame, *, runs: int = 4) -> Figure:
    """Agent spans (agent_started to agent_completed) and tool calls over time, per run."""
    title = "Agent runs: agents and tools over time"
    received = frames[(frames["direction"] == "recv") & frames["agent_name"].notna()] \
        if len(frames) else frames
    keys = list(dict.fromkeys(zip(received["attempt"], received["try"], strict=True)))[:runs] \
        if len(received) else []
    if not keys:
        return _empty(title, "no agent events were received")
    fig = Figure(figsize=(10, 1.3 + 1.1 * len(keys)), layout="constrained")
    axes = fig.subplots(len(keys), 1, squeeze=False, sharex=False)[:, 0]
    for ax, (attempt, try_index) in zip(axes, keys, strict=True):
        mine = received[(received["attempt"] == attempt) & (received["try"] == try_index)]
        agents = list(dict.fromkeys(mine["agent_name"]))
        for row, agent in enumerate(agents):
            events = mine[mine["agent_name"] == agent]
            start = events["t_ms"].min() / 1000.0
            end = events["t_ms"].max() / 1000.0
            ax.barh(row, max(end - start, 0.002), left=start, height=0.5, color="#90caf9")
            tools = events[events["event_type"].isin(["tool_executing", "tool_completed"])]
            ax.scatter(tools["t_ms"] / 1000.0, [row] * len(tools), marker="|", color="#0d47a1")
        outcome = attempts[(attempts["attempt"] == attempt) & (attempts["try"] == try_index)][
            "label"]
        label = str(outcome.iloc[0]) if len(outcome) else ""
        ax.set_yticks(range(len(agents)), agents, fontsize=8)
        ax.set_title(f"attempt {attempt}, try {try_index}: {label}", fontsize=9, loc="left")
        ax.set_xlabel("seconds since the try started", fontsize=8)
    fig.suptitle(title)
    return fig
