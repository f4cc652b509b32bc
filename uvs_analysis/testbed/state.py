"""Shared state of one testbed process: settings, clocks, instances, open sessions."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from uvs_analysis.testbed.applog import AppLogger
from uvs_analysis.testbed.auth import TicketStore
from uvs_analysis.testbed.cloudrun_logs import Instance, LogEntryWriter
from uvs_analysis.testbed.faults import TestbedSettings, Timings

if TYPE_CHECKING:
    from uvs_analysis.testbed.session import Session

__all__ = ["TestbedState", "next_revision"]


def next_revision(revision: str, *, seed: int) -> str:
    """The revision a deploy creates: the number plus one and a new three-letter suffix."""
    head = revision.rpartition("-")[0]
    base, _, number = head.rpartition("-")
    rng = random.Random(f"{seed}:{revision}")
    suffix = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=3))
    if number.isdigit():
        return f"{base}-{int(number) + 1:0{len(number)}d}-{suffix}"
    return f"{revision}-2-{suffix}"


@dataclass
class TestbedState:
    """Everything the app's handlers share. ``terminate`` asks the process to stop (SIGTERM)."""

    __test__ = False

    settings: TestbedSettings
    timings: Timings
    secret: str
    writer: LogEntryWriter
    log: AppLogger
    tickets: TicketStore
    clock: Callable[[], float]
    terminate: Callable[[], None]
    started_at: float | None = None
    disrupted: bool = False
    rng: random.Random = field(default_factory=random.Random)
    sessions: list[Session] = field(default_factory=list)
    _ordinal: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def instance(self) -> Instance:
        """The instance new requests land on."""
        return self.writer.default

    def next_ordinal(self) -> int:
        """Number the WebSocket connections 0, 1, 2, ... in arrival order."""
        return next(self._ordinal)

    def hex_id(self, n: int) -> str:
        """A seeded hex identifier of ``n`` digits."""
        return "".join(self.rng.choices("0123456789abcdef", k=n))

    def startup_phase(self) -> str:
        """``no_app_state``, then ``dependencies``, then ``ready`` (startup-race only)."""
        if not self.settings.has("startup-race"):
            return "ready"
        if self.started_at is None:
            return "no_app_state"
        elapsed = self.clock() - self.started_at
        delay = self.timings.startup_delay_s
        if elapsed < delay / 2:
            return "no_app_state"
        return "dependencies" if elapsed < delay else "ready"

    def waited(self) -> float:
        """Seconds since startup began."""
        if self.started_at is None:
            return 0.0
        return self.clock() - self.started_at

    def deploy(self) -> Instance:
        """Switch new traffic to a new revision on a new instance; return the old instance."""
        old = self.writer.default
        revision = next_revision(old.revision, seed=self.settings.seed)
        self.writer.default = Instance.create(revision, seed=self.settings.seed)
        return old
