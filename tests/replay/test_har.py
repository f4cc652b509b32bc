"""Tests for HAR and request-log imports."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from uvs_analysis.errors import BadInputError, UsageError
from uvs_analysis.replay.har import spec_from_har, spec_from_log_row

DATA = Path(__file__).parent / "data"
HAR = DATA / "chrome_agent_run.har"


def test_har_import_from_a_realistic_chrome_export() -> None:
    """The websocket entry gives URL, origin, UA, compression, templated subprotocols, messages."""
    spec = spec_from_har(HAR, token_env="UVS_TOKEN")
    assert spec.url == "wss://api-staging.netrasystems.ai/ws?mode=main"
    assert spec.origin == "https://app-staging.netrasystems.ai"
    assert spec.user_agent is not None and "Chrome/129" in spec.user_agent
    assert spec.compression is True
    assert spec.subprotocols == ("jwt-auth.{token}", "agent_chat")
    assert ("X-Client-Version", "1.4.2") in spec.headers
    assert [m.binary for m in spec.messages] == [False, True]
    assert json.loads(spec.messages[0].text)["type"] == "start_agent"
    assert spec.expected_types[0] == "connection_established"
    assert spec.expected_types.count("agent_started") == 3
    assert "eyJ" not in repr(spec)


def test_har_keep_timing_keeps_gaps() -> None:
    """keep_timing turns the capture's gaps into delays."""
    spec = spec_from_har(HAR, keep_timing=True)
    assert spec.messages[0].delay_s == pytest.approx(0.04, abs=1e-6)
    assert spec.messages[1].delay_s > 2


def test_har_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    """A truncated HAR says which file, line and column."""
    bad = tmp_path / "cut.har"
    bad.write_text(HAR.read_text()[:500])
    with pytest.raises(BadInputError) as info:
        spec_from_har(bad)
    assert "cut.har" in info.value.message and "line" in info.value.message


def test_har_without_websocket_entries(tmp_path: Path) -> None:
    """A HAR with only HTTP entries says what entry was expected."""
    har = json.loads(HAR.read_text())
    har["log"]["entries"] = har["log"]["entries"][:1]
    path = tmp_path / "http.har"
    path.write_text(json.dumps(har))
    with pytest.raises(BadInputError, match="no WebSocket entry"):
        spec_from_har(path)


def test_har_that_is_other_json(tmp_path: Path) -> None:
    """A JSON file that is not a HAR is refused."""
    path = tmp_path / "x.har"
    path.write_text("[1, 2, 3]")
    with pytest.raises(BadInputError, match=r"log\.entries"):
        spec_from_har(path)


def test_har_entry_out_of_range() -> None:
    """Asking for a WebSocket entry that does not exist is a usage error."""
    with pytest.raises(UsageError, match="entry 5"):
        spec_from_har(HAR, entry=5)


def test_spec_from_log_row_templates_credentials() -> None:
    """A request-log row gives wss URL and UA; token/ticket query values become templates."""
    spec = spec_from_log_row({
        "http_url": "https://svc.run.app/ws?token=abc&mode=main",
        "http_user_agent": "Mozilla/5.0",
    }, token_env="T")
    assert spec.url == "wss://svc.run.app/ws?token={token}&mode=main"
    assert spec.user_agent == "Mozilla/5.0"
    ticket = spec_from_log_row({"http_url": "https://svc.run.app/ws?ticket=tk_1"})
    assert ticket.ticket_url == "https://svc.run.app/api/websocket/ticket"
    assert "tk_1" not in ticket.url


def test_spec_from_log_row_without_url() -> None:
    """A row with no URL says which field was expected."""
    with pytest.raises(BadInputError, match="http_url"):
        spec_from_log_row({"http_url": None})


def test_a_token_captured_in_a_har_never_reaches_the_spec(tmp_path: Path) -> None:
    """A capture carrying a canary token in the Authorization header, the subprotocol, the query
    string and a sent message: the spec holds templates, never the token in any form."""
    import base64

    from uvs_analysis.replay.redact import secret_forms

    canary = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnktaGFyIn0.c2lnbmF0dXJlLWNhbmFyeQ"
    har = json.loads((DATA / "chrome_agent_run.har").read_text())
    entry = next(e for e in har["log"]["entries"] if "_webSocketMessages" in e)
    entry["request"]["url"] += f"&token={canary}"
    entry["request"]["headers"] += [
        {"name": "Authorization", "value": f"Bearer {canary}"},
        {"name": "Sec-WebSocket-Protocol",
         "value": "jwt." + base64.urlsafe_b64encode(canary.encode()).decode().rstrip("=")},
        {"name": "Cookie", "value": f"session={canary}"},
    ]
    entry["_webSocketMessages"].insert(0, {"type": "send", "time": 1757539800.0, "opcode": 1,
                                           "data": json.dumps({"type": "auth", "token": canary})})
    path = tmp_path / "canary.har"
    path.write_text(json.dumps(har))
    spec = spec_from_har(path, token_env="UVS_TOKEN")
    text = json.dumps(dataclasses.asdict(spec), default=str)
    leaked = [f for f in secret_forms(canary) if len(f) >= 8 and f in text]
    assert leaked == []
    assert "{token" in text
