"""Tests for outcome classification and RFC 6455 conformance (pure, on recorded traces)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uvs_analysis.replay.classify import (
    Outcome,
    attempt_verdicts,
    classify,
    conformance,
    should_retry,
)
from uvs_analysis.replay.spec import RetryPolicy
from uvs_analysis.replay.trace import AttemptTrace, CloseInfo, trace_from_dict

DATA = Path(__file__).parent / "data"
RECORDED = json.loads((DATA / "testbed_traces.json").read_text())
T0 = datetime(2025, 9, 10, 21, 30, tzinfo=UTC)


def recorded(name: str) -> AttemptTrace:
    return trace_from_dict(RECORDED[name])


def base(**kw: Any) -> AttemptTrace:
    return AttemptTrace(attempt=0, try_index=0, user=0, thread_id="t", url="ws://x/ws",
                        started_at=T0, ended_at=T0, **kw)


OPEN = {"http_status": 101}


@pytest.mark.parametrize("name,label", [
    ("healthy_bridge", "completed"),
    ("healthy_flat", "completed"),
    ("healthy_validator", "completed"),
    ("database_down", "closed_before_first_event/1011"),
    ("handler_crash", "abnormal_closure/1006"),
    ("reserved_close_code", "abnormal_closure/1006"),
    ("startup_race", "handshake_refused/503"),
    ("event_loop_blocked", "abnormal_closure/1006"),
    ("shutdown_mid_run", "closed_mid_run/1012"),
])
def test_recorded_testbed_traces(name: str, label: str) -> None:
    """Each recorded fault trace gets the outcome one expects from the fault."""
    assert classify(recorded(name)).label == label


def test_keepalive_timeout_keeps_the_sent_code() -> None:
    """A client-side keepalive failure is 1006 received, with the 1011 the client sent named."""
    c = classify(recorded("event_loop_blocked"))
    assert "1011" in c.detail and "keepalive" in c.detail


def test_startup_race_reports_retry_after() -> None:
    """A refused handshake names its status and Retry-After."""
    c = classify(recorded("startup_race"))
    assert c.code == 503 and "Retry-After" in c.detail


@pytest.mark.parametrize("mro,phase,outcome", [
    (("gaierror", "OSError"), "dns", Outcome.DNS_FAILURE),
    (("ConnectionRefusedError", "OSError"), "tcp", Outcome.CONNECT_FAILED),
    (("SSLError", "OSError"), "tls", Outcome.TLS_FAILURE),
    (("TimeoutError", "OSError"), "http", Outcome.HANDSHAKE_TIMEOUT),
    (("InvalidMessage", "InvalidHandshake"), "http", Outcome.HANDSHAKE_INVALID),
    (("TicketError", "Exception"), "ticket", Outcome.TICKET_FAILED),
    (("ValueError", "Exception"), "http", Outcome.CLIENT_ERROR),
])
def test_opening_failures(mro: tuple[str, ...], phase: str, outcome: Outcome) -> None:
    """Opening failures are classified by exception class and phase."""
    t = base(failed_phase=phase, exception_type=mro[0], exception_mro=mro)
    assert classify(t).outcome is outcome


def test_closes_by_phase_and_code() -> None:
    """Server closes are split by whether an agent event came first, and carry the code."""
    closed = base(**OPEN, close_rcvd=CloseInfo(1011, "x"), close_code=1011)
    assert classify(closed).label == "closed_before_first_event/1011"
    assert classify(replace(closed, agent_events=3)).label == "closed_mid_run/1011"
    assert classify(replace(closed, close_rcvd=None, close_code=1006)).label == \
        "abnormal_closure/1006"
    assert classify(base(**OPEN, timed_out=True)).outcome is Outcome.TIMED_OUT


def test_conformance_on_recorded_reserved_code() -> None:
    """The reserved code put on the wire by the testbed is named in a finding."""
    findings = conformance(recorded("reserved_close_code"))
    assert [f.rule for f in findings] == ["reserved_code_on_wire"]
    assert findings[0].code in (1005, 1006)
    assert conformance(recorded("healthy_bridge")) == ()


@pytest.mark.parametrize("payload,rule,code", [
    ("03ec", "reserved_code_on_wire", 1004),
    ("03f7", "reserved_code_on_wire", 1015),
    ("07d0", "code_out_of_range", 2000),
    ("03e7", "code_out_of_range", 999),
    ("1388", "code_out_of_range", 5000),
    ("03f2", "client_code_from_server", 1010),
    ("", "close_without_status", 1005),
    ("03", "close_frame_too_short", None),
    ("03e8ff", "invalid_close_reason", 1000),
])
def test_conformance_rules(payload: str, rule: str, code: int | None) -> None:
    """Each RFC 6455 problem in a raw Close payload is named with its code."""
    findings = conformance(base(**OPEN, close_payload_hex=payload))
    assert [(f.rule, f.code) for f in findings] == [(rule, code)]


def test_client_initiated_empty_echo_is_not_a_finding() -> None:
    """An empty Close answering the client's own close is not a server-initiated close."""
    assert conformance(base(**OPEN, close_payload_hex="", rcvd_then_sent=False)) == ()


