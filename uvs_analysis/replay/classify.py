"""Outcome classification and RFC 6455 conformance: pure functions over recorded traces.

``classify`` is total: every AttemptTrace gets exactly one Outcome. Each outcome has a label
that adds the code that matters (``handshake_refused/503``, ``closed_before_first_event/1011``,
``abnormal_closure/1006``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from uvs_analysis.replay.closecodes import ABNORMAL, NO_STATUS, describe, wire_problem
from uvs_analysis.replay.spec import RetryPolicy
from uvs_analysis.replay.trace import AttemptTrace

__all__ = [
    "FAILURES",
    "AttemptVerdict",
    "Classification",
    "ConformanceFinding",
    "Outcome",
    "attempt_verdicts",
    "classify",
    "conformance",
    "should_retry",
]


class Outcome(StrEnum):
    """What happened to one try, from the client's side."""

    DNS_FAILURE = "dns_failure"
    CONNECT_FAILED = "connect_failed"
    TLS_FAILURE = "tls_failure"
    TICKET_FAILED = "ticket_failed"
    HANDSHAKE_TIMEOUT = "handshake_timeout"
    HANDSHAKE_REFUSED = "handshake_refused"
    HANDSHAKE_INVALID = "handshake_invalid"
    CLOSED_BEFORE_FIRST_EVENT = "closed_before_first_event"
    CLOSED_MID_RUN = "closed_mid_run"
    ABNORMAL_CLOSURE = "abnormal_closure"
    TIMED_OUT = "timed_out"
    COMPLETED = "completed"
    CLIENT_ERROR = "client_error"


#: Every outcome except a clean completion.
FAILURES = frozenset(o for o in Outcome if o is not Outcome.COMPLETED)

_HANDSHAKE_ERRORS = frozenset(
    {"InvalidMessage", "InvalidHeader", "InvalidHeaderValue", "InvalidUpgrade",
     "InvalidOrigin", "NegotiationError", "InvalidHandshake", "SecurityError", "ProtocolError"}
)


@dataclass(frozen=True)
class Classification:
    """One try's outcome.

    Attributes:
        outcome: the Outcome.
        code: the HTTP status (refused) or close code (closes; 1006 when none was received).
        label: ``outcome`` or ``outcome/code``.
        phase: "ticket", "dns", "tcp", "tls", "http" (opening), "before_first_event",
            "mid_run", "after_completion" or "open" (nothing went wrong).
        detail: one line for people: the exception, reason, sent code or Retry-After.
    """

    outcome: Outcome
    code: int | None
    label: str
    phase: str
    detail: str


def _mk(outcome: Outcome, code: int | None, phase: str, detail: str) -> Classification:
    label = outcome.value if code is None else f"{outcome.value}/{code}"
    return Classification(outcome, code, label, phase, detail)


def _exc_detail(trace: AttemptTrace) -> str:
    text = trace.exception_type or "no exception"
    if trace.exception_message:
        text += f": {trace.exception_message}"
    if trace.exception_cause:
        text += f" (cause {trace.exception_cause})"
    return text


def _opening(trace: AttemptTrace) -> Classification:
    mro = set(trace.exception_mro)
    phase = trace.failed_phase or "http"
    detail = _exc_detail(trace)
    if phase == "ticket":
        return _mk(Outcome.TICKET_FAILED, trace.http_status, phase, detail)
    if "gaierror" in mro or phase == "dns":
        return _mk(Outcome.DNS_FAILURE, None, phase, detail)
    if trace.http_status is not None and trace.http_status != 101:
        extra = f"; Retry-After {trace.retry_after}" if trace.retry_after else ""
        return _mk(Outcome.HANDSHAKE_REFUSED, trace.http_status, phase, detail + extra)
    if "TimeoutError" in mro:
        return _mk(Outcome.HANDSHAKE_TIMEOUT, None, phase, detail)
    if "SSLError" in mro or "CertificateError" in mro or (phase == "tls" and "OSError" in mro):
        return _mk(Outcome.TLS_FAILURE, None, "tls", detail)
    if mro & _HANDSHAKE_ERRORS:
        return _mk(Outcome.HANDSHAKE_INVALID, None, phase, detail)
    if "OSError" in mro:
        return _mk(Outcome.CONNECT_FAILED, None, phase, detail)
    return _mk(Outcome.CLIENT_ERROR, None, phase, detail)


