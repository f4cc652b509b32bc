"""A local Cloud Logging API emulator (``POST /v2/entries:list``) for tests and benchmarks."""

from __future__ import annotations

from uvs_analysis.emulator.faults import Fault, FaultConfig, ReadQuota
from uvs_analysis.emulator.server import EmulatorHandle, serve_forever, start_emulator
from uvs_analysis.emulator.service import EmulatorStats, LoggingService, RequestRecord
from uvs_analysis.emulator.store import EntryStore, open_store

__all__ = [
    "EmulatorHandle",
    "EmulatorStats",
    "EntryStore",
    "Fault",
    "FaultConfig",
    "LoggingService",
    "ReadQuota",
    "RequestRecord",
    "open_store",
    "serve_forever",
    "start_emulator",
]
