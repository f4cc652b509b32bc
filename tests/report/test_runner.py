"""Report runs end to end with a tiny test notebook: layout, summary, offline HTML, index,
compare_previous, the secret canary, file modes, failures, a dead kernel, concurrent runs and
SIGTERM."""

from __future__ import annotations

import base64
import html
import json
import os
import signal
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import nbformat as _nbformat
import pytest
import yaml

from uvs_analysis.cli import main
from uvs_analysis.report.index import load_runs
from uvs_analysis.report.render import external_references
from uvs_analysis.report.runner import RunOutcome, new_run_id, run_report

nbformat: Any = _nbformat
NB = Path(__file__).parent / "data" / "report_test.ipynb"
CANARY = 'cnry-7Qf"x/y+z=w_Zk31-canary-token'
CANARY_ENV = "UVS_REPORT_TEST_CANARY"
RUN_FILES = {"report.ipynb", "report.html", "summary.json", "run.log"}

INVESTIGATION_A = {
    "logs": {"top_signatures": [{"template": "database connection refused <*>", "count": 9}],
             "close_codes": {"1011": 8}},
    "replay": {"attempts": 10, "outcomes": {"closed_before_first_event": 8, "completed": 2},
               "close_codes": {"1011": 8, "1000": 2}},
    "five_whys": {"nodes": [{"id": "H1", "parent": "N0", "status": "supported",
                             "rule": "dependency_down"}],
                  "root_cause": {"category": "dependency-down", "component": "database",
                                 "statement": "the database refused connections"}},
    "conformance": [],
}
INVESTIGATION_B = {
    "logs": {"top_signatures": [{"template": "keepalive ping timeout", "count": 3}],
             "close_codes": {"1011": 1}},
    "replay": {"attempts": 10, "outcomes": {"completed": 9, "closed_mid_run": 1},
               "close_codes": {"1000": 9, "1011": 1}},
    "five_whys": {"nodes": [{"id": "H1", "parent": "N0", "status": "refuted",
                             "rule": "dependency_down"},
                            {"id": "H2", "parent": "N0", "status": "supported",
                             "rule": "keepalive_timeout"}],
                  "root_cause": {"category": "keepalive-timeout", "component": "event loop",
                                 "statement": "<script>alert('rc')</script> loop blocked"}},
}


def _params(path: Path, **values: Any) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def _clock(moment: datetime) -> Any:
    return lambda: moment


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "uvs_analysis", "report", "--notebook", str(NB), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != CANARY_ENV},
    )


