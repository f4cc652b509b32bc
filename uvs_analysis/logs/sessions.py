"""WebSocket sessions from Cloud Run request logs.

Cloud Run logs a WebSocket as one request log with status 101, written when the socket closes:
``timestamp`` is the upgrade (session start) and ``httpRequest.latency`` the session length. A
session whose length is within ``tolerance_s`` of the service's request timeout was most likely
cut by Cloud Run (default 300 s, at most 3600 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import pandas as pd

from uvs_analysis.errors import UsageError
from uvs_analysis.logs.schema import COLUMNS, LogLoad
from uvs_analysis.logs.signatures import require_columns, split_load

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT_S",
    "MAX_REQUEST_TIMEOUT_S",
    "SESSION_COLUMNS",
    "SessionSummary",
    "check_request_timeout",
    "session_summary",
    "websocket_sessions",
]

DEFAULT_REQUEST_TIMEOUT_S: Final = 300.0
MAX_REQUEST_TIMEOUT_S: Final = 3600.0

#: Columns of ``websocket_sessions`` and their dtypes.
SESSION_COLUMNS: Final = {
    "start": COLUMNS["timestamp"][0],  # upgrade time (the request log's timestamp)
    "end": COLUMNS["timestamp"][0],  # start + duration (NaT when the latency is missing)
    "duration_s": "Float64",  # httpRequest.latency in seconds
    "at_timeout": "bool",  # duration within tolerance of the request timeout
    "revision": "string[pyarrow]",
    "instance_id": "string[pyarrow]",
    "trace": "string[pyarrow]",
    "http_path": "string[pyarrow]",
    "user_agent": "string[pyarrow]",
    "remote_ip": "string[pyarrow]",
    "insert_id": "string[pyarrow]",
}


def check_request_timeout(request_timeout_s: float, *, name: str = "--request-timeout") -> float:
    """Return the request timeout as a float if Cloud Run allows it; else ``UsageError``."""
    try:
        value = float(request_timeout_s)
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"{name} {request_timeout_s!r} is not a number",
            expected=f"seconds, above 0 and at most {MAX_REQUEST_TIMEOUT_S:g}",
        ) from exc
    if not 0 < value <= MAX_REQUEST_TIMEOUT_S:
        raise UsageError(
            f"{name} {request_timeout_s!r} is outside what Cloud Run allows",
            expected=f"seconds, above 0 and at most {MAX_REQUEST_TIMEOUT_S:g}",
            hint="Use the service's configured request timeout (Cloud Run's default is 300 s)",
        )
    return value


def websocket_sessions(
    frame: pd.DataFrame | LogLoad,
    *,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    tolerance_s: float = 1.0,
) -> pd.DataFrame:
    """One row per WebSocket session (request log with status 101).

    Args:
        frame: a normalized log frame, or a LogLoad (one pushed down to BigQuery gives the
            sessions BigQuery listed: every session unless more than its ``max_rows``, see
            ``load.meta["sessions_not_fetched"]``).
        request_timeout_s: the service's request timeout in seconds (0 < t <= 3600).
        tolerance_s: how close to the timeout a session must end to count as cut by it.

    Returns:
        The columns ``SESSION_COLUMNS``, sorted by start. A session without latency keeps
        NA duration and end and is not at the timeout.
    """
    frame, aggregates = split_load(frame)
    timeout = check_request_timeout(request_timeout_s)
    if not tolerance_s >= 0:
        raise UsageError(f"tolerance_s {tolerance_s!r} is negative", expected="0 seconds or more")
    if aggregates is not None:
        pushed = aggregates.sessions.copy()
        at = ((pushed["duration_s"] - timeout).abs() <= tolerance_s).fillna(False).astype(bool)
        pushed["at_timeout"] = at
        return pushed.astype(SESSION_COLUMNS)
    require_columns(frame, COLUMNS)
    is_session = (frame["log_kind"] == "request") & (frame["http_status"] == 101)
    rows = frame.loc[is_session.fillna(False).astype(bool)]
    duration = rows["http_latency_s"].astype("Float64")
    at_timeout = ((duration - timeout).abs() <= tolerance_s).fillna(False).astype(bool)
    sessions = pd.DataFrame(
        {
            "start": rows["timestamp"],
            "end": rows["timestamp"] + pd.to_timedelta(duration.astype("float64"), unit="s"),
            "duration_s": duration,
            "at_timeout": at_timeout,
            "revision": rows["revision"],
            "instance_id": rows["instance_id"],
            "trace": rows["trace"],
            "http_path": rows["http_path"],
            "user_agent": rows["http_user_agent"],
            "remote_ip": rows["http_remote_ip"],
            "insert_id": rows["insert_id"],
        }
    ).astype(SESSION_COLUMNS)
    return sessions.sort_values("start", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class SessionSummary:
    """Counts and length percentiles of WebSocket sessions.

    Attributes:
        count: sessions.
        at_timeout: sessions that ended at the request timeout.
        unknown_duration: sessions whose log had no latency.
        p50_s: median length in seconds (None without any length).
        p95_s: 95th percentile length in seconds.
        max_s: longest session in seconds.
        by_revision: sessions per revision (``"(unknown)"`` for rows without one).
        at_timeout_by_revision: sessions at the timeout per revision (revisions with none left out).
    """

    count: int
    at_timeout: int
    unknown_duration: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None
    by_revision: Mapping[str, int] = field(default_factory=dict)
    at_timeout_by_revision: Mapping[str, int] = field(default_factory=dict)

    @property
    def at_timeout_share(self) -> float:
        """Share of sessions that ended at the timeout (0.0 without sessions)."""
        return self.at_timeout / self.count if self.count else 0.0


def session_summary(sessions: pd.DataFrame) -> SessionSummary:
    """Summarize the frame ``websocket_sessions`` returned."""
    require_columns(sessions, SESSION_COLUMNS, name="sessions")
    durations = sessions["duration_s"].dropna().astype("float64")
    revision = sessions["revision"].astype("string").fillna("(unknown)")
    at_timeout = sessions["at_timeout"].astype(bool)
    return SessionSummary(
        count=len(sessions),
        at_timeout=int(at_timeout.sum()),
        unknown_duration=int(sessions["duration_s"].isna().sum()),
        p50_s=_quantile(durations, 0.5),
        p95_s=_quantile(durations, 0.95),
        max_s=float(durations.max()) if len(durations) else None,
        by_revision=_counts(revision),
        at_timeout_by_revision=_counts(revision[at_timeout]),
    )


def _quantile(values: pd.Series, q: float) -> float | None:
    return float(values.quantile(q)) if len(values) else None


def _counts(values: pd.Series) -> dict[str, int]:
    counts = values.value_counts(sort=False)
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))}
