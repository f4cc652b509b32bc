"""WebSocket handshake and agent-run replay: specs, traced attempts, outcomes and verdicts.

Entry points: :func:`run_replay` (N attempts, concurrency, users) and :func:`run_matrix` (one
handshake feature at a time). The judging core (``classify``, ``contract``, ``isolation``,
``matrix_verdict``) is pure and works on recorded :class:`AttemptTrace` records.
"""

from __future__ import annotations

from uvs_analysis.replay.frames import ReplayResult
from uvs_analysis.replay.matrix import MatrixResult, run_matrix
from uvs_analysis.replay.runner import run_replay, run_replay_async
from uvs_analysis.replay.spec import HandshakeSpec, MessageStep, RetryPolicy

__all__ = [
    "HandshakeSpec",
    "MatrixResult",
    "MessageStep",
    "ReplayResult",
    "RetryPolicy",
    "run_matrix",
    "run_replay",
    "run_replay_async",
]
