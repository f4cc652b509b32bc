"""The Cloud Run log export of a running testbed: shape, correlation, and no token anywhere."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import urllib.request
from typing import Any
from urllib.parse import quote

import pytest
from websockets.exceptions import ConnectionClosedError

from .wire import Wire, b64url, read_log, recv_json, run_agent

LOG_KINDS = {"requests", "stdout", "stderr", "varlog%2Fsystem"}
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
TRACE = "0af7651916cd43dd8448eb211c80319c"


def _sessions(wire: Wire, hold_s: float) -> None:
    """A mix of sessions: every auth path, a bad token, a traced run and one held open."""
    token = wire.token
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(wire.handle.http_url + "/api/websocket/ticket", data=b"",
                                     headers={"Authorization": f"Bearer {token}"}, method="POST")
    with opener.open(request, timeout=5) as response:
        ticket = json.loads(response.read())["ticket_id"]
    url = wire.handle.ws_url

    async def scenario() -> None:
        async with wire.connect(subprotocols=[f"jwt-auth.{b64url(token)}"]) as ws:
            await recv_json(ws)
        async with wire.connect(url=f"{url}?token={token}") as ws:
            await recv_json(ws)
        async with wire.connect(url=f"{url}?ticket={ticket}") as ws:
            await recv_json(ws)
        async with wire.connect(subprotocols=[f"bearer.{token[:-3]}xyz"]) as ws:
            await recv_json(ws)
            with pytest.raises(ConnectionClosedError):
                await recv_json(ws)
        async with wire.connect(headers={"Authorization": f"Bearer {token}",
                                         "X-Cloud-Trace-Context": f"{TRACE}/123;o=1"}) as ws:
            await recv_json(ws)
            await run_agent(ws)
        async with wire.connect(subprotocols=[f"jwt.{token}"]) as ws:
            await recv_json(ws)
            await asyncio.sleep(hold_s)

    asyncio.run(scenario())
    wire.handle.stop()


def test_log_export_has_cloud_run_shape_and_correlates(testbed: Any) -> None:
    """Every entry is a Cloud Run LogEntry; one 101 request log per session, traced app logs."""
    wire: Wire = testbed()
    hold_s = 0.6
    _sessions(wire, hold_s)
    entries = read_log(wire.handle.log_file)
    assert len({e["insertId"] for e in entries}) == len(entries)
    for entry in entries:
        assert entry["logName"].startswith("projects/netra-staging/logs/run.googleapis.com%2F")
        assert entry["logName"].split("%2F", 1)[1] in LOG_KINDS
        assert entry["resource"]["type"] == "cloud_run_revision"
        assert entry["resource"]["labels"] == {
            "service_name": "netra-backend-staging", "location": "us-central1",
            "revision_name": "netra-backend-staging-00001-abc", "project_id": "netra-staging",
            "configuration_name": "netra-backend-staging"}
        assert len(entry["labels"]["instanceId"]) > 60
        assert RFC3339_Z.match(entry["timestamp"]) and RFC3339_Z.match(entry["receiveTimestamp"])
        kind = entry["logName"].split("%2F", 1)[1]
        if kind == "stderr":
            assert "severity" not in entry and entry["textPayload"]
        if kind == "stdout" and "jsonPayload" in entry:
            assert entry["severity"] and entry["jsonPayload"]["message"]
    sessions = [e for e in entries if e.get("httpRequest", {}).get("status") == 101]
    assert len(sessions) == 6
    for entry in sessions:
        assert re.fullmatch(r"projects/netra-staging/traces/[0-9a-f]{32}", entry["trace"])
        assert entry["spanId"] and entry["httpRequest"]["latency"].endswith("s")
    held = float(sessions[-1]["httpRequest"]["latency"].rstrip("s"))
    assert hold_s <= held < hold_s + 2.0
    traced = f"projects/netra-staging/traces/{TRACE}"
    assert any(e["trace"] == traced for e in sessions)
    app_logs = [e["jsonPayload"] for e in entries if "jsonPayload" in e]
    assert sum(p.get("trace") == traced for p in app_logs) >= 3  # auth, connect, run, ...
    system = [e["textPayload"] for e in entries if e["logName"].endswith("system")]
    assert system[0].startswith("Starting new instance") and system[-1].startswith("Container")
    severities = {e.get("severity") for e in entries if "jsonPayload" in e}
    assert {"INFO", "CRITICAL"} <= severities


def test_demo_token_never_reaches_the_log_file(testbed: Any) -> None:
    """The token is absent in raw, base64url, URL-encoded and JSON-escaped forms."""
    wire: Wire = testbed()
    token = wire.token
    _sessions(wire, 0.05)
    text = wire.handle.log_file.read_text()
    assert "[REDACTED]" in text  # the ?token= and ?ticket= query values were seen and scrubbed
    padded = base64.urlsafe_b64encode(token.encode()).decode()
    for form in (token, padded, padded.rstrip("="), quote(token, safe=""),
                 json.dumps(token)[1:-1], token.split(".")[1], token.split(".")[2]):
        assert form not in text
    assert wire.handle.console().count(token) == 0


def test_formats_and_wordings_change_text_not_events(testbed: Any) -> None:
    """unified+alt logs the same events as gcp+default, in another shape and other words."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for name, fmt, wording in (("a", "gcp", "default"), ("b", "unified", "alt")):
        wire: Wire = testbed(log_format=fmt, wording=wording)

        async def scenario(w: Wire = wire) -> None:
            async with w.connect(subprotocols=w.auth()) as ws:
                await recv_json(ws)
                await run_agent(ws)
            async with w.connect(subprotocols=["jwt.bad"]) as ws:
                await recv_json(ws)
                with pytest.raises(ConnectionClosedError):
                    await recv_json(ws)

        asyncio.run(scenario())
        wire.handle.stop()
        runs[name] = [e for e in read_log(wire.handle.log_file) if "jsonPayload" in e]
    gcp, unified = runs["a"], runs["b"]
    assert [e["severity"] for e in gcp] == [e["severity"] for e in unified]
    assert all({"labels", "context"} <= set(e["jsonPayload"]) for e in gcp)
    assert all({"service", "logger", "trace_id", "textPayload"} <= set(e["jsonPayload"])
               for e in unified)
    for a, b in zip(gcp, unified, strict=True):
        assert a["jsonPayload"]["message"] != b["jsonPayload"]["message"]
