"""Fixtures for the emulator tests: a small, realistic set of Cloud Run LogEntry dicts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.netguard import local_network_only as local_network_only
from uvs_analysis.emulator import EmulatorHandle, start_emulator

WINDOW = 'timestamp>="2024-05-14T00:00:00Z" AND timestamp<"2024-05-15T00:00:00Z"'


def cloud_run_entries(project: str = "acme-prod", n: int = 60) -> list[dict[str, Any]]:
    """``n`` entries cycling request / stdout / stderr / system logs over two hours.

    Timestamps use mixed offsets (``+00:00``, ``+02:00``, ``Z``) so the emulator must normalize
    them; every third entry is a 101 request log, every seventh an ERROR.
    """
    out: list[dict[str, Any]] = []
    logs = ["requests", "stdout", "stderr", "varlog%2Fsystem"]
    for i in range(n):
        minute = i * 2
        hour, minute = 9 + minute // 60, minute % 60
        stamp = (
            f"2024-05-14T{hour + 2:02d}:{minute:02d}:00.{i:03d}+02:00"
            if i % 2
            else f"2024-05-14T{hour:02d}:{minute:02d}:00.{i:03d}+00:00"
        )
        kind = logs[i % 4]
        entry: dict[str, Any] = {
            "insertId": f"id-{i:04d}",
            "logName": f"projects/{project}/logs/run.googleapis.com%2F{kind}",
            "resource": {
                "type": "cloud_run_revision",
                "labels": {"service_name": "ws-gateway", "location": "europe-west1"},
            },
            "labels": {"instanceId": f"inst-{i % 3}"},
            "timestamp": stamp,
            "receiveTimestamp": f"2024-05-14T{hour:02d}:{minute:02d}:01.5Z",
        }
        if i % 7 == 0:
            entry["severity"] = "ERROR"
        elif kind != "stderr":
            entry["severity"] = "INFO"
        if kind == "requests":
            entry["httpRequest"] = {"status": 101 if i % 3 == 0 else 200, "latency": f"{i}.5s"}
        elif kind == "stdout":
            entry["jsonPayload"] = {"message": f"event {i}", "close_code": 1011 if i % 5 else 1000}
        else:
            entry["textPayload"] = f"line {i}: keepalive ping timeout" if i % 2 else f"line {i}"
        out.append(entry)
    return out


@pytest.fixture
def entries() -> list[dict[str, Any]]:
    """Sixty entries of project acme-prod."""
    return cloud_run_entries()


@pytest.fixture
def emulator(entries: list[dict[str, Any]]) -> Iterator[EmulatorHandle]:
    """A running emulator without quota or faults."""
    with start_emulator(entries, quota_per_minute=0) as handle:
        yield handle


@pytest.fixture
def window() -> str:
    """A filter clause covering every fixture entry (keeps the client's 24 h default out)."""
    return WINDOW


@pytest.fixture
def make_entries() -> Any:
    """The entry builder, for tests that need other projects or sizes."""
    return cloud_run_entries
