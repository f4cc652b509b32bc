"""Builders of small normalized log frames for the analysis tests.

Each helper returns one row as a dict; ``frame(*rows)`` turns rows into a frame with exactly the
columns and dtypes of ``uvs_analysis.logs.schema.COLUMNS``. Times are seconds after ``T0``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from uvs_analysis.logs.schema import COLUMNS, empty_frame

__all__ = [
    "INSTANCE_A",
    "INSTANCE_B",
    "REV_1",
    "REV_2",
    "SERVICE",
    "T0",
    "app_row",
    "at",
    "frame",
    "request_row",
    "row",
    "session_row",
    "stderr_row",
    "system_row",
    "traceback_rows",
]

T0 = pd.Timestamp("2025-09-15T01:00:00Z")
SERVICE = "netra-backend-staging"
REV_1 = "netra-backend-staging-00740-47l"
REV_2 = "netra-backend-staging-00744-z47"
INSTANCE_A = "0069c7a98812e4f0b8d4b2c6a7e1f39d0c5b6a2e8f1d7c3b9a"
INSTANCE_B = "00f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778a"

_counter = iter(range(1, 10**9))


def at(seconds: float) -> pd.Timestamp:
    """The time ``seconds`` after T0."""
    return T0 + pd.Timedelta(seconds=seconds)


def row(t: float, **fields: Any) -> dict[str, Any]:
    """A row at ``t`` seconds after T0 with Cloud Run defaults; ``fields`` override them."""
    base: dict[str, Any] = {
        "timestamp": at(t),
        "receive_timestamp": at(t),
        "severity": "INFO",
        "severity_inferred": False,
        "log_kind": "stdout",
        "log_name": "projects/p/logs/run.googleapis.com/stdout",
        "service": SERVICE,
        "revision": REV_1,
        "location": "us-central1",
        "instance_id": INSTANCE_A,
        "insert_id": f"id{next(_counter):06d}",
    }
    base.update(fields)
    return base


def app_row(t: float, message: str, severity: str = "INFO", **fields: Any) -> dict[str, Any]:
    """A structured application log line on stdout."""
    return row(t, message=message, severity=severity, **fields)


def stderr_row(
    t: float, message: str, severity: str | None = "DEFAULT", **fields: Any
) -> dict[str, Any]:
    """A plain-text stderr line (severity inferred)."""
    fields.setdefault("log_name", "projects/p/logs/run.googleapis.com/stderr")
    return row(
        t, message=message, severity=severity, severity_inferred=True, log_kind="stderr", **fields
    )


def system_row(t: float, message: str, severity: str = "INFO", **fields: Any) -> dict[str, Any]:
    """A Cloud Run system (varlog/system) entry."""
    fields.setdefault("log_name", "projects/p/logs/run.googleapis.com/varlog/system")
    return row(t, message=message, severity=severity, log_kind="system", **fields)


def request_row(
    t: float, status: int, latency_s: float | None = 0.05, path: str = "/api", **fields: Any
) -> dict[str, Any]:
    """A request log; severity follows the status as on Cloud Run."""
    defaults: dict[str, Any] = {
        "severity": "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO",
        "log_name": "projects/p/logs/run.googleapis.com/requests",
        "log_kind": "request",
        "http_method": "GET",
        "http_url": f"https://svc-abc-uc.a.run.app{path}",
        "http_path": path,
        "http_status": status,
        "http_latency_s": latency_s,
        "http_user_agent": "Mozilla/5.0",
        "http_remote_ip": "203.0.113.24",
        "trace": f"projects/p/traces/{next(_counter):032x}",
    }
    defaults.update(fields)
    return row(t, **defaults)


def session_row(t: float, latency_s: float | None, **fields: Any) -> dict[str, Any]:
    """A WebSocket session: a status-101 request log whose latency is the session length."""
    return request_row(t, 101, latency_s, path="/ws", **fields)


def traceback_rows(
    t: float, exception: str, *, step: float = 0.001, **fields: Any
) -> list[dict[str, Any]]:
    """A Python traceback split into one stderr entry per line, ``step`` seconds apart."""
    lines = [
        "Traceback (most recent call last):",
        '  File "/app/netra_backend/app/routes/websocket_ssot.py", line 712, in handle',
        "    await manager.accept(websocket)",
        '  File "/app/netra_backend/app/websocket_core/manager.py", line 88, in accept',
        "    raise RuntimeError(reason)",
        exception,
    ]
    return [stderr_row(t + i * step, line, **fields) for i, line in enumerate(lines)]


def frame(*rows: dict[str, Any] | list[dict[str, Any]]) -> pd.DataFrame:
    """A normalized frame from rows (lists of rows are flattened)."""
    flat: list[dict[str, Any]] = []
    for item in rows:
        flat.extend(item if isinstance(item, list) else [item])
    empty = empty_frame()
    if not flat:
        return empty
    data = pd.DataFrame(flat, columns=list(COLUMNS))
    data["severity_inferred"] = data["severity_inferred"].fillna(False)
    return data.astype({name: dtype for name, (dtype, _) in COLUMNS.items()})
