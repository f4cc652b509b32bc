"""Wire behaviour of the testbed backend, observed with a plain websockets client."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from uvs_analysis.testbed.faults import TestbedSettings, connection_hit
from uvs_analysis.testbed.workflow import CRITICAL_EVENTS

from .wire import (
    Wire,
    agent_of,
    b64url,
    raw_close_code,
    read_log,
    recorder,
    recv_json,
    run_agent,
)


def _post(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=b"", headers=headers, method="POST")
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _events_by_agent(frames: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for frame in frames:
        if frame["type"] in CRITICAL_EVENTS:
            out.setdefault(str(agent_of(frame)), []).append(frame["type"])
    return out


@pytest.mark.parametrize("shape", ["bridge", "flat", "validator"])
def test_run_emits_five_events_per_agent_in_each_shape(testbed: Any, shape: str) -> None:
    """start_agent yields connection_established then the five events per agent, in order."""
    wire: Wire = testbed(event_shape=shape)

    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with wire.connect(subprotocols=wire.auth()) as ws:
            first = await recv_json(ws)
            return first, await run_agent(ws, thread_id="th-shape")

    first, frames = asyncio.run(scenario())
    assert first["type"] == "connection_established"
    assert first["data"]["connection_id"].startswith("main_")
    by_agent = _events_by_agent(frames)
    assert list(by_agent) == ["triage", "data_helper", "reporting"]
    for events in by_agent.values():
        assert events == list(CRITICAL_EVENTS)
    for frame in frames:
        assert frame["run_id"] and frame["user_id"] == "demo-user-001"
        assert frame["thread_id"] == "th-shape" and frame["timestamp"]
    last = frames[-1]
    report = {"bridge": lambda f: f["data"]["result"],
              "validator": lambda f: f["payload"]["result"],
              "flat": lambda f: f["final_response"]}[shape](last)
    assert report["next_steps"] and report["report_type"]
    if shape == "flat":
        assert all(f["critical"] is True for f in frames)


def test_triage_with_enough_data_adds_optimization(healthy: Wire) -> None:
    """A request quoting figures makes triage choose the workflow with optimization."""

    async def scenario() -> list[dict[str, Any]]:
        async with healthy.connect(subprotocols=healthy.auth()) as ws:
            await recv_json(ws)
            return await run_agent(ws, "we spend 1200 USD on 14 VMs and 3 databases")

    assert list(_events_by_agent(asyncio.run(scenario()))) == [
        "triage", "data_helper", "optimization", "reporting"]


@pytest.mark.parametrize("prefix", ["jwt.", "jwt-auth.", "bearer."])
@pytest.mark.parametrize("encode", [False, True])
def test_subprotocol_token_is_accepted_and_echoed(healthy: Wire, prefix: str, encode: bool
                                                  ) -> None:
    """A token-bearing subprotocol (raw or base64url) authenticates and is echoed whole."""
    offered = prefix + (b64url(healthy.token) if encode else healthy.token)

    async def scenario() -> tuple[str | None, str]:
        async with healthy.connect(subprotocols=[offered, "agent_chat"]) as ws:
            return ws.subprotocol, (await recv_json(ws))["type"]

    assert asyncio.run(scenario()) == (offered, "connection_established")


@pytest.mark.parametrize("where", ["header", "query", "api_path"])
def test_header_and_query_auth(healthy: Wire, where: str) -> None:
    """Authorization: Bearer, ?token= and the /api/v1/websocket path all authenticate."""
    url = healthy.handle.ws_url
    headers = None
    if where == "header":
        headers = {"Authorization": f"Bearer {healthy.token}"}
    elif where == "query":
        url += f"?token={healthy.token}"
    else:
        url = url.replace("/ws", "/api/v1/websocket") + f"?token={healthy.token}"

    async def scenario() -> str:
        async with healthy.connect(url=url, headers=headers) as ws:
            return str((await recv_json(ws))["type"])

    assert asyncio.run(scenario()) == "connection_established"


def test_ticket_is_single_use(healthy: Wire) -> None:
    """A ticket from POST /api/websocket/ticket works once; the second use is refused (1008)."""
    status, body = _post(healthy.handle.http_url + "/api/websocket/ticket",
                         {"Authorization": f"Bearer {healthy.token}"})
    assert status == 200 and body["ticket_id"]
    url = f"{healthy.handle.ws_url}?ticket={body['ticket_id']}"

    async def scenario() -> tuple[str, dict[str, Any], int | None]:
        async with healthy.connect(url=url) as ws:
            first = str((await recv_json(ws))["type"])
        async with healthy.connect(url=url) as ws:
            error = await recv_json(ws)
            with pytest.raises(ConnectionClosedError):
                await recv_json(ws)
            return first, error, ws.close_code

    first, error, code = asyncio.run(scenario())
    assert first == "connection_established"
    assert error["type"] == "error_message" and error["error_code"] == "AUTH_FAILED"
    assert code == 1008
    assert _post(healthy.handle.http_url + "/api/websocket/ticket", {})[0] == 401


@pytest.mark.parametrize("credential", ["bad-signature", "garbage", "none"])
def test_bad_auth_gets_error_frame_then_1008(healthy: Wire, credential: str) -> None:
    """Bad or missing credentials: accepted, AUTH_FAILED error frame, close 1008."""
    if credential == "bad-signature":
        head, body, _sig = healthy.token.split(".")
        subprotocols: list[str] | None = [f"jwt.{head}.{body}.AAAA"]
    elif credential == "garbage":
        subprotocols = ["jwt-auth.not-a-token"]
    else:
        subprotocols = None

    async def scenario() -> tuple[dict[str, Any], Any]:
        async with healthy.connect(subprotocols=subprotocols) as ws:
            error = await recv_json(ws)
            with pytest.raises(ConnectionClosedError) as info:
                await recv_json(ws)
            return error, info.value

    error, closed = asyncio.run(scenario())
    assert error["error_code"] == "AUTH_FAILED"
    assert closed.rcvd.code == 1008 and closed.rcvd.reason == "Authentication failed"


def test_unsupported_subprotocol_is_refused_with_http_403(healthy: Wire) -> None:
    """An offer with no supported subprotocol is closed before accept: HTTP 403."""

    async def scenario() -> None:
        async with healthy.connect(subprotocols=["graphql-ws"]):
            pass

    with pytest.raises(InvalidStatus) as info:
        asyncio.run(scenario())
    assert info.value.response.status_code == 403


def test_database_down_closes_1011_after_error_frame(testbed: Any) -> None:
    """database-down (rate 1): SERVICE_INIT_FAILED frame, then close 1011."""
    wire: Wire = testbed(("database-down",), extra_args=("--fault-rate", "1"))

    async def scenario() -> tuple[dict[str, Any], Any]:
        async with wire.connect(subprotocols=wire.auth()) as ws:
            error = await recv_json(ws)
            with pytest.raises(ConnectionClosedError) as info:
                await recv_json(ws)
            return error, info.value

    error, closed = asyncio.run(scenario())
    assert error["error_code"] == "SERVICE_INIT_FAILED"
    assert (closed.rcvd.code, closed.rcvd.reason) == (1011, "Service initialization failed")


def test_redis_down_hits_the_seeded_fraction(testbed: Any) -> None:
    """redis-down at rate 0.5: exactly the connections the seeded draw picks get 1011."""
    wire: Wire = testbed(("redis-down",), seed=7)

    async def one() -> int | None:
        async with wire.connect(subprotocols=wire.auth()) as ws:
            first = await recv_json(ws)
            if first["type"] == "connection_established":
                return None
            with pytest.raises(ConnectionClosedError) as info:
                await recv_json(ws)
            rcvd = info.value.rcvd
            return rcvd.code if rcvd is not None else -1

    async def scenario() -> list[int | None]:
        return [await one() for _ in range(8)]

    expected = [1011 if connection_hit(7, "redis", i, 0.5) else None for i in range(8)]
    assert asyncio.run(scenario()) == expected
    assert None in expected and 1011 in expected  # the seed exercises both outcomes


def test_handler_crash_gives_1006_without_close_frame(testbed: Any) -> None:
    """handler-crash: the exception escapes after accept, uvicorn sends no close frame."""
    wire: Wire = testbed(("handler-crash",))

    async def scenario() -> Any:
        async with wire.connect(subprotocols=wire.auth()) as ws:
            await recv_json(ws)
            with pytest.raises(ConnectionClosedError) as info:
                await run_agent(ws)
            return info.value, ws.close_code

    closed, code = asyncio.run(scenario())
    assert closed.rcvd is None and code == 1006


def test_shutdown_mid_run_sends_1012(testbed: Any) -> None:
    """shutdown-mid-run: SIGTERM during the run, uvicorn closes with 1012."""
    wire: Wire = testbed(("shutdown-mid-run",))

    async def scenario() -> tuple[Any, list[str]]:
        seen: list[str] = []
        async with wire.connect(subprotocols=wire.auth()) as ws:
            await recv_json(ws)
            with pytest.raises(ConnectionClosedError) as info:
                await run_agent(ws, until=recorder(seen, key=lambda f: f["type"]))
            return info.value, seen

    closed, seen = asyncio.run(scenario())
    assert closed.rcvd is not None and closed.rcvd.code == 1012
    assert "agent_started" in seen and seen[-1] != "agent_completed"
    wire.handle.process.wait(timeout=15)
    assert wire.handle.process.returncode == 0


def test_reserved_close_code_reaches_the_wire(testbed: Any) -> None:
    """reserved-close-code: a raw 1005/1006 close frame arrives; websockets answers 1002."""
    wire: Wire = testbed(("reserved-close-code",))

    async def websockets_view() -> tuple[Any, int | None]:
        async with wire.connect(subprotocols=wire.auth()) as ws:
            await recv_json(ws)
            with pytest.raises(ConnectionClosedError) as info:
                await run_agent(ws)
            return info.value, ws.close_code

    closed, code = asyncio.run(websockets_view())
    # websockets drops the invalid frame and fails the connection with 1002 itself
    assert closed.rcvd is None and code == 1006
    assert closed.sent is not None and closed.sent.code == 1002
    assert "invalid status code" in closed.sent.reason
    assert raw_close_code(wire) in (1005, 1006)


def test_event_loop_blocked_fails_client_keepalive(testbed: Any) -> None:
    """event-loop-blocked: pings go unanswered; the client fails with 1011 keepalive timeout."""
    wire: Wire = testbed(("event-loop-blocked",))

    async def scenario() -> Any:
        async with wire.connect(subprotocols=wire.auth(), ping_interval=0.3,
                                ping_timeout=0.3, close_timeout=0.5) as ws:
            await recv_json(ws)
            with pytest.raises(ConnectionClosedError) as info:
                await run_agent(ws, timeout=30)
            return info.value

    closed = asyncio.run(scenario())
    assert closed.sent is not None
    assert (closed.sent.code, closed.sent.reason) == (1011, "keepalive ping timeout")


def test_workflow_faults_show_on_the_wire(testbed: Any) -> None:
    """pipeline-order, missing-event, slow-data-helper and slow-report, all in one run."""
    wire: Wire = testbed(("pipeline-order", "missing-event", "slow-data-helper", "slow-report"))
    timings = TestbedSettings(time_scale=0.05).timings()

    async def scenario() -> list[tuple[float, dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        out: list[tuple[float, dict[str, Any]]] = []
        async with wire.connect(subprotocols=wire.auth()) as ws:
            await recv_json(ws)
            await run_agent(ws, until=recorder(
                out, key=lambda f: (loop.time(), f),
                stop=lambda f: f["type"] == "agent_completed" and agent_of(f) == "data_helper"))
        return out

    frames = asyncio.run(scenario())
    by_agent = _events_by_agent([f for _, f in frames])
    assert list(by_agent) == ["triage", "reporting", "data_helper"]
    assert "tool_completed" not in by_agent["data_helper"]
    assert by_agent["reporting"] == list(CRITICAL_EVENTS)

    def duration(agent: str) -> float:
        times = [t for t, f in frames if agent_of(f) == agent]
        return max(times) - min(times)

    assert duration("data_helper") > timings.data_slo_s
    assert duration("reporting") > timings.report_slo_s


def test_cross_user_bleed_delivers_to_another_user(testbed: Any) -> None:
    """cross-user-bleed: a run's events reach the most recent connection of another user."""
    wire: Wire = testbed(("cross-user-bleed",))
    other = wire.handle.mint_token("user-b-0002")

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with wire.connect(subprotocols=wire.auth()) as a, \
                wire.connect(subprotocols=[f"jwt.{other}"]) as b:
            await recv_json(a)
            await recv_json(b)
            await a.send(json.dumps({"type": "start_agent", "payload": {
                "user_request": "hello", "thread_id": "thread-a"}}))
            got_b = [await recv_json(b) for _ in range(5)]
            try:
                got_a = [await recv_json(a, timeout=0.5)]
            except TimeoutError:
                got_a = []
            return got_a, got_b

    got_a, got_b = asyncio.run(scenario())
    assert got_a == []
    assert all(f["user_id"] == "demo-user-001" and f["thread_id"] == "thread-a" for f in got_b)


