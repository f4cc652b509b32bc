"""Tests for the ``uvs-analysis replay`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uvs_analysis.cli import main

from .conftest import CANARY, CANARY_ENV, AgentServer

HAR = Path(__file__).parent / "data" / "chrome_agent_run.har"
KEYS = {"attempts", "outcomes", "close_codes", "handshake_ms", "contract", "slo", "isolation",
        "conformance", "transient", "persistent"}


def test_json_output(agent_server: AgentServer, capsys: pytest.CaptureFixture[str],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """--json prints one object with the documented keys and no token."""
    monkeypatch.setenv(CANARY_ENV, CANARY)
    code = main(["replay", agent_server.url("/healthy"), "--attempts", "3", "--concurrency", "2",
                 "--users", "2", "--token-env", CANARY_ENV, "--subprotocol", "jwt.{token}",
                 "--header", "Authorization: Bearer {token}", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert KEYS <= set(data)
    assert data["outcomes"] == {"completed": 3}
    assert CANARY not in out


def test_text_output_with_matrix(agent_server: AgentServer,
                                 capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Text output lists outcomes and the matrix explanation."""
    monkeypatch.setenv(CANARY_ENV, CANARY)
    code = main(["replay", agent_server.url("/auth"), "--token-env", CANARY_ENV, "--retries",
                 "0", "--matrix"])
    out = capsys.readouterr().out
    assert code == 0
    assert "closed_before_first_event/1008" in out and "matrix" in out and "auth" in out


def test_har_with_url_override(agent_server: AgentServer, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """--har replays the capture's messages against WS_URL and checks its expected types."""
    monkeypatch.setenv(CANARY_ENV, CANARY)
    code = main(["replay", agent_server.url("/healthy"), "--har", str(HAR), "--token-env",
                 CANARY_ENV, "--json", "--retries", "0"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["tries"] == 1
    assert data["outcomes"] == {"completed": 1}


@pytest.mark.parametrize("argv,needle", [
    (["replay", "ws://127.0.0.1:1/ws", "--message", "{not json"], "--message number 1"),
    (["replay", "ws://127.0.0.1:1/ws", "--subprotocol", "jwt.{token}", "--token-env",
      "UVS_SURELY_UNSET"], "UVS_SURELY_UNSET"),
    (["replay", "http://127.0.0.1:1/ws"], "ws:// or wss://"),
    (["replay"], "WS_URL"),
    (["replay", "ws://127.0.0.1:1/ws", "--header", "no-colon"], "Name: value"),
    (["replay", "--har", "/nonexistent/x.har"], "x.har"),
])
def test_bad_usage_exits_2_with_a_clear_message(argv: list[str], needle: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Bad input exits 2 and says what was wrong and where, with no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
