"""The run index: every run listed newest first, escaped text, trends, previous-run lookup."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from uvs_analysis.report.index import find_previous, load_runs, render_index, write_index
from uvs_analysis.report.render import external_references


def _write_run(out: Path, incident: str, run_id: str, **summary: Any) -> Path:
    run = out / incident / run_id
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(
        {"incident_id": incident, "run_id": run_id, "started": run_id, **summary}))
    (run / "report.html").write_text("<html></html>")
    return run


def _replay(rate: float) -> dict[str, Any]:
    failed = round(rate * 10)
    return {"attempts": 10, "outcomes": {"completed": 10 - failed, "closed_mid_run": failed},
            "close_codes": {"1011": failed}}


def test_index_lists_runs_newest_first_with_trends(tmp_path: Path) -> None:
    """Each run appears with status, root cause and link; incidents show their trend."""
    _write_run(tmp_path, "inc-a", "20260101T000000Z-aaaaaa", status="complete",
               replay=_replay(0.8), five_whys={"root_cause": {
                   "category": "dependency-down", "statement": "db <down>"}})
    _write_run(tmp_path, "inc-a", "20260102T000000Z-bbbbbb", status="complete",
               replay=_replay(0.1), five_whys={"root_cause": {"category": "no-failure"}})
    _write_run(tmp_path, "inc-b", "20260101T120000Z-cccccc", status="failed",
               failed_cell={"index": 4, "ename": "ValueError"})
    (tmp_path / "inc-a" / ".20260103T000000Z-dddddd.tmp").mkdir()
    runs = load_runs(tmp_path)
    assert [r.run_id for r in runs] == ["20260102T000000Z-bbbbbb", "20260101T120000Z-cccccc",
                                        "20260101T000000Z-aaaaaa"]
    page = render_index(runs)
    assert external_references(page) == []
    assert "inc-a/20260102T000000Z-bbbbbb/report.html" in page
    assert page.index("20260102T000000Z-bbbbbb") < page.index("20260101T000000Z-aaaaaa")
    assert "db &lt;down&gt;" in page and "db <down>" not in page
    assert "cell 4: ValueError" in page
    assert "<svg" in page and "80%" in page and "10%" in page
    assert "dddddd" not in page


def test_index_escapes_everything(tmp_path: Path) -> None:
    """Text from summaries cannot inject markup into the index."""
    evil = "<script>alert('x')</script>"
    _write_run(tmp_path, "inc", "20260101T000000Z-aaaaaa", status=evil,
               five_whys={"root_cause": {"category": evil, "statement": evil}})
    page = render_index(load_runs(tmp_path))
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_unreadable_summary_is_listed(tmp_path: Path) -> None:
    """A run directory with a broken summary is shown as such, not dropped."""
    run = tmp_path / "inc" / "20260101T000000Z-aaaaaa"
    run.mkdir(parents=True)
    (run / "summary.json").write_text("{broken")
    runs = load_runs(tmp_path)
    assert len(runs) == 1 and not runs[0].readable
    assert "unreadable summary" in render_index(runs)


def test_write_index_is_private(tmp_path: Path) -> None:
    """index.html is written atomically with mode 0600."""
    path = write_index(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "no runs yet" in path.read_text()


def test_find_previous_skips_failed_and_later_runs(tmp_path: Path) -> None:
    """The previous run is the latest earlier run with analysis results."""
    _write_run(tmp_path, "inc", "20260101T000000Z-aaaaaa", status="complete")
    _write_run(tmp_path, "inc", "20260102T000000Z-bbbbbb", status="failed")
    _write_run(tmp_path, "inc", "20260104T000000Z-dddddd", status="complete")
    prev = find_previous(tmp_path / "inc", "20260103T000000Z-cccccc")
    assert prev is not None and prev["run_id"] == "20260101T000000Z-aaaaaa"
    assert find_previous(tmp_path / "inc", "20260101T000000Z-aaaaaa") is None
    assert find_previous(tmp_path / "none", "x") is None
