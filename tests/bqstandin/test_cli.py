"""``uvs-analysis bigquery-standin`` (uvs_analysis.bqstandin.cli)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from uvs_analysis.cli import main
from uvs_analysis.logs.sample import generate


def test_help_documents_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    """--help names the options and the routes, and exits 0."""
    with pytest.raises(SystemExit) as done:
        main(["bigquery-standin", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for words in ("--logs", "--database", "--memory-limit", "_AllLogs", "/standin/stats",
                  "--layout", "sink-partitioned"):
        assert words in out


def test_missing_input_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Neither --logs nor --database, or a missing file, exits 2 with a message."""
    assert main(["bigquery-standin"]) == 2
    assert "--logs or --database" in capsys.readouterr().err
    assert main(["bigquery-standin", "--logs", str(tmp_path / "none.ndjson")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ["alllogs", "sink-partitioned"])
def test_serves_until_sigterm(tmp_path: Path, layout: str) -> None:
    """The first stdout lines are the URL and table id; the real client queries; SIGTERM exits 0.
    With a sink layout the rows are spread over one table per log."""
    export = tmp_path / "export.ndjson"
    export.write_text("".join(json.dumps(e) + "\n" for e in generate(80, seed=1)) + "oops\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvs_analysis",
            "bigquery-standin",
            "--logs",
            str(export),
            "--project",
            "p",
            "--dataset",
            "d",
            "--layout",
            layout,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip()
        table_id = proc.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:")
        client = bigquery.Client(
            project="p",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint},
        )
        tables = [f"p.d.{t.table_id}" for t in client.list_tables("p.d")]
        if layout == "alllogs":
            assert table_id == "p.d._AllLogs" and tables == [table_id]
        else:
            assert table_id == tables[0] == "p.d.run_googleapis_com_requests"
            assert len(tables) > 1
        counts = [
            next(iter(client.query_and_wait(f"SELECT COUNT(*) AS n FROM `{t}`")))["n"]
            for t in tables
        ]
        assert sum(counts) == 80
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "skipped 1 record(s)" in err and "stopped" in err
