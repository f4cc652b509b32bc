"""Fault profiles of the testbed backend and the time base they scale.

A profile is chosen by name when the testbed starts; several can be combined. Every delay,
timeout and SLO below is a base value in seconds, multiplied by the time scale so that tests can
run the same scenarios in a fraction of the time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from uvs_analysis.errors import UsageError

__all__ = [
    "EVENT_SHAPES",
    "FAULTS",
    "LOG_FORMATS",
    "PROXY_FAULTS",
    "WORDINGS",
    "TestbedSettings",
    "Timings",
    "connection_hit",
    "parse_faults",
]

#: name -> one line saying what the profile does.
FAULTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "healthy": "no fault: every session runs the agent workflow to a final report",
        "startup-race": "dependencies become ready only after a startup delay; earlier "
        "connections get a readiness 503, then a caught close 1011",
        "database-down": "the database is unreachable for a fraction of connections "
        "(--fault-rate): error frame, close 1011",
        "redis-down": "redis is unreachable for a fraction of connections (--fault-rate): "
        "error frame, close 1011",
        "proxy-strip-auth": "an nginx in front drops the Authorization header",
        "proxy-idle-cut": "an nginx in front cuts connections idle for a while; one agent step "
        "is long and silent, and server keepalive pings are off",
        "handler-crash": "an exception escapes the handler after accept (uvicorn decides the wire)",
        "event-loop-blocked": "a synchronous call blocks the event loop during an agent step",
        "slow-data-helper": "the data_helper agent takes longer than its SLO",
        "slow-report": "the reporting agent takes longer than its SLO",
        "pipeline-order": "agents run out of the expected order",
        "missing-event": "one critical event of each run is never delivered",
        "cross-user-bleed": "events are routed by thread id as if it were a user id",
        "shutdown-mid-run": "the process receives SIGTERM while a run is in progress",
        "rolling-deploy": "a new revision takes over while a run is in progress",
        "request-timeout": "sessions are cut at a fixed age, as the platform request timeout does",
        "reserved-close-code": "component failures are closed with a raw 1005/1006 close frame",
    }
)
PROXY_FAULTS: Final = frozenset({"proxy-strip-auth", "proxy-idle-cut"})
LOG_FORMATS: Final = ("gcp", "unified")
WORDINGS: Final = ("default", "alt")
EVENT_SHAPES: Final = ("bridge", "flat", "validator")


def parse_faults(spec: str | Iterable[str]) -> tuple[str, ...]:
    """Parse ``a,b`` (or an iterable of names) into known fault names, in the given order.

    Raises:
        UsageError: a name is not a known profile.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for raw in items:
        name = raw.strip()
        if not name:
            continue
        if name not in FAULTS:
            raise UsageError(
                f"unknown fault profile {name!r} (parameter --fault)",
                expected="one or more of: " + ", ".join(FAULTS),
                hint="run 'uvs-analysis testbed --list-faults' for one line on each",
            )
        if name not in names:
            names.append(name)
    return tuple(names) or ("healthy",)


