"""The whole investigation in one call: replay, logs, correlation, five whys.

This is the edge that wires the pure cores to the world: it may start the embedded testbed and
the Cloud Logging emulator, replay against a WebSocket URL, and pull logs through a log source.
Notebooks and the report call ``investigate``; nothing here reads the testbed's fault (the
analysis sees only a ``ws_url`` and a log source, as it would for a real server).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from uvs_analysis.errors import UsageError
from uvs_analysis.logs.query import LogQuery, parse_time, rfc3339
from uvs_analysis.logs.schema import LogLoad, empty_frame
from uvs_analysis.logs.sources import load_logs
from uvs_analysis.logs.summary import summarize_logs
from uvs_analysis.rca.correlate import Correlation, CorrelationParams, correlate
from uvs_analysis.rca.rules import BUILTIN_RULES_DIR, load_rules
from uvs_analysis.rca.whys import FiveWhys, build_five_whys, parse_overrides
from uvs_analysis.replay.contract import ContractParams
from uvs_analysis.replay.frames import ReplayResult
from uvs_analysis.replay.spec import (
    DEFAULT_MESSAGE,
    HandshakeSpec,
    MessageStep,
    RetryPolicy,
    ticket_url_for,
)

__all__ = ["EMBEDDED", "Investigation", "InvestigationParams", "investigate",
           "save_investigation", "with_request_timeout"]

#: ``ws_url`` / ``logs_source`` value meaning "the embedded testbed" (started and stopped here).
EMBEDDED = "testbed"


@dataclass(frozen=True)
class InvestigationParams:
    """Everything one investigation needs; the report notebook's parameters map onto it.

    Attributes:
        incident_id: a name for the incident (runs of one incident are compared).
        ws_url: the WebSocket URL to replay, or ``testbed`` for the embedded testbed.
        token_env: environment variable holding the token (never the token itself).
        subprotocol: subprotocol template offered, e.g. ``jwt.{token}`` ('' for none).
        auth_header: Authorization header template, e.g. ``Bearer {token}`` ('' for none).
        ticket_url: single-use ticket endpoint (POSTed with the token; the socket then uses
            ``?ticket=``); ``auto`` derives it from ws_url; '' for none.
        attempts, concurrency, users: the replay's size.
        message: the client message template (start_agent by default).
        health_urls: readiness/health URLs probed beside the attempts.
        matrix: also run the handshake matrix.
        run_timeout_s: seconds an agent run may take after open.
        slo_data_s, slo_report_s: stage SLOs in seconds.
        workflow: the expected agents, in order.
        logs_source: a log source string, ``testbed`` (the testbed's logs pulled through the
            local Cloud Logging emulator with the real client) or '' for no logs.
        log_project, service, region: the Cloud Run service the logs belong to.
        log_start, log_end: the log window ('' = the replay window widened by log_margin_s).
        log_margin_s: how far before and after the replay the logs are read.
        request_timeout_s: the service's request timeout.
        window_s: seconds around a failure in which log rows count as near it.
        startup_window_s: a failure this soon after an instance start counts as after start.
        rules_dir: a directory of extra rules ('' for the built-in set only).
        overrides: investigator overrides of the five-whys tree.
        cache_dir: where Cloud Logging pulls are cached ('' for no cache).
        testbed_faults, testbed_time_scale, testbed_seed, testbed_args: the embedded
            testbed's start options (used only when ws_url is ``testbed``).
        seed: seed of the replay's jitter.
    """

    incident_id: str
    ws_url: str = EMBEDDED
    token_env: str = "UVS_DEMO_TOKEN"
    subprotocol: str = "jwt.{token}"
    auth_header: str = ""
    ticket_url: str = ""
    attempts: int = 20
    concurrency: int = 4
    users: int = 2
    message: str = DEFAULT_MESSAGE
    health_urls: tuple[str, ...] = ()
    matrix: bool = True
    run_timeout_s: float = 60.0
    slo_data_s: float = 5.0
    slo_report_s: float = 2.0
    workflow: tuple[str, ...] = ("triage", "data_helper", "reporting")
    logs_source: str = EMBEDDED
    log_project: str = "netra-staging"
    service: str = "netra-backend-staging"
    region: str = ""
    log_start: str = ""
    log_end: str = ""
    log_margin_s: float = 30.0
    request_timeout_s: float = 300.0
    window_s: float = 2.0
    startup_window_s: float = 30.0
    rules_dir: str = ""
    overrides: tuple[Mapping[str, Any], ...] = ()
    cache_dir: str = ""
    testbed_faults: tuple[str, ...] = ("database-down",)
    testbed_time_scale: float = 0.05
    testbed_seed: int = 0
    testbed_args: tuple[str, ...] = ()
    seed: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> InvestigationParams:
        """Build from notebook/params values (lists become tuples; unknown keys refused)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"unknown investigation parameters {unknown}",
                             expected="only " + ", ".join(sorted(known)))
        converted: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in values.items()
        }
        if not converted.get("incident_id"):
            raise UsageError("incident_id is empty", expected="a name for the incident")
        return cls(**converted)

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any]) -> InvestigationParams:
        """Build from a notebook's variables: the names that are parameters are taken, the
        rest ignored (the notebook's parameters cell is the source of truth)."""
        known = {f.name for f in fields(cls)}
        return cls.from_mapping({k: v for k, v in namespace.items() if k in known})

    def describe(self) -> dict[str, Any]:
        """The parameters as JSON values (no secrets: the token is only ever an env name)."""
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