def classify(trace: AttemptTrace) -> Classification:
    """Classify one try. Total: never raises, one outcome per trace."""
    if not trace.opened:
        if trace.exception_type is None and trace.http_status is None:
            return _mk(Outcome.CLIENT_ERROR, None, trace.failed_phase or "http",
                       "the try ended before a handshake without an error")
        return _opening(trace)
    if trace.completed:
        return _mk(Outcome.COMPLETED, None, "after_completion" if trace.agent_events else "open",
                   "the client closed after the run completed")
    phase = "mid_run" if trace.agent_events else "before_first_event"
    if trace.timed_out:
        return _mk(Outcome.TIMED_OUT, None, phase,
                   f"no completion within the run deadline ({trace.agent_events} agent events)")
    if trace.close_rcvd is None:
        sent = trace.close_sent
        detail = "no Close frame received"
        if sent is not None:
            detail += f"; the client sent {describe(sent.code)} {sent.reason!r}".rstrip()
        if trace.close_payload_hex is not None:
            detail += f"; rejected Close payload {trace.close_payload_hex}"
        if trace.exception_cause:
            detail += f" (cause {trace.exception_cause})"
        return _mk(Outcome.ABNORMAL_CLOSURE, ABNORMAL, phase, detail)
    rcvd = trace.close_rcvd
    detail = f"server closed with {describe(rcvd.code)}" + (f" {rcvd.reason!r}" if rcvd.reason
                                                            else "")
    if not trace.agent_events:
        return _mk(Outcome.CLOSED_BEFORE_FIRST_EVENT, rcvd.code, phase, detail)
    return _mk(Outcome.CLOSED_MID_RUN, rcvd.code, phase, detail)


def should_retry(c: Classification, policy: RetryPolicy) -> bool:
    """Whether a real client with ``policy`` would reconnect after this outcome."""
    if c.outcome is Outcome.COMPLETED:
        return False
    if c.outcome.value in policy.retry_outcomes:
        return True
    if c.outcome is Outcome.HANDSHAKE_REFUSED:
        return c.code in policy.retry_statuses
    if c.phase == "before_first_event" and c.outcome in (
        Outcome.CLOSED_BEFORE_FIRST_EVENT, Outcome.ABNORMAL_CLOSURE
    ):
        return c.code in policy.retry_close_codes
    return False


@dataclass(frozen=True)
class ConformanceFinding:
    """An RFC 6455 problem seen on the wire.

    Attributes:
        rule: "reserved_code_on_wire", "code_out_of_range", "client_code_from_server",
            "close_without_status", "close_frame_too_short" or "invalid_close_reason".
        code: the offending code, if any.
        detail: one line naming the code and the rule.
        attempt, try_index: where it was seen.
    """

    rule: str
    code: int | None
    detail: str
    attempt: int
    try_index: int


def conformance(trace: AttemptTrace) -> tuple[ConformanceFinding, ...]:
    """RFC 6455 findings for the Close frame the server sent, if any."""
    found: list[ConformanceFinding] = []

    def add(rule: str, code: int | None, detail: str) -> None:
        found.append(ConformanceFinding(rule, code, detail, trace.attempt, trace.try_index))

    payload_hex = trace.close_payload_hex
    server_closed_first = trace.rcvd_then_sent is not False
    if payload_hex is not None:
        try:
            payload = bytes.fromhex(payload_hex)
        except ValueError:
            payload = b""
        if len(payload) == 0:
            if server_closed_first:
                add("close_without_status", NO_STATUS,
                    "the server initiated a close with no status code (seen as 1005)")
        elif len(payload) == 1:
            add("close_frame_too_short", None, "a Close frame with a 1-byte payload")
        else:
            code = int.from_bytes(payload[:2], "big")
            problem = wire_problem(code, sender="server")
            if problem is not None:
                rule = (
                    "reserved_code_on_wire" if code in {1004, 1005, 1006, 1015}
                    else "client_code_from_server" if code == 1010
                    else "code_out_of_range"
                )
                add(rule, code, problem)
            try:
                payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                add("invalid_close_reason", code, f"Close {code} with a reason that is not UTF-8")
    elif trace.close_rcvd is not None:
        problem = wire_problem(trace.close_rcvd.code, sender="server")
        if problem is not None:
            add("code_out_of_range", trace.close_rcvd.code, problem)
    return tuple(found)


@dataclass(frozen=True)
class AttemptVerdict:
    """One logical attempt after its retries.

    Attributes:
        attempt: the attempt number.
        tries: how many tries it took.
        final: the last try's classification.
        persistence: "ok" (first try completed), "transient" (a retry completed) or
            "persistent" (no try completed).
    """

    attempt: int
    tries: int
    final: Classification
    persistence: str


def attempt_verdicts(
    traces: Iterable[AttemptTrace],
    classifications: Sequence[Classification] | None = None,
) -> tuple[AttemptVerdict, ...]:
    """Group tries by attempt and say whether each failure was transient or persistent."""
    traces = list(traces)
    cls = list(classifications) if classifications is not None else [classify(t) for t in traces]
    groups: dict[int, list[tuple[int, Classification]]] = defaultdict(list)
    for trace, c in zip(traces, cls, strict=True):
        groups[trace.attempt].append((trace.try_index, c))
    verdicts = []
    for attempt in sorted(groups):
        tries = [c for _, c in sorted(groups[attempt], key=lambda item: item[0])]
        final = tries[-1]
        if final.outcome is not Outcome.COMPLETED:
            persistence = "persistent"
        elif len(tries) > 1:
            persistence = "transient"
        else:
            persistence = "ok"
        verdicts.append(AttemptVerdict(attempt, len(tries), final, persistence))
    return tuple(verdicts)
