"""Tests for run_replay: attempts, concurrency, users, retries, probes, secrets; testbed runs."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from uvs_analysis.errors import UsageError
from uvs_analysis.replay.contract import ContractParams
from uvs_analysis.replay.runner import run_replay
from uvs_analysis.replay.spec import DEFAULT_MESSAGE, HandshakeSpec, MessageStep, RetryPolicy

from .conftest import CANARY, CANARY_ENV, AgentServer, FakeClock, closed_port

ENV = {CANARY_ENV: CANARY}
NO_RETRY = RetryPolicy(max_retries=0)


def spec(url: str, **kw: Any) -> HandshakeSpec:
    kw.setdefault("messages", (MessageStep(DEFAULT_MESSAGE),))
    kw.setdefault("subprotocols", ("jwt.{token}",))
    kw.setdefault("token_env", CANARY_ENV)
    kw.setdefault("retry", NO_RETRY)
    kw.setdefault("run_timeout_s", 5.0)
    kw.setdefault("close_timeout_s", 1.0)
    return HandshakeSpec(url=url, **kw)


def test_every_attempt_is_accounted_for(agent_server: AgentServer) -> None:
    """40 attempts at concurrency 8 over 4 users: 40 verdicts, progress called 40 times."""
    ticks: list[int] = []
    r = run_replay(spec(agent_server.url("/healthy?shape=flat")), attempts=40, concurrency=8,
                   users=4, env=ENV, progress=ticks.append, clock=FakeClock())
    s = r.summary()
    assert s["attempts"] == 40 and s["outcomes"] == {"completed": 40}
    assert sum(ticks) == 40
    assert s["contract"] == {"runs": 40, "violations": 0, "failed_runs": 0, "by_rule": {}}
    assert s["isolation"]["users"] == 4 and s["isolation"]["violations"] == 0
    assert sorted({t.user for t in r.traces}) == [0, 1, 2, 3]


def test_cross_user_bleed_is_found(agent_server: AgentServer) -> None:
    """A server sending user 0's thread to everyone gives isolation violations."""
    r = run_replay(spec(agent_server.url("/bleed?shape=flat")), attempts=4, concurrency=4,
                   users=2, env=ENV)
    violations = r.isolation.violations
    assert violations and all(v.user == 1 and v.owner == 0 for v in violations)


def test_retry_makes_a_transient_failure(agent_server: AgentServer) -> None:
    """A 503 then success is one transient failure; a constant 503 is persistent."""
    retry = RetryPolicy(max_retries=2, initial_delay_s=0.0)
    flaky = run_replay(spec(agent_server.url("/flaky"), retry=retry), attempts=1, env=ENV)
    assert flaky.summary()["transient"] == 1 and flaky.summary()["outcomes"] == {"completed": 1}
    assert [t.try_index for t in flaky.traces] == [0, 1]
    down = run_replay(spec(agent_server.url("/reject503"), retry=retry), attempts=2, env=ENV)
    assert down.summary()["persistent"] == 2 and len(down.traces) == 6


def test_probes_before_during_after(agent_server: AgentServer) -> None:
    """Health probes are recorded before, during and after the attempts."""
    health = f"http://127.0.0.1:{agent_server.port}/reject503"
    r = run_replay(spec(agent_server.url("/slow"), health_urls=(health,)), attempts=1, env=ENV,
                   probe_interval_s=0.1)
    phases = r.probes_frame()["phase"].tolist()
    assert phases[0] == "before" and phases[-1] == "after" and "during" in phases
    assert set(r.probes_frame()["status"].tolist()) == {503}


def test_slo_breach_reported(agent_server: AgentServer) -> None:
    """A slow pipeline breaches a tight SLO and the summary counts it."""
    r = run_replay(spec(agent_server.url("/slow")), attempts=1, env=ENV,
                   contract=ContractParams(slo_data_s=0.1, slo_report_s=0.1))
    s = r.summary()
    assert s["slo"]["breaches"] >= 1 and s["slo"]["data_p95_s"] >= 0.25


def test_missing_token_is_a_usage_error() -> None:
    """A spec needing a token with the variable unset names the variable."""
    with pytest.raises(UsageError, match="NOPE_TOKEN"):
        run_replay(spec("ws://127.0.0.1:1/ws", token_env="NOPE_TOKEN"), env={})


def test_killed_target_leaves_failures_recorded() -> None:
    """A target that is gone: every attempt still recorded, as connect_failed."""
    r = run_replay(spec(f"ws://127.0.0.1:{closed_port()}/ws"), attempts=5, concurrency=5, env=ENV)
    assert r.summary()["outcomes"] == {"connect_failed": 5}


def test_canary_reaches_no_output(agent_server: AgentServer,
                                  caplog: pytest.LogCaptureFixture) -> None:
    """Token in subprotocol, header, query and echoed back: absent from frames, JSON and logs."""
    s = spec(agent_server.url("/echo?token={token}"),
             headers=(("Authorization", "Bearer {token}"),))
    with caplog.at_level(logging.DEBUG):
        r = run_replay(s, attempts=2, env=ENV)
    ours = "\n".join(rec.getMessage() for rec in caplog.records
                     if rec.name.startswith("uvs_analysis"))
    outputs = [json.dumps(r.summary()), r.attempts_frame().to_csv(), r.frames_frame().to_csv(),
               r.probes_frame().to_csv(), repr(r.traces), ours]
    assert "GET /echo" in ours  # the wire log was on and recorded the handshake
    fragments = [CANARY[i:i + 16] for i in range(0, len(CANARY) - 16, 4)]
    for out in outputs:
        assert CANARY not in out
        assert not [f for f in fragments if f in out]


@pytest.fixture(scope="module")
def testbed_factory() -> Any:
    testbed = pytest.importorskip("uvs_analysis.testbed")
    return testbed.start_testbed


def _testbed_spec(handle: Any) -> HandshakeSpec:
    return spec(handle.ws_url, token_env=handle.token_env, run_timeout_s=20,
                ping_interval_s=None)


@pytest.mark.slow
def test_testbed_healthy_passes_the_contract(testbed_factory: Any) -> None:
    """Against the real testbed, healthy runs complete with no finding."""
    with testbed_factory(["healthy"], time_scale=0.1) as tb:
        r = run_replay(_testbed_spec(tb), attempts=4, concurrency=2,
                       contract=ContractParams(slo_data_s=5 * 0.1 * 3, slo_report_s=2 * 0.1 * 3))
    s = r.summary()
    assert s["outcomes"] == {"completed": 4}
    assert s["contract"]["violations"] == 0 and s["conformance"] == []


@pytest.mark.slow
def test_testbed_database_down_closes_1011_before_first_event(testbed_factory: Any) -> None:
    """database-down: some attempts get close 1011 before any agent event."""
    with testbed_factory(["database-down"], time_scale=0.1) as tb:
        r = run_replay(_testbed_spec(tb), attempts=6, concurrency=2)
    labels = r.summary()["outcome_labels"]
    assert labels.get("closed_before_first_event/1011", 0) >= 1
    assert set(labels) <= {"closed_before_first_event/1011", "completed"}


@pytest.mark.slow
def test_testbed_handler_crash_is_1006(testbed_factory: Any) -> None:
    """handler-crash: an uncaught exception after accept reaches the client as 1006."""
    with testbed_factory(["handler-crash"], time_scale=0.1) as tb:
        r = run_replay(_testbed_spec(tb), attempts=3)
    assert r.summary()["outcome_labels"] == {"abnormal_closure/1006": 3}