def test_rolling_deploy_closes_old_sessions_with_1012(testbed: Any) -> None:
    """rolling-deploy: the old revision's sessions get 1012; new ones land on a new revision."""
    wire: Wire = testbed(("rolling-deploy",))

    async def scenario() -> tuple[Any, str]:
        async with wire.connect(subprotocols=wire.auth()) as ws:
            await recv_json(ws)
            with pytest.raises(ConnectionClosedError) as info:
                await run_agent(ws)
        async with wire.connect(subprotocols=wire.auth()) as ws:
            await recv_json(ws)
            frames = await run_agent(ws)
        return info.value, frames[-1]["type"]

    closed, last = asyncio.run(scenario())
    assert closed.rcvd is not None and closed.rcvd.code == 1012
    assert last == "agent_completed"
    wire.handle.stop()
    revisions = {e["resource"]["labels"]["revision_name"] for e in read_log(wire.handle.log_file)}
    assert len(revisions) == 2 and "netra-backend-staging-00001-abc" in revisions


def test_request_timeout_cuts_without_close_frame(testbed: Any) -> None:
    """request-timeout: the session is dropped at the limit with no close frame (1006)."""
    wire: Wire = testbed(("request-timeout",))
    limit = TestbedSettings(faults=("request-timeout",), time_scale=0.05).timings(
        ).request_timeout_s

    async def scenario() -> tuple[Any, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with wire.connect(subprotocols=wire.auth()) as ws:
            await recv_json(ws)
            with pytest.raises(ConnectionClosedError) as info:
                await run_agent(ws)
        return info.value, loop.time() - start

    closed, elapsed = asyncio.run(scenario())
    assert closed.rcvd is None and closed.sent is None
    assert elapsed >= limit
    wire.handle.stop()
    sessions = [e for e in read_log(wire.handle.log_file)
                if e.get("httpRequest", {}).get("status") == 101]
    assert len(sessions) == 1
    latency = float(sessions[0]["httpRequest"]["latency"].rstrip("s"))
    assert limit <= latency < limit + 1.0


@pytest.mark.slow
def test_startup_race_503_then_1011_then_ready(testbed: Any) -> None:
    """startup-race: readiness 503 with Retry-After, then caught 1011, then healthy sessions."""
    wire: Wire = testbed(("startup-race",), extra_args=("--startup-delay", "100"))

    async def attempt() -> str:
        try:
            async with wire.connect(subprotocols=wire.auth()) as ws:
                first = await recv_json(ws)
                if first["type"] == "connection_established":
                    return "ok"
                with pytest.raises(ConnectionClosedError) as info:
                    await recv_json(ws)
                rcvd = info.value.rcvd
                assert rcvd is not None
                return f"close {rcvd.code} {rcvd.reason}"
        except InvalidStatus as exc:
            assert exc.response.headers["Retry-After"] == "1"
            return f"http {exc.response.status_code}"

    async def scenario() -> list[str]:
        seen: list[str] = []
        for _ in range(200):
            outcome = await attempt()
            if not seen or seen[-1] != outcome:
                seen.append(outcome)
            if outcome == "ok":
                return seen
            await asyncio.sleep(0.1)
        return seen

    assert asyncio.run(scenario()) == [
        "http 503", "close 1011 Service initialization failed", "ok"]
