"""ReplayResult: the recorded traces judged (pure), as DataFrames and a JSON summary.

``build_result`` classifies every try, groups tries into attempts, checks the contract of every
run, the isolation between users and RFC 6455 conformance. The three frames and their columns:

- ``attempts_frame()``: one row per connection try (see ``ATTEMPT_COLUMNS``);
- ``frames_frame()``: one row per recorded message (``FRAME_COLUMNS``);
- ``probes_frame()``: one row per health probe (``PROBE_COLUMNS``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, cast

import pandas as pd

from uvs_analysis.replay.classify import (
    AttemptVerdict,
    Classification,
    ConformanceFinding,
    attempt_verdicts,
    classify,
    conformance,
)
from uvs_analysis.replay.contract import ContractParams, ContractResult, check_contract, is_run
from uvs_analysis.replay.isolation import IsolationReport, check_isolation
from uvs_analysis.replay.trace import AttemptTrace, ProbeRecord

__all__ = [
    "ATTEMPT_COLUMNS",
    "FRAME_COLUMNS",
    "PROBE_COLUMNS",
    "ReplayResult",
    "build_result",
    "percentile",
]

_S, _I, _F, _B, _T = "string", "Int64", "Float64", "boolean", "datetime64[ns, UTC]"

#: attempts_frame columns: name -> (dtype, meaning).
ATTEMPT_COLUMNS: Final = MappingProxyType({
    "attempt": (_I, "logical attempt number"),
    "try": (_I, "try number within the attempt (0 = first, then retries)"),
    "user": (_I, "simulated user index"),
    "thread_id": (_S, "thread id the try asked for"),
    "url": (_S, "WebSocket URL (redacted)"),
    "started_at": (_T, "wall-clock start (UTC)"),
    "ended_at": (_T, "wall-clock end (UTC)"),
    "outcome": (_S, "Outcome name"),
    "label": (_S, "outcome/code"),
    "code": (_I, "HTTP status or close code behind the outcome"),
    "phase": (_S, "where it happened (dns, tcp, tls, http, before_first_event, mid_run, ...)"),
    "detail": (_S, "one line for people"),
    "final": (_B, "this is the attempt's last try"),
    "persistence": (_S, "ok / transient / persistent on the final try; 'retried' otherwise"),
    "http_status": (_I, "handshake HTTP status"),
    "retry_after": (_S, "Retry-After of the handshake answer"),
    "subprotocol": (_S, "negotiated subprotocol (redacted)"),
    "dns_ms": (_F, "DNS duration"),
    "tcp_ms": (_F, "TCP connect duration"),
    "tls_ms": (_F, "TLS handshake duration (wss only)"),
    "http_ms": (_F, "upgrade request -> response"),
    "handshake_ms": (_F, "DNS start -> handshake response"),
    "first_frame_ms": (_F, "try start -> first received message"),
    "close_ms": (_F, "try start -> connection closed"),
    "duration_ms": (_F, "try length"),
    "frames_total": (_I, "messages seen (both directions)"),
    "frames_dropped": (_I, "messages counted but not kept (record cap)"),
    "messages_sent": (_I, "messages the client sent"),
    "agent_events": (_I, "agent events received"),
    "close_rcvd_code": (_I, "code of the Close frame received"),
    "close_rcvd_reason": (_S, "reason of the Close frame received"),
    "close_sent_code": (_I, "code of the Close frame the client sent"),
    "close_sent_reason": (_S, "reason of the Close frame the client sent"),
    "rcvd_then_sent": (_B, "True: the server closed first"),
    "close_code": (_I, "what the library reports (1006 when no Close frame was received)"),
    "closed_by": (_S, "server, client or transport"),
    "close_payload_hex": (_S, "raw payload of the last Close frame received"),
    "exception_type": (_S, "exception class that ended the try"),
    "exception_message": (_S, "its message (redacted)"),
    "exception_cause": (_S, "its cause (redacted)"),
    "is_run": (_B, "an agent run was requested"),
    "contract_ok": (_B, "the run honoured the contract (NA when not a run)"),
    "contract_violations": (_I, "number of contract violations"),
    "data_s": (_F, "data processing stage latency"),
    "report_s": (_F, "report delivery stage latency"),
})
#: frames_frame columns.
FRAME_COLUMNS: Final = MappingProxyType({
    "attempt": (_I, "logical attempt"),
    "try": (_I, "try within the attempt"),
    "user": (_I, "user index"),
    "index": (_I, "message position within the try"),
    "direction": (_S, "recv or sent"),
    "t_ms": (_F, "ms since the try started"),
    "at": (_T, "wall-clock time (UTC)"),
    "opcode": (_S, "text or binary"),
    "size": (_I, "payload bytes"),
    "event_type": (_S, "message type"),
    "agent_name": (_S, "agent"),
    "tool_name": (_S, "tool"),
    "run_id": (_S, "run id"),
    "user_id": (_S, "user id"),
    "thread_id": (_S, "thread id"),
    "shape": (_S, "bridge, flat, validator or message"),
    "text": (_S, "payload (redacted, possibly cut)"),
    "truncated": (_B, "text was cut"),
})
#: probes_frame columns.
PROBE_COLUMNS: Final = MappingProxyType({
    "url": (_S, "probed URL (redacted)"),
    "phase": (_S, "before, during or after"),
    "started_at": (_T, "wall-clock start (UTC)"),
    "elapsed_ms": (_F, "time to answer or error"),
    "status": (_I, "HTTP status (NA: no answer)"),
    "error_type": (_S, "exception when no answer"),
    "retry_after": (_S, "Retry-After header"),
    "body": (_S, "body (redacted, cut)"),
})


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    if not data:
        return None
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def _frame(rows: list[dict[str, Any]], columns: Mapping[str, tuple[str, str]]) -> pd.DataFrame:
    data: dict[str, pd.Series[Any]] = {}
    for name, (dtype, _) in columns.items():
        values = pd.Series([r.get(name) for r in rows], dtype=object)
        if dtype == _T:
            data[name] = pd.to_datetime(values, utc=True)
        else:
            data[name] = values.astype(cast(Any, dtype))
    return pd.DataFrame(data, columns=list(columns))


@dataclass(frozen=True)
class ReplayResult:
    """Everything one replay observed and concluded.

    Attributes:
        url: the target (redacted).
        attempts: logical attempts requested; users: simulated users.
        traces: every try, in (attempt, try) order.
        classifications: one per trace, same order.
        verdicts: one per attempt (transient / persistent).
        contracts: one per run (traces where an agent run was requested).
        isolation: the cross-user verdict.
        findings: RFC 6455 conformance findings.
        probes: health probes before, during and after.
        params: the contract parameters used.
    """

    url: str
    attempts: int
    users: int
    traces: tuple[AttemptTrace, ...]
    classifications: tuple[Classification, ...]
    verdicts: tuple[AttemptVerdict, ...]
    contracts: tuple[ContractResult, ...]
    isolation: IsolationReport
    findings: tuple[ConformanceFinding, ...]
    probes: tuple[ProbeRecord, ...]
    params: ContractParams

    def attempts_frame(self) -> pd.DataFrame:
        """One row per try; columns in ``ATTEMPT_COLUMNS``."""
        verdict = {v.attempt: v for v in self.verdicts}
        contract = {(c.attempt, c.try_index): c for c in self.contracts}
        rows = []
        for t, c in zip(self.traces, self.classifications, strict=True):
            v = verdict[t.attempt]
            final = t.try_index == v.tries - 1
            k = contract.get((t.attempt, t.try_index))
            rows.append({
                "attempt": t.attempt, "try": t.try_index, "user": t.user,
                "thread_id": t.thread_id, "url": t.url, "started_at": t.started_at,
                "ended_at": t.ended_at, "outcome": c.outcome.value, "label": c.label,
                "code": c.code, "phase": c.phase, "detail": c.detail, "final": final,
                "persistence": v.persistence if final else "retried",
                "http_status": t.http_status, "retry_after": t.retry_after,
                "subprotocol": t.subprotocol, "dns_ms": t.dns_ms, "tcp_ms": t.tcp_ms,
                "tls_ms": t.tls_ms, "http_ms": t.http_ms, "handshake_ms": t.handshake_ms,
                "first_frame_ms": t.first_frame_ms, "close_ms": t.close_ms,
                "duration_ms": t.duration_ms, "frames_total": t.frames_total,
                "frames_dropped": t.frames_dropped, "messages_sent": t.messages_sent,
                "agent_events": t.agent_events,
                "close_rcvd_code": t.close_rcvd.code if t.close_rcvd else None,
                "close_rcvd_reason": t.close_rcvd.reason if t.close_rcvd else None,
                "close_sent_code": t.close_sent.code if t.close_sent else None,
                "close_sent_reason": t.close_sent.reason if t.close_sent else None,
                "rcvd_then_sent": t.rcvd_then_sent, "close_code": t.close_code,
                "closed_by": t.closed_by, "close_payload_hex": t.close_payload_hex,
                "exception_type": t.exception_type, "exception_message": t.exception_message,
                "exception_cause": t.exception_cause, "is_run": k is not None,
                "contract_ok": k.ok if k else None,
                "contract_violations": len(k.violations) if k else None,
                "data_s": k.data_s if k else None, "report_s": k.report_s if k else None,
            })
        return _frame(rows, ATTEMPT_COLUMNS)

    def frames_frame(self) -> pd.DataFrame:
        """One row per recorded message; columns in ``FRAME_COLUMNS``."""
        rows = []
        for t in self.traces:
            for f in t.frames:
                rows.append({
                    "attempt": t.attempt, "try": t.try_index, "user": t.user, "index": f.index,
                    "direction": f.direction, "t_ms": f.t_ms,
                    "at": t.started_at + timedelta(milliseconds=f.t_ms), "opcode": f.opcode,
                    "size": f.size, "event_type": f.event_type, "agent_name": f.agent_name,
                    "tool_name": f.tool_name, "run_id": f.run_id, "user_id": f.user_id,
                    "thread_id": f.thread_id, "shape": f.shape, "text": f.text,
                    "truncated": f.truncated,
                })
        return _frame(rows, FRAME_COLUMNS)

    def probes_frame(self) -> pd.DataFrame:
        """One row per health probe; columns in ``PROBE_COLUMNS``."""
        rows = [
            {"url": p.url, "phase": p.phase, "started_at": p.started_at,
             "elapsed_ms": p.elapsed_ms, "status": p.status, "error_type": p.error_type,
             "retry_after": p.retry_after, "body": p.body}
            for p in self.probes
        ]
        return _frame(rows, PROBE_COLUMNS)

    @property
    def window(self) -> tuple[datetime, datetime] | None:
        """The wall-clock window covering every try (for joining with server logs)."""
        if not self.traces:
            return None
        return min(t.started_at for t in self.traces), max(t.ended_at for t in self.traces)

    def summary(self) -> dict[str, Any]:
        """The JSON summary (the ``replay --json`` object).

        ``outcomes``/``outcome_labels`` count each attempt once (its last try); ``close_codes``
        counts every opened try (1006 when no Close frame was received); ``handshake_ms`` is over
        every try that got a handshake answer.
        """
        finals = [v.final for v in self.verdicts]
        opened = [t for t in self.traces if t.opened]
        codes: Counter[str] = Counter(str(t.close_code) for t in opened if t.close_code)
        hs = [t.handshake_ms for t in self.traces if t.handshake_ms is not None]
        rules: Counter[str] = Counter(v.rule for c in self.contracts for v in c.violations)
        data = [c.data_s for c in self.contracts if c.data_s is not None]
        report = [c.report_s for c in self.contracts if c.report_s is not None]
        found: Counter[tuple[str, int | None, str]] = Counter(
            (f.rule, f.code, f.detail) for f in self.findings
        )
        window = self.window
        return {
            "url": self.url,
            "attempts": self.attempts,
            "tries": len(self.traces),
            "outcomes": dict(Counter(c.outcome.value for c in finals).most_common()),
            "try_outcomes": dict(Counter(c.outcome.value
                                         for c in self.classifications).most_common()),
            "outcome_labels": dict(Counter(c.label for c in finals).most_common()),
            "close_codes": dict(codes.most_common()),
            "handshake_ms": {"p50": _round(percentile(hs, 50)), "p95": _round(percentile(hs, 95))},
            "contract": {
                "runs": len(self.contracts),
                "violations": sum(len(c.violations) for c in self.contracts),
                "failed_runs": sum(1 for c in self.contracts if not c.ok),
                "by_rule": dict(rules.most_common()),
            },
            "slo": {
                "data_p95_s": _round(percentile(data, 95), 3),
                "report_p95_s": _round(percentile(report, 95), 3),
                "breaches": sum(len(c.slo_breaches) for c in self.contracts),
                "data_slo_s": self.params.slo_data_s,
                "report_slo_s": self.params.slo_report_s,
            },
            "isolation": {
                "users": self.isolation.users,
                "violations": len(self.isolation.violations),
                "checked_frames": self.isolation.checked_frames,
            },
            "conformance": [
                {"rule": rule, "code": code, "detail": detail, "count": n}
                for (rule, code, detail), n in found.most_common()
            ],
            "transient": sum(1 for v in self.verdicts if v.persistence == "transient"),
            "persistent": sum(1 for v in self.verdicts if v.persistence == "persistent"),
            "probes": {
                "count": len(self.probes),
                "failed": sum(1 for p in self.probes if p.status is None or p.status >= 400),
            },
            "window": [window[0].isoformat(), window[1].isoformat()] if window else None,
        }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def build_result(
    traces: Iterable[AttemptTrace],
    *,
    url: str,
    attempts: int,
    users: int = 1,
    probes: Iterable[ProbeRecord] = (),
    params: ContractParams | None = None,
    user_ids: Mapping[int, str] | None = None,
) -> ReplayResult:
    """Judge recorded traces (pure): classification, verdicts, contract, isolation, findings."""
    ordered = tuple(sorted(traces, key=lambda t: (t.attempt, t.try_index)))
    params = params or ContractParams()
    classifications = tuple(classify(t) for t in ordered)
    contracts = tuple(check_contract(t, params) for t in ordered if is_run(t))
    findings = tuple(f for t in ordered for f in conformance(t))
    return ReplayResult(
        url=url,
        attempts=attempts,
        users=users,
        traces=ordered,
        classifications=classifications,
        verdicts=attempt_verdicts(ordered, classifications),
        contracts=contracts,
        isolation=check_isolation(ordered, user_ids),
        findings=findings,
        probes=tuple(probes),
        params=params,
    )
