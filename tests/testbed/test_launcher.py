"""Starting and stopping the testbed process: URLs, token hand-over, cleanup on every path."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from uvs_analysis.errors import AnalysisError, UsageError
from uvs_analysis.testbed import start_testbed
from uvs_analysis.testbed.auth import verify_token


def test_start_hands_over_urls_and_token_then_stops_cleanly(tmp_path: Path) -> None:
    """The handle gives ws/http URLs and a token env var; stop() ends it and is idempotent."""
    handle = start_testbed(time_scale=0.05, log_file=tmp_path / "l.ndjson",
                           token_env="UVS_TEST_TOKEN_LAUNCHER")
    try:
        assert handle.ws_url.startswith("ws://127.0.0.1:") and handle.ws_url.endswith("/ws")
        assert handle.http_url.startswith("http://127.0.0.1:") and not handle.proxied
        token = os.environ["UVS_TEST_TOKEN_LAUNCHER"]
        assert verify_token(token, handle._secret, now=0).user_id == "demo-user-001"
        cmdline = Path(f"/proc/{handle.pid}/cmdline").read_bytes().decode()
        assert token not in cmdline and handle._secret not in cmdline
        assert token not in repr(handle) and handle._secret not in repr(handle)
        assert handle.running
    finally:
        code = handle.stop()
    assert not handle.running and code == 0 and handle.stop() == 0
    assert "UVS_TEST_TOKEN_LAUNCHER" not in os.environ
    assert handle.log_file.stat().st_size > 0


def test_context_manager_stops_on_error() -> None:
    """Leaving a with block by an exception still stops the process."""
    with pytest.raises(RuntimeError, match="boom"), start_testbed(time_scale=0.05) as handle:
        raise RuntimeError("boom")
    assert not handle.running


def test_bad_fault_is_refused_before_spawning() -> None:
    """An unknown fault raises UsageError naming the valid profiles."""
    with pytest.raises(UsageError, match="handler-crash"):
        start_testbed(["no-such-fault"])


def test_a_process_that_cannot_listen_is_reported() -> None:
    """A taken port makes the child exit; the launcher raises with the child's reason."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AnalysisError, match="cannot listen"):
            start_testbed(port=port, startup_timeout_s=20)
