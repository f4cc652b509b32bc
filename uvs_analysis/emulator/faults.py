"""What the emulator does wrong on purpose: fault injection and the read quota.

Both are deterministic: faults are drawn from ``(seed, request number)`` only, so a run with the
same seed and the same request sequence meets the same faults whatever the thread timing; the
quota reads an injectable clock.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from uvs_analysis.errors import UsageError

__all__ = ["Fault", "FaultConfig", "ReadQuota"]


class Fault(StrEnum):
    """One injected misbehaviour of a single ``entries:list`` request."""

    RATE_LIMIT = "429"  # RESOURCE_EXHAUSTED with the real quota message
    UNAVAILABLE = "503"  # UNAVAILABLE
    INTERNAL = "500"  # INTERNAL
    DEADLINE = "504"  # DEADLINE_EXCEEDED
    SLOW = "slow"  # the page is served after ``slow_seconds``
    DISCONNECT = "disconnect"  # headers and half the body, then the socket closes
    EMPTY = "empty"  # an empty "progress" page whose token repeats the same offset


@dataclass(frozen=True)
class FaultConfig:
    """Fault knobs. Probabilities are per request and must sum to at most 1.

    Attributes:
        rate_limit: probability of a 429 RESOURCE_EXHAUSTED.
        unavailable: probability of a 503 UNAVAILABLE.
        slow: probability that the page is delayed by ``slow_seconds``.
        slow_seconds: the delay of a slow page.
        disconnect: probability that the connection breaks mid-response.
        empty_page: probability of an empty page that carries a token to the same place.
        deny: answer every ``entries:list`` with 403 PERMISSION_DENIED.
        script: faults by request number (1-based, counting every ``entries:list`` request
            since start or reset); they take precedence over the probabilities.
    """

    rate_limit: float = 0.0
    unavailable: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 2.0
    disconnect: float = 0.0
    empty_page: float = 0.0
    deny: bool = False
    script: Mapping[int, Fault] = field(default_factory=dict)

    def __post_init__(self) -> None:
        probs = self._probabilities()
        for name, value in probs:
            if not 0.0 <= value <= 1.0:
                raise UsageError(
                    f"fault probability {name}={value} is outside [0, 1]",
                    expected="a probability between 0 and 1",
                )
        if sum(v for _, v in probs) > 1.0 + 1e-9:
            raise UsageError(
                "fault probabilities sum to more than 1 ("
                + ", ".join(f"{n}={v}" for n, v in probs)
                + ")",
                expected="a total of at most 1, since each request meets at most one fault",
            )
        if self.slow_seconds < 0:
            raise UsageError(
                f"slow_seconds={self.slow_seconds} is negative", expected="a delay >= 0 seconds"
            )
        script: dict[int, Fault] = {}
        for key, name in dict(self.script).items():
            try:
                script[int(key)] = Fault(name)
            except ValueError as exc:
                raise UsageError(
                    f"fault script entry {key!r}: {name!r} is not a fault",
                    expected="a 1-based request number mapped to one of "
                    + ", ".join(f.value for f in Fault),
                ) from exc
        object.__setattr__(self, "script", MappingProxyType(script))

    def _probabilities(self) -> list[tuple[str, float]]:
        return [
            ("rate_limit", self.rate_limit),
            ("unavailable", self.unavailable),
            ("slow", self.slow),
            ("disconnect", self.disconnect),
            ("empty_page", self.empty_page),
        ]

    def draw(self, seed: int, request_number: int) -> Fault | None:
        """The fault for one request: its scripted fault, else a seeded draw, else None."""
        if request_number in self.script:
            return self.script[request_number]
        u = random.Random(f"{seed}:{request_number}").random()
        for fault, p in zip(
            (Fault.RATE_LIMIT, Fault.UNAVAILABLE, Fault.SLOW, Fault.DISCONNECT, Fault.EMPTY),
            (v for _, v in self._probabilities()),
            strict=True,
        ):
            if u < p:
                return fault
            u -= p
        return None

    def to_json(self) -> dict[str, Any]:
        """The knobs as JSON-able values (the body ``POST /emulator/faults`` accepts)."""
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data["script"] = {str(k): v.value for k, v in self.script.items()}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from JSON-able values; unknown keys and wrong types raise UsageError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(
                f"unknown fault settings {unknown}", expected="some of " + ", ".join(sorted(known))
            )
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name == "deny":
                if not isinstance(value, bool):
                    raise UsageError(f"deny={value!r} is not a boolean", expected="true or false")
                kwargs[name] = value
            elif name == "script":
                if not isinstance(value, Mapping):
                    raise UsageError(
                        f"script={value!r} is not an object",
                        expected='an object such as {"3": "429"}',
                    )
                kwargs[name] = dict(value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                kwargs[name] = float(value)
            else:
                raise UsageError(f"{name}={value!r} is not a number", expected="a number")
        return cls(**kwargs)


class ReadQuota:
    """Sliding-window read quota: at most ``per_minute`` accepted requests per project in any
    ``window_seconds`` (60 s by default, as the real "Read requests per minute" limit).

    Not thread-safe on its own; the service calls it under its lock.

    Args:
        per_minute: the limit; None or 0 means unlimited.
        clock: seconds from any fixed origin (e.g. ``time.monotonic``).
        window_seconds: the window length.
    """

    def __init__(
        self,
        per_minute: int | None,
        clock: Callable[[], float],
        *,
        window_seconds: float = 60.0,
    ) -> None:
        if per_minute is not None and per_minute < 0:
            raise UsageError(
                f"quota_per_minute={per_minute} is negative",
                expected="a positive number of requests per minute, or 0 for no quota",
            )
        self.per_minute = per_minute or None
        self.window_seconds = window_seconds
        self._clock = clock
        self._accepted: dict[str, deque[float]] = {}

    def try_acquire(self, project: str) -> bool:
        """Count one request for ``project``; False (and not counted) when over the limit."""
        if self.per_minute is None:
            return True
        now = self._clock()
        window = self._accepted.setdefault(project, deque())
        while window and window[0] <= now - self.window_seconds:
            window.popleft()
        if len(window) >= self.per_minute:
            return False
        window.append(now)
        return True

    def reset(self) -> None:
        """Forget every counted request."""
        self._accepted.clear()