def test_transient_and_persistent() -> None:
    """A failure followed by a completed retry is transient; failures to the end persistent."""
    refused = base(http_status=503, failed_phase="http", exception_type="InvalidStatus",
                   exception_mro=("InvalidStatus",))
    ok = base(**OPEN, completed=True)
    traces = [refused, replace(ok, try_index=1), replace(refused, attempt=1),
              replace(refused, attempt=1, try_index=1), replace(ok, attempt=2)]
    verdicts = attempt_verdicts(traces)
    assert [v.persistence for v in verdicts] == ["transient", "persistent", "ok"]
    assert [v.tries for v in verdicts] == [2, 2, 1]


def test_should_retry_follows_policy() -> None:
    """503 and early 1011 are retried; 403 and mid-run closes are not."""
    policy = RetryPolicy()
    assert should_retry(classify(base(http_status=503, exception_type="X")), policy)
    assert not should_retry(classify(base(http_status=403, exception_type="X")), policy)
    early = base(**OPEN, close_rcvd=CloseInfo(1011, ""), close_code=1011)
    assert should_retry(classify(early), policy)
    assert not should_retry(classify(replace(early, agent_events=2)), policy)


_names = st.sampled_from(["gaierror", "OSError", "TimeoutError", "SSLError", "InvalidStatus",
                          "InvalidMessage", "ValueError", "ConnectionClosedError", "X"])
_traces = st.builds(
    base,
    http_status=st.one_of(st.none(), st.sampled_from([101, 200, 403, 500, 503])),
    failed_phase=st.one_of(st.none(), st.sampled_from(["ticket", "dns", "tcp", "tls", "http"])),
    exception_type=st.one_of(st.none(), _names),
    exception_mro=st.lists(_names, max_size=3).map(tuple),
    close_rcvd=st.one_of(st.none(), st.builds(CloseInfo, st.integers(0, 70000), st.text())),
    close_sent=st.one_of(st.none(), st.builds(CloseInfo, st.integers(0, 70000), st.text())),
    close_payload_hex=st.one_of(st.none(), st.binary(max_size=6).map(bytes.hex), st.text()),
    rcvd_then_sent=st.one_of(st.none(), st.booleans()),
    agent_events=st.integers(0, 5),
    completed=st.booleans(),
    timed_out=st.booleans(),
)


@given(_traces)
def test_classifier_is_total(trace: AttemptTrace) -> None:
    """Every trace gets exactly one outcome and conformance never raises."""
    c = classify(trace)
    assert isinstance(c.outcome, Outcome)
    assert c.label.startswith(c.outcome.value)
    conformance(trace)
