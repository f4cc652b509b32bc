"""``uvs-analysis emulator`` as a subprocess (uvs_analysis.emulator.cli)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import logging as gl

from uvs_analysis.cli import main

WINDOW = 'timestamp>="2024-05-14T00:00:00Z" AND timestamp<"2024-05-15T00:00:00Z"'


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "uvs_analysis", "emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def export(tmp_path: Path, entries: list[dict[str, Any]]) -> Path:
    """The fixture entries written as an NDJSON export."""
    path = tmp_path / "export.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in entries) + "not json\n")
    return path


@pytest.fixture
def running(export: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """An emulator subprocess on a free port, with a small quota; yields (process, endpoint)."""
    proc = _start("--logs", str(export), "--port", "0", "--quota-per-minute", "4", "--seed", "1")
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip()
        yield proc, endpoint
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _client(endpoint: str) -> Any:
    return gl.Client(  # type: ignore[no-untyped-call]
        project="offline-reader",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        _use_grpc=False,
        client_options={"api_endpoint": endpoint},
    )


def test_serves_prints_endpoint_and_stops_on_sigterm(
    running: tuple[subprocess.Popen[str], str], entries: list[dict[str, Any]]
) -> None:
    """The first stdout line is the URL; the real client reads it; SIGTERM exits 0."""
    proc, endpoint = running
    assert endpoint.startswith("http://127.0.0.1:")
    client = _client(endpoint)
    got = list(
        client.list_entries(resource_names=["projects/acme-prod"], filter_=WINDOW, page_size=20)
    )
    assert len(got) == len(entries)
    with pytest.raises(gexc.TooManyRequests):
        list(client.list_entries(resource_names=["projects/acme-prod"], filter_=WINDOW))
    stats = requests.get(f"{endpoint}/emulator/stats", timeout=10).json()
    assert stats["outcomes"] == {"ok": 4, "quota": 1}  # 3 pages of 20, then 1 of 50
    assert stats["store"]["skipped"][0]["line"] == len(entries) + 1
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert f"serving {len(entries)} entries" in err and "skipped 1 record" in err


def test_sigint_stops_cleanly(running: tuple[subprocess.Popen[str], str]) -> None:
    """Ctrl-C (SIGINT) also stops the server with exit code 0."""
    proc, _ = running
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_deny_flag(export: Path) -> None:
    """--deny makes every request 403."""
    proc = _start("--logs", str(export), "--deny")
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip()
        with pytest.raises(gexc.Forbidden):
            list(_client(endpoint).list_entries(filter_=WINDOW))
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_missing_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing --logs file exits 2 with a message naming it."""
    code = main(["emulator", "--logs", str(tmp_path / "absent.ndjson")])
    assert code == 2
    err = capsys.readouterr().err
    assert "absent.ndjson does not exist" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--fault-429", "2"], "not between 0 and 1"),
        (["--port", "-5"], "negative"),
        (["--fault-429", "0.7", "--fault-503", "0.7"], "sum to more than 1"),
    ],
)
def test_bad_options_are_exit_2(
    export: Path, args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Out-of-range options exit 2 with the reason."""
    with pytest.raises(SystemExit) as info:
        code = main(["emulator", "--logs", str(export), *args])
        raise SystemExit(code)
    assert info.value.code == 2
    assert needle in capsys.readouterr().err


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    """--help lists every option."""
    with pytest.raises(SystemExit):
        main(["emulator", "--help"])
    out = capsys.readouterr().out
    for option in (
        "--logs",
        "--port",
        "--host",
        "--quota-per-minute",
        "--fault-429",
        "--fault-503",
        "--fault-slow",
        "--slow-seconds",
        "--fault-disconnect",
        "--fault-empty",
        "--deny",
        "--seed",
    ):
        assert option in out
