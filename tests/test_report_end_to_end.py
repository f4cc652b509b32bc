"""The main job end to end: real reports, run comparison, the canary, a decoy and an unknown
failure. Real parts only: the testbed process, the emulator, papermill, nbconvert."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from uvs_analysis.investigation import InvestigationParams, investigate
from uvs_analysis.replay.redact import secret_forms
from uvs_analysis.report.render import external_references
from uvs_analysis.report.runner import run_report
from uvs_analysis.testbed.launcher import start_testbed

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _params(tmp_path: Path, name: str, **overrides: object) -> Path:
    params = yaml.safe_load((ROOT / "params" / "demo.yaml").read_text())
    params.update(overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_demo_report_and_a_second_run_that_names_what_changed(tmp_path: Path) -> None:
    """The demo gives a complete report; a later run of the same incident with another fault
    says the root cause changed and which signatures and close codes are new."""
    out = tmp_path / "reports"
    first = run_report(_params(tmp_path, "first"), out_dir=out)
    assert first.exit_code == 0, first.message
    run_dir = Path(first.run_dir)
    for name in ("report.ipynb", "report.html", "summary.json", "run.log"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete"
    assert summary["five_whys"]["root_cause"]["category"] == "dependency-down"
    assert summary["compare_previous"] is None
    html = (run_dir / "report.html").read_text()
    assert external_references(html) == []
    assert "data:image/svg+xml;base64" in html and "data:image/png;base64" in html

    second = run_report(_params(tmp_path, "second", testbed_faults=["handler-crash"],
                                matrix=False), out_dir=out)
    assert second.exit_code == 0, second.message
    changed = json.loads((Path(second.run_dir) / "summary.json").read_text())
    compare = changed["compare_previous"]
    assert compare["previous_run_id"] == summary["run_id"]
    assert compare["root_cause"]["changed"] is True
    assert any("root cause changed: dependency-down -> app-exception" in line
               for line in compare["changes"])
    assert "dependency-unavailable" in compare["resolved"]
    index = (out / "index.html").read_text()
    assert summary["run_id"] in index and changed["run_id"] in index


AUTH_METHODS = {
    "subprotocol": {"subprotocol": "jwt.{token}"},
    "header": {"subprotocol": "", "auth_header": "Bearer {token}"},
    "query": {"subprotocol": "", "ws_url": "WS?token={token}"},
    "ticket": {"subprotocol": "", "ticket_url": "auto"},
}


@pytest.mark.parametrize("method", sorted(AUTH_METHODS))
def test_a_known_token_appears_nowhere_in_the_outputs(tmp_path: Path, method: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A report against a server the workbook did not start, with a token we know sent by each
    auth method, and the token also written into the server's logs: no form of it (raw,
    base64url, URL-encoded, JSON-escaped) is anywhere under the output directory."""
    with start_testbed(("database-down",), time_scale=0.05, token_env="UVS_CANARY_SRC") as tb:
        token = tb.mint_token("canary-user-0001")
        monkeypatch.setenv("UVS_CANARY_TOKEN", token)
        with tb.log_file.open("a", encoding="utf-8") as log:  # a backend that logs the token
            for i, form in enumerate(secret_forms(token)):
                entry = _decoy_entries(datetime.now(UTC), 1)[0]
                entry.update(insertId=f"leak-{i}", severity="ERROR",
                             jsonPayload={"message": f"auth failed for token {form}"})
                log.write(json.dumps(entry) + "\n")
        auth = {k: v.replace("WS", tb.ws_url) for k, v in AUTH_METHODS[method].items()}
        params = _params(tmp_path, "canary", **{"ws_url": tb.ws_url, **auth},
                         token_env="UVS_CANARY_TOKEN", logs_source=str(tb.log_file), users=1,
                         attempts=8, matrix=method == "subprotocol",
                         incident_id=f"canary-{method}",
                         health_urls=[f"{tb.http_url}/health/ready"])
        outcome = run_report(params, out_dir=tmp_path / "reports")
    assert outcome.exit_code == 0, outcome.message
    summary = json.loads((Path(outcome.run_dir) / "summary.json").read_text())
    assert summary["replay"]["outcomes"].get("completed", 0) > 0, "the token did authenticate"
    forms = [f for f in secret_forms(token) if len(f) >= 8]
    files = [p for p in (tmp_path / "reports").rglob("*") if p.is_file()]
    assert len(files) >= 5
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        leaked = [f for f in forms if f in text]
        assert not leaked, f"{path} holds the token"


