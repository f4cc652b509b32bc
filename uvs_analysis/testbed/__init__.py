"""A local backend that speaks the real WebSocket protocol and fails like the real one.

Start it with :func:`start_testbed` (a separate process, stopped with ``handle.stop()`` or a
``with`` block) or from the shell with ``uvs-analysis testbed --fault NAME[,NAME]``. It imports
nothing from the replay or root-cause packages: it does not know how it will be judged.
"""

from __future__ import annotations

from uvs_analysis.testbed.faults import FAULTS, PROXY_FAULTS, TestbedSettings, parse_faults
from uvs_analysis.testbed.launcher import DEFAULT_TOKEN_ENV, DEMO_USER, TestbedHandle, start_testbed

__all__ = [
    "DEFAULT_TOKEN_ENV",
    "DEMO_USER",
    "FAULTS",
    "PROXY_FAULTS",
    "TestbedHandle",
    "TestbedSettings",
    "parse_faults",
    "start_testbed",
]