def _summary(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return data


def _wait_for(predicate: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunOutcome, RunOutcome,
                                                                 list[str]]:
    """Two complete runs of one incident with different findings; the second one carries the
    canary token in its environment and prints it in several forms."""
    base = tmp_path_factory.mktemp("reports")
    out = base / "out"
    echoed: list[str] = []
    first = run_report(
        _params(base / "a.yaml", incident_id="inc-1", investigation=INVESTIGATION_A),
        out_dir=out, notebook=NB, clock=_clock(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        suffix=lambda: "aaaaaa",
        echo=echoed.append)
    second = run_report(
        _params(base / "b.yaml", incident_id="inc-1", investigation=INVESTIGATION_B,
                token_env=CANARY_ENV, leak=True),
        out_dir=out, notebook=NB, clock=_clock(datetime(2026, 1, 2, 4, 0, 0, tzinfo=UTC)),
        suffix=lambda: "bbbbbb",
        environ={**os.environ, CANARY_ENV: CANARY}, echo=echoed.append)
    return out, first, second, echoed


def test_new_run_id_sorts_by_time() -> None:
    """Run ids are the UTC start time plus the random suffix."""
    assert new_run_id(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), "abc123") == \
        "20260304T050607Z-abc123"


def test_complete_run_layout_and_summary(two_runs: Any) -> None:
    """A complete run exits 0 and writes exactly the four files with a full summary."""
    out, first, _, echoed = two_runs
    assert first.status == "complete" and first.exit_code == 0
    assert first.run_dir == out / "inc-1" / "20260102T030405Z-aaaaaa"
    assert {p.name for p in first.run_dir.iterdir()} == RUN_FILES
    assert not [p for p in (out / "inc-1").iterdir() if p.name.endswith(".tmp")]
    summary = _summary(first.run_dir)
    for key in ("incident_id", "run_id", "started", "finished", "status", "failed_cell",
                "versions", "params", "notebook", "logs", "replay", "five_whys",
                "conformance", "compare_previous"):
        assert key in summary, key
    assert summary["run_id"] == "20260102T030405Z-aaaaaa"
    assert summary["started"] == "2026-01-02T03:04:05+00:00"
    assert summary["params"] == {"incident_id": "inc-1", "investigation": INVESTIGATION_A}
    assert summary["five_whys"] == INVESTIGATION_A["five_whys"]
    assert summary["compare_previous"] is None and summary["failed_cell"] is None
    assert summary["versions"]["papermill"][0].isdigit()
    assert any("run 20260102T030405Z-aaaaaa of incident inc-1" in line for line in echoed)
    nb = nbformat.read(first.run_dir / "report.ipynb", as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "run_id = \"20260102T030405Z-aaaaaa\"" in injected.source
    assert "Run record" in nb.cells[-1].source
    log = (first.run_dir / "run.log").read_text()
    assert "Executing Cell" in log and "notebook finished: complete" in log


def test_html_is_offline_with_chart_and_escaped_script(two_runs: Any) -> None:
    """report.html loads nothing from the network, includes the chart and shows <script> from
    Markdown and outputs as text; code is hidden."""
    page = (two_runs[1].run_dir / "report.html").read_text()
    assert external_references(page) == []
    assert 'src="data:image/png;base64,' in page
    assert "<script>alert" not in page
    assert page.count("&lt;script&gt;alert(") >= 3
    assert "plt.subplots" not in page


def test_index_lists_runs_and_trend(two_runs: Any) -> None:
    """index.html links both runs, newest first, with their root causes and the trend."""
    out = two_runs[0]
    page = (out / "index.html").read_text()
    assert external_references(page) == []
    a = "inc-1/20260102T030405Z-aaaaaa/report.html"
    b = "inc-1/20260102T040000Z-bbbbbb/report.html"
    assert a in page and b in page and page.index(b) < page.index(a)
    assert "dependency-down" in page and "keepalive-timeout" in page
    assert "&lt;script&gt;alert" in page and "<script>" not in page
    assert "<svg" in page and "80%" in page and "10%" in page


def test_compare_previous_names_what_changed(two_runs: Any) -> None:
    """The second run compares itself with the first and names what changed."""
    summary = _summary(two_runs[2].run_dir)
    diff = summary["compare_previous"]
    assert diff["previous_run_id"] == "20260102T030405Z-aaaaaa"
    assert diff["new_signatures"] == [{"template": "keepalive ping timeout", "count": 3}]
    assert diff["resolved"] == ["dependency_down"]
    assert diff["newly_supported"] == ["keepalive_timeout"]
    received = {c["code"]: c for c in diff["close_code_rates"]["received"]}
    assert received["1011"]["before"] == 0.8 and received["1011"]["after"] == 0.1
    assert diff["root_cause"]["changed"] is True
    nb = nbformat.read(two_runs[2].run_dir / "report.ipynb", as_version=4)
    assert "resolved? dependency_down" in nb.cells[-1].source


def test_canary_appears_nowhere(two_runs: Any) -> None:
    """The token printed by the notebook in several forms is masked in every file under the
    output directory: raw, base64url, URL-encoded, JSON-escaped, HTML-escaped."""
    out, _, second, echoed = two_runs
    forms = {CANARY, base64.urlsafe_b64encode(CANARY.encode()).decode(),
             base64.urlsafe_b64encode(CANARY.encode()).decode().rstrip("="),
             quote(CANARY, safe=""), quote_plus(CANARY), json.dumps(CANARY)[1:-1],
             html.escape(CANARY)}
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 9
    for path in files:
        data = path.read_bytes()
        for form in forms:
            assert form.encode() not in data, (path, form)
    assert "[REDACTED]" in (second.run_dir / "report.ipynb").read_text(), "the canary leaked"
    assert "[REDACTED]" in (second.run_dir / "run.log").read_text()
    assert _summary(second.run_dir)["leaked"]["raw"] == "[REDACTED]"
    assert not any(form in line for line in echoed for form in forms)


def test_files_are_private(two_runs: Any) -> None:
    """Every file under the output directory is 0600 and every directory 0700."""
    out = two_runs[0]
    for path in [out, *out.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_failing_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A raising cell: exit 1, status failed, the cell named on stderr and in the summary,
    the partial notebook kept with the earlier outputs, the run directory on the last line."""
    params = _params(tmp_path / "p.yaml", incident_id="inc-fail", mode="fail")
    code = main(["report", "-f", str(params), "--out", str(tmp_path / "out"),
                 "--notebook", str(NB)])
    captured = capsys.readouterr()
    assert code == 1
    run_dir = Path(captured.out.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path / "out" / "inc-fail"
    summary = _summary(run_dir)
    assert summary["status"] == "failed"
    failed = summary["failed_cell"]
    assert failed["ename"] == "ValueError" and "boom" in failed["evalue"]
    nb = nbformat.read(run_dir / "report.ipynb", as_version=4)
    assert nb.cells[failed["index"]].source.startswith('print("middle cell')
    assert any(o.get("output_type") == "error" for o in nb.cells[failed["index"]].outputs)
    assert f"cell {failed['index']}" in captured.err and "ValueError" in captured.err
    earlier = [c.get("outputs", []) for c in nb.cells[:failed["index"]]]
    assert "token present" in json.dumps(earlier)
    later = [c.get("outputs", []) for c in nb.cells[failed["index"] + 1:]]
    assert "wrote" not in json.dumps(later), "cells after the failing one must not run"
    assert "logs" not in summary and summary["compare_previous"] is None
    assert "Run failed" in nb.cells[0].source
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    assert "failed" in (tmp_path / "out" / "index.html").read_text()


def test_partial_status_from_investigation(tmp_path: Path) -> None:
    """A notebook that reports "status": "partial" ends as partial with exit 1, keeping its
    results."""
    outcome = run_report(_params(tmp_path / "p.yaml", incident_id="inc-partial", mode="partial"),
                         out_dir=tmp_path / "out", notebook=NB)
    assert outcome.status == "partial" and outcome.exit_code == 1
    assert outcome.run_dir is not None
    summary = _summary(outcome.run_dir)
    assert summary["status"] == "partial" and summary["replay"]["attempts"] == 4
    assert "partial" in (tmp_path / "out" / "index.html").read_text()


def test_dead_kernel(tmp_path: Path) -> None:
    """A kernel that dies mid-report: status failed, the dying cell named, the partial notebook
    kept, the index shows the run."""
    outcome = run_report(_params(tmp_path / "p.yaml", incident_id="inc-dead", mode="die"),
                         out_dir=tmp_path / "out", notebook=NB)
    assert outcome.status == "failed" and outcome.exit_code == 1
    assert outcome.run_dir is not None
    summary = _summary(outcome.run_dir)
    assert summary["failed_cell"]["ename"] == "DeadKernelError"
    nb = nbformat.read(outcome.run_dir / "report.ipynb", as_version=4)
    assert nb.cells[summary["failed_cell"]["index"]].source.startswith('print("middle cell')
    assert "DeadKernelError" in outcome.message
    page = (tmp_path / "out" / "index.html").read_text()
    assert "inc-dead" in page and "DeadKernelError" in page


def test_two_runs_of_one_incident_serialize(tmp_path: Path) -> None:
    """Runs of one incident at once: the second waits for the lock and gets its own run
    directory; one with a short lock timeout gives up with exit 1 and writes nothing."""
    out = tmp_path / "out"
    slow = _params(tmp_path / "slow.yaml", incident_id="inc-2x", sleep_s=3.0)
    fast = _params(tmp_path / "fast.yaml", incident_id="inc-2x")
    first = _cli("-f", str(slow), "--out", str(out))
    _wait_for(lambda: (out / "inc-2x").is_dir()
              and any(p.name.endswith(".tmp") for p in (out / "inc-2x").iterdir()))
    second = _cli("-f", str(fast), "--out", str(out), "--lock-timeout", "120")
    impatient = _cli("-f", str(fast), "--out", str(out), "--lock-timeout", "0.3")
    i_out, i_err = impatient.communicate(timeout=120)
    assert impatient.returncode == 1, i_err
    assert "another report run of this incident holds" in i_err and "--lock-timeout" in i_err
    assert i_out == ""
    f_out, f_err = first.communicate(timeout=120)
    s_out, s_err = second.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, (f_err, s_err)
    assert "waiting for another run" in s_err
    dir_a, dir_b = Path(f_out.splitlines()[-1]), Path(s_out.splitlines()[-1])
    assert dir_a != dir_b
    assert _summary(dir_b)["started"] >= _summary(dir_a)["finished"]
    assert sorted(p.name for p in (out / "inc-2x").iterdir() if p.is_dir()) == \
        sorted([dir_a.name, dir_b.name])


def test_sigterm_mid_run(tmp_path: Path) -> None:
    """SIGTERM stops the notebook: status interrupted, exit 1, the partial notebook and summary
    written, no half-written run directory visible at any point."""
    out = tmp_path / "out"
    params = _params(tmp_path / "p.yaml", incident_id="inc-term", sleep_s=120.0)
    proc = _cli("-f", str(params), "--out", str(out))

    def sleeping() -> bool:
        logs = list((out / "inc-term").glob(".*.tmp/run.log")) if out.is_dir() else []
        return bool(logs) and "middle cell, mode ok" in logs[0].read_text()

    _wait_for(sleeping)
    assert load_runs(out) == [], "a run in progress must not look like a run"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    assert "interrupted" in stderr
    run_dir = Path(stdout.splitlines()[-1])
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    assert not [p for p in run_dir.parent.iterdir() if p.name.endswith(".tmp")]
    summary = _summary(run_dir)
    assert summary["status"] == "interrupted" and "SIGTERM" in summary["error"]["evalue"]
    nb = nbformat.read(run_dir / "report.ipynb", as_version=4)
    assert nb.cells[summary["failed_cell"]["index"]].source.startswith('print("middle cell')
    assert "token present" in json.dumps([c.get("outputs", []) for c in nb.cells])
    assert [r.summary["status"] for r in load_runs(out)] == ["interrupted"]