def _decoy_entries(start: datetime, seconds: int) -> list[dict[str, object]]:
    """Real-looking 'RACE CONDITION DETECTED' errors every half second (the misleading kind)."""
    return [
        {
            "insertId": f"decoy-{i:04d}",
            "logName": "projects/netra-staging/logs/run.googleapis.com%2Fstdout",
            "resource": {"type": "cloud_run_revision",
                         "labels": {"service_name": "netra-backend-staging",
                                    "revision_name": "netra-backend-staging-00001-abc",
                                    "location": "us-central1", "project_id": "netra-staging"}},
            "severity": "ERROR",
            "jsonPayload": {"message": "[🔴] RACE CONDITION DETECTED: Startup phase "
                                       f"'no_app_state' did not reach 'services' within "
                                       f"{1 + (i % 3) * 0.7:.1f}s - this would cause WebSocket "
                                       "1011 errors"},
            "timestamp": (start + timedelta(seconds=i / 2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        for i in range(seconds * 2)
    ]


def test_misleading_race_warnings_do_not_beat_the_real_cause(tmp_path: Path) -> None:
    """A proxy strips the Authorization header while the logs cry 'RACE CONDITION': the race
    hypothesis is raised by those warnings but refuted; the answer is auth."""
    with start_testbed(("proxy-strip-auth",), time_scale=0.05) as tb:
        with tb.log_file.open("a", encoding="utf-8") as log:
            for entry in _decoy_entries(datetime.now(UTC) - timedelta(seconds=5), 60):
                log.write(json.dumps(entry) + "\n")
        inv = investigate(InvestigationParams(
            incident_id="decoy", ws_url=tb.ws_url, token_env=tb.token_env, subprotocol="",
            auth_header="Bearer {token}", attempts=10, users=1, matrix=True,
            logs_source=str(tb.log_file), health_urls=(f"{tb.http_url}/health/ready",)))
    tree = inv.five_whys
    assert inv.correlation.log.facts().value("logs.class.race.near", 0) > 0, "decoys seen"
    race = next(n for n in tree.nodes if n.rule == "startup-readiness-race" and n.parent == "N0")
    assert race.status == "refuted" and race.evidence
    assert tree.root_cause.category == "auth"


class _Http500:
    """A server that answers every upgrade with HTTP 500 (an exception before accept)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            body = b"Internal Server Error"
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            writer.close()

        self.stopping = asyncio.Event()

        async def main() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            async with server:
                await self.stopping.wait()

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),),
                                       daemon=True)
        self.thread.start()
        ready.wait(5)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(5)


@pytest.fixture
def http500() -> Iterator[_Http500]:
    server = _Http500()
    yield server
    server.stop()


def test_a_failure_no_rule_knows_is_unexplained(http500: _Http500,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Every upgrade answered 500: no rule fits, so the verdict is unexplained (or at most a
    low-confidence lead), never a confident wrong answer."""
    monkeypatch.setenv("UVS_UNKNOWN_TOKEN", "not-a-real-credential")
    inv = investigate(InvestigationParams(
        incident_id="unknown", ws_url=f"ws://127.0.0.1:{http500.port}/ws",
        token_env="UVS_UNKNOWN_TOKEN", attempts=4, users=1, matrix=False, logs_source=""))
    cause = inv.five_whys.root_cause
    assert inv.five_whys.problem.present
    assert cause.category == "unexplained" or cause.confidence < 0.5, cause


def test_a_target_killed_mid_replay_gives_a_partial_report(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The server dies during the replay: the remaining attempts are recorded as failures, the
    report still renders, and its status says partial (exit 1)."""
    with start_testbed(("healthy",), time_scale=0.05, token_env="UVS_KILLED_SRC") as tb:
        monkeypatch.setenv("UVS_KILLED_TOKEN", tb.mint_token("killed-user-0001"))
        params = _params(tmp_path, "killed", ws_url=tb.ws_url, token_env="UVS_KILLED_TOKEN",
                         logs_source=str(tb.log_file), users=1, attempts=16, concurrency=1,
                         matrix=False, incident_id="killed")
        done = threading.Event()

        def kill_after_three_sessions() -> None:
            # The testbed writes a request log per finished session: kill it after the third.
            while not done.wait(0.05):
                sessions = tb.log_file.read_text(errors="replace").count("%2Frequests")
                if sessions >= 3:
                    tb.process.kill()
                    return

        killer = threading.Thread(target=kill_after_three_sessions, daemon=True)
        killer.start()
        try:
            outcome = run_report(params, out_dir=tmp_path / "reports")
        finally:
            done.set()
            killer.join(5)
    assert outcome.exit_code == 1, outcome.message
    run_dir = Path(outcome.run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "partial"
    assert any("stopped answering" in note for note in summary["notes"])
    assert summary["replay"]["outcomes"].get("connect_failed", 0) > 0
    assert (run_dir / "report.html").is_file()