@dataclass(frozen=True)
class TestbedSettings:
    """Everything the testbed process is started with (no secrets)."""

    __test__ = False  # not a pytest test class

    faults: tuple[str, ...] = ("healthy",)
    time_scale: float = 1.0
    seed: int = 0
    fault_rate: float = 0.5
    log_format: str = "gcp"
    wording: str = "default"
    event_shape: str = "bridge"
    data_sufficiency: str = "auto"
    auth_mode: str = "strict"
    project: str = "netra-staging"
    service: str = "netra-backend-staging"
    revision: str = "netra-backend-staging-00001-abc"
    location: str = "us-central1"
    public_url: str = "https://netra-backend-staging-701982941522.us-central1.run.app"
    request_timeout_s: float | None = None
    startup_delay_s: float | None = None
    idle_cut_s: float | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = (
            (self.time_scale > 0, "--time-scale", "a number above 0", self.time_scale),
            (0.0 <= self.fault_rate <= 1.0, "--fault-rate", "a fraction in [0, 1]",
             self.fault_rate),
            (self.log_format in LOG_FORMATS, "--log-format", "gcp or unified", self.log_format),
            (self.wording in WORDINGS, "--wording", "default or alt", self.wording),
            (self.event_shape in EVENT_SHAPES, "--event-shape", "bridge, flat or validator",
             self.event_shape),
            (self.data_sufficiency in ("auto", "sufficient", "insufficient"),
             "--data-sufficiency", "auto, sufficient or insufficient", self.data_sufficiency),
            (self.auth_mode in ("strict", "demo"), "--auth", "strict or demo", self.auth_mode),
        )
        for ok, param, expected, value in checks:
            if not ok:
                raise UsageError(f"bad value {value!r} for {param}", expected=expected)
        optional: tuple[tuple[str, float | None], ...] = (
            ("--request-timeout", self.request_timeout_s),
            ("--startup-delay", self.startup_delay_s),
            ("--idle-cut", self.idle_cut_s),
        )
        for param, seconds in optional:
            if seconds is not None and not seconds > 0:
                raise UsageError(f"bad value {seconds!r} for {param}", expected="seconds above 0")
        parse_faults(self.faults)

    def has(self, fault: str) -> bool:
        """Whether the profile ``fault`` is active."""
        return fault in self.faults

    @property
    def needs_proxy(self) -> bool:
        """Whether a proxy fault is active (nginx must run in front)."""
        return bool(PROXY_FAULTS.intersection(self.faults))

    def timings(self) -> Timings:
        """The scaled time base for these settings."""
        return Timings.build(self)


@dataclass(frozen=True)
class Timings:
    """Delays, timeouts and SLOs in seconds, already multiplied by the time scale."""

    scale: float
    think_s: float
    steps_s: Mapping[str, float]
    heartbeat_s: float
    ws_ping_s: float | None
    startup_delay_s: float
    retry_after_s: int
    idle_cut_s: float
    silent_step_s: float
    block_s: float
    request_timeout_s: float
    disruption_after_s: float
    ticket_ttl_s: float
    graceful_shutdown_s: float
    data_slo_s: float
    report_slo_s: float

    @classmethod
    def build(cls, settings: TestbedSettings) -> Timings:
        """Scale the base values, applying the active profiles."""
        k = settings.time_scale
        steps = {"triage": 1.0, "data_helper": 2.0, "data": 1.5, "optimization": 1.5,
                 "reporting": 0.8}
        if settings.has("slow-data-helper"):
            steps["data_helper"] = 8.0
        if settings.has("slow-report"):
            steps["reporting"] = 3.5
        request_timeout = settings.request_timeout_s
        if request_timeout is None:
            request_timeout = 2.0 if settings.has("request-timeout") else 900.0
        return cls(
            scale=k,
            think_s=0.2 * k,
            steps_s=MappingProxyType({name: s * k for name, s in steps.items()}),
            heartbeat_s=30.0 * k,
            ws_ping_s=None if settings.has("proxy-idle-cut") else 20.0 * k,
            startup_delay_s=(settings.startup_delay_s or 40.0) * k,
            retry_after_s=max(1, math.ceil(10.0 * k)),
            idle_cut_s=(settings.idle_cut_s or 15.0) * k,
            silent_step_s=40.0 * k,
            block_s=60.0 * k,
            request_timeout_s=request_timeout * k,
            disruption_after_s=1.5 * k,
            ticket_ttl_s=300.0 * k,
            graceful_shutdown_s=10.0 * k,
            data_slo_s=5.0 * k,
            report_slo_s=2.0 * k,
        )


def connection_hit(seed: int, stream: str, ordinal: int, rate: float) -> bool:
    """Seeded draw: whether connection number ``ordinal`` is hit by a fractional fault."""
    return random.Random(f"{seed}:{stream}:{ordinal}").random() < rate