@dataclass(frozen=True)
class Investigation:
    """What one investigation produced."""

    params: InvestigationParams
    spec: HandshakeSpec
    replay: ReplayResult | None
    matrix: Any
    logs: LogLoad | None
    correlation: Correlation
    five_whys: FiveWhys
    started: datetime
    finished: datetime
    status: str = "complete"
    notes: tuple[str, ...] = field(default=())
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def logs_frame(self) -> pd.DataFrame:
        """The log rows in memory (for a BigQuery load: the rows near failures)."""
        return self.logs.frame if self.logs is not None else empty_frame()

    @property
    def logs_data(self) -> pd.DataFrame | LogLoad:
        """What the log analyses take: the load (its aggregates, if pushed down) or no rows."""
        return self.logs if self.logs is not None else empty_frame()

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (the report's investigation.json)."""
        logs = (summarize_logs(self.logs, request_timeout_s=self.effective_request_timeout_s)
                if self.logs is not None else None)
        replay = self.replay.summary() if self.replay is not None else None
        return {
            "status": self.status,
            "notes": list(self.notes),
            "params": self.params.describe(),
            "logs": logs,
            "replay": replay,
            "matrix": self.matrix.summary() if self.matrix is not None else None,
            "five_whys": self.five_whys.as_dict(),
            "conformance": replay["conformance"] if replay else [],
            "evidence": [e.as_dict() for e in self.correlation.log.evidence],
            "facts": self.correlation.log.facts().as_dict(),
            "reproduce": {
                "replay_spec": _spec_json(self.spec),
                "log_filter": self.logs.meta.get("filter") if self.logs is not None else None,
                "log_source": self.logs.source if self.logs is not None else None,
            },
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }

    @property
    def effective_request_timeout_s(self) -> float:
        """The request timeout the analysis used (scaled like the embedded testbed)."""
        scale = self.params.testbed_time_scale if self.params.ws_url == EMBEDDED else 1.0
        return self.params.request_timeout_s * scale


def investigate(
    params: InvestigationParams,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Callable[[int], object] | None = None,
    monotonic: Callable[[], float] = time.perf_counter,
) -> Investigation:
    """Run the investigation: replay, logs, correlation and five whys (each phase timed)."""
    started = clock()
    notes: list[str] = []
    timings: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(phase: str) -> Iterator[None]:
        begin = monotonic()
        try:
            yield
        finally:
            timings[phase] = timings.get(phase, 0.0) + monotonic() - begin

    with contextlib.ExitStack() as stack:
        with timed("target_start"):
            target = stack.enter_context(_target(params))
        spec = _spec(params, target)
        with timed("replay"):
            replay = _replay(params, spec, target, progress=progress)
        with timed("matrix"):
            matrix = _matrix(params, spec, target) if params.matrix else None
        if target.handle is not None and not target.handle.running:
            notes.append("the embedded testbed process exited during the replay")
        with timed("log_pull"):
            logs = _logs(params, replay, target, stack, notes)
    analysis_began = monotonic()
    scale = params.testbed_time_scale if params.ws_url == EMBEDDED else 1.0
    corr_params = CorrelationParams(
        window_s=params.window_s,
        request_timeout_s=params.request_timeout_s * scale,
        startup_window_s=params.startup_window_s * scale,
        log_filter=str(logs.meta.get("filter", "")) if logs is not None else "",
        replay_spec=_spec_json(spec),
    )
    correlation = correlate(
        replay,
        matrix=matrix.summary() if matrix is not None else None,
        logs=logs,
        params=corr_params,
    )
    rule_paths: list[Path] = [BUILTIN_RULES_DIR]
    if params.rules_dir:
        rule_paths.append(Path(params.rules_dir))
    tree = build_five_whys(
        correlation.log.facts(),
        load_rules(rule_paths),
        correlation.problem,
        overrides=parse_overrides(list(params.overrides)),
    )
    timings["analysis"] = monotonic() - analysis_began
    gone = _unreachable_after_open(replay)
    if gone:
        notes.append(f"the target stopped answering during the replay: {gone} tries could not "
                     "connect after an earlier try had; the evidence covers part of the run")
    return Investigation(
        params=params, spec=spec, replay=replay, matrix=matrix, logs=logs,
        correlation=correlation, five_whys=tree, started=started, finished=clock(),
        status="partial" if gone else "complete", notes=tuple(notes), timings=timings,
    )


def save_investigation(investigation: Investigation, output_dir: str | Path) -> Path:
    """Write ``investigation.json`` (the report runner merges it into summary.json)."""
    path = Path(output_dir) / "investigation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(investigation.summary(), indent=1, default=str), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def _unreachable_after_open(replay: ReplayResult) -> int:
    """Tries that could not even connect after some earlier try had opened."""
    opened = [t.started_at for t in replay.traces if t.opened]
    if not opened:
        return 0
    first = min(opened)
    return sum(1 for t, c in zip(replay.traces, replay.classifications, strict=True)
               if c.outcome.value == "connect_failed" and t.started_at > first)


# Private: the target


@dataclass
class _Target:
    ws_url: str
    health_urls: tuple[str, ...]
    handle: Any = None  # a TestbedHandle when embedded
    scale: float = 1.0


@contextlib.contextmanager
def _target(params: InvestigationParams) -> Iterator[_Target]:
    if params.ws_url != EMBEDDED:
        yield _Target(params.ws_url, params.health_urls)
        return
    from uvs_analysis.testbed.launcher import start_testbed

    handle = start_testbed(
        params.testbed_faults,
        time_scale=params.testbed_time_scale,
        seed=params.testbed_seed,
        token_env=params.token_env,
        extra_args=params.testbed_args,
    )
    try:
        health = params.health_urls or (f"{handle.http_url}/health/ready",)
        yield _Target(handle.ws_url, health, handle, params.testbed_time_scale)
    finally:
        handle.stop()


def _spec(params: InvestigationParams, target: _Target) -> HandshakeSpec:
    scale = target.scale
    ping = 20.0 * scale
    headers = (("Authorization", params.auth_header),) if params.auth_header else ()
    ticket = params.ticket_url
    if ticket == "auto":
        ticket = ticket_url_for(target.ws_url)
    return HandshakeSpec(
        url=target.ws_url,
        headers=headers,
        ticket_url=ticket or None,
        subprotocols=(params.subprotocol,) if params.subprotocol else (),
        token_env=params.token_env,
        health_urls=target.health_urls,
        messages=(MessageStep(params.message),) if params.message else (),
        run_timeout_s=max(3.0, params.run_timeout_s * scale),
        open_timeout_s=max(2.0, 10.0 * scale),
        close_timeout_s=max(0.5, 5.0 * scale),
        ping_interval_s=ping,
        ping_timeout_s=ping,
        retry=RetryPolicy(initial_delay_s=0.5 * scale, max_delay_s=8.0 * scale),
    )


def _contract(params: InvestigationParams, scale: float) -> ContractParams:
    return ContractParams(
        required_agents=params.workflow,
        slo_data_s=params.slo_data_s * scale,
        slo_report_s=params.slo_report_s * scale,
    )


def _tokens(params: InvestigationParams, target: _Target) -> Callable[[int], str] | None:
    if target.handle is None or params.users <= 1:
        return None
    handle = target.handle
    return lambda user: str(handle.mint_token(f"demo-user-{user + 1:03d}"))


def _replay(params: InvestigationParams, spec: HandshakeSpec, target: _Target, *,
            progress: Callable[[int], object] | None) -> ReplayResult:
    from uvs_analysis.replay.runner import run_replay

    return run_replay(
        spec,
        attempts=params.attempts,
        concurrency=params.concurrency,
        users=params.users,
        progress=progress,
        tokens=_tokens(params, target),
        contract=_contract(params, target.scale),
        probe_interval_s=max(0.2, 1.0 * target.scale * 10),
        seed=params.seed,
    )


def _matrix(params: InvestigationParams, spec: HandshakeSpec, target: _Target) -> Any:
    from uvs_analysis.replay.matrix import run_matrix

    if target.handle is not None and not target.handle.running:
        return None
    return run_matrix(spec, attempts_per_variant=3, contract=_contract(params, target.scale),
                      seed=params.seed)


# Private: logs


def _logs(params: InvestigationParams, replay: ReplayResult, target: _Target,
          stack: contextlib.ExitStack, notes: list[str]) -> LogLoad | None:
    if not params.logs_source:
        return None
    window = replay.window
    margin = timedelta(seconds=params.log_margin_s)
    start = params.log_start or (rfc3339(window[0] - margin) if window else "")
    end = params.log_end or (rfc3339(window[1] + margin) if window else "")
    if not start or not end:
        raise UsageError("the log window is unknown (no replay ran and no log_start/log_end)",
                         expected="log_start and log_end, or a replay")
    source = params.logs_source
    if source == EMBEDDED:
        if target.handle is None:
            raise UsageError("logs_source is 'testbed' but ws_url is not the embedded testbed",
                             expected="a log source string for a server the workbook did not "
                             "start (a file or cloudlogging://PROJECT)")
        from uvs_analysis.emulator.server import start_emulator

        target.handle.stop()
        emulator = stack.enter_context(
            start_emulator([target.handle.log_file], quota_per_minute=None))
        source = f"cloudlogging://{params.log_project}?endpoint={emulator.endpoint}"
    scale = params.testbed_time_scale if params.ws_url == EMBEDDED else 1.0
    source = with_request_timeout(source, params.request_timeout_s * scale)
    query = LogQuery(
        project=params.log_project if source.startswith("cloudlogging://") else "local",
        start=parse_time(start, name="log_start"), end=parse_time(end, name="log_end"),
        service=params.service or None, region=params.region or None,
    )
    load = load_logs(source, query, cache_dir=params.cache_dir or None,
                     now=lambda: datetime.now(UTC))
    entries = load.aggregates.entries if load.aggregates is not None else len(load.frame)
    if not entries:
        notes.append(f"no log entries matched the query on {load.source}")
    return load


def with_request_timeout(source: str, timeout_s: float) -> str:
    """A bigquery:// source told the request timeout (BigQuery judges sessions at it where
    the logs live); other sources, and one that already names a timeout, are returned as
    they are."""
    if not source.startswith("bigquery://") or "request_timeout_s=" in source:
        return source
    return f"{source}{'&' if '?' in source else '?'}request_timeout_s={min(timeout_s, 3600.0):g}"


def _spec_json(spec: HandshakeSpec) -> str:
    data = asdict(spec)
    return json.dumps(data, sort_keys=True, default=str)
