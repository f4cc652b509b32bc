"""Judging how a notebook run ended, annotating and redacting the executed notebook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat as _nbformat

from uvs_analysis.replay.redact import Redactor
from uvs_analysis.report.outcome import (
    annotate_notebook,
    judge_run,
    load_notebook,
    outcome_message,
    redact_notebook,
    redact_value,
    write_notebook,
)

v4: Any = _nbformat.v4


def _nb(*, started: int, error_at: int | None = None) -> Any:
    cells = []
    for i in range(4):
        cell = v4.new_code_cell(f"step_{i}()")
        cell.metadata["papermill"] = {"start_time": "t" if i <= started else None,
                                      "status": "completed"}
        if i == error_at:
            cell.outputs = [v4.new_output("error", ename="KeyError", evalue="'x'",
                                          traceback=["tb"])]
        cells.append(cell)
    return v4.new_notebook(cells=cells)


def test_complete_and_partial() -> None:
    """A finished notebook is complete, or partial when investigation.json says so."""
    done = {"status": "complete"}
    assert judge_run(False, 0, done, {"logs": {}}, _nb(started=3), "") == (
        "complete", None, None)
    assert judge_run(False, 0, done, {"status": "partial"}, _nb(started=3), "")[0] == "partial"


def test_missing_investigation_is_a_failure() -> None:
    """A notebook that completes without writing investigation.json failed."""
    status, cell, error = judge_run(False, 0, {"status": "complete"}, None, _nb(started=3), "")
    assert status == "failed" and cell is None
    assert error is not None and "investigation.json" in error["evalue"]


def test_cell_error_names_the_raising_cell() -> None:
    """A cell error points at the cell holding the error output."""
    result = {"status": "failed", "error": {"kind": "cell_error", "ename": "KeyError"}}
    status, cell, _ = judge_run(False, 1, result, None, _nb(started=2, error_at=2), "")
    assert status == "failed" and cell is not None
    assert cell["index"] == 2 and cell["ename"] == "KeyError" and cell["source"] == "step_2()"


def test_dead_kernel_and_interruption_name_the_last_started_cell() -> None:
    """Without an error output, the failing cell is the last one papermill started."""
    dead = {"status": "failed", "error": {"kind": "DeadKernelError",
                                          "ename": "DeadKernelError", "evalue": "Kernel died"}}
    status, cell, _ = judge_run(False, 0, dead, None, _nb(started=1), "")
    assert status == "failed" and cell is not None and cell["index"] == 1
    status, cell, error = judge_run(True, -15, None, None, _nb(started=2), "SIGTERM")
    assert status == "interrupted" and cell is not None and cell["index"] == 2
    assert error is not None and "SIGTERM" in error["evalue"]
    status, cell, error = judge_run(False, -9, None, None, None, "")
    assert status == "failed" and cell is None and error is not None
    assert "code -9" in error["evalue"]


def test_message() -> None:
    """The one-line message names the status, the cell and the exception."""
    summary = {"failed_cell": {"index": 5, "execution_count": 3, "ename": "ValueError",
                               "evalue": "boom"}, "error": {"kind": "cell_error"}}
    assert outcome_message("failed", summary) == "failed: cell 5 (In [3]) raised ValueError: boom"
    assert outcome_message("complete", {}) == "complete"


def test_annotate_and_redact_roundtrip(tmp_path: Path) -> None:
    """The banner and run record are added once (escaped); secrets are masked in sources,
    outputs and metadata but images are left alone; the notebook is still valid."""
    nb = _nb(started=1)
    nb.cells[0].outputs = [
        v4.new_output("stream", name="stdout", text="token=sekret-value-123 ok"),
        v4.new_output("display_data", data={"image/png": "c2VrcmV0LXZhbHVlLTEyMw==",
                                            "text/plain": "sekret-value-123"}),
    ]
    nb.metadata["papermill"] = {"parameters": {"note": "Bearer abcdefghijkl"}}
    summary = {"status": "failed", "incident_id": "i<1>", "run_id": "r", "started": "s",
               "finished": "f", "params_file": "p.yaml", "versions": {"x": "1"},
               "failed_cell": {"index": 1, "execution_count": None, "ename": "Dead",
                               "evalue": "<b>"}, "error": {"kind": "x"},
               "compare_previous": {"previous_run_id": "r0", "changes": ["new signature: <x>"]}}
    annotate_notebook(nb, summary)
    annotate_notebook(nb, summary)
    assert summary["failed_cell"]["index"] == 3  # type: ignore[index]
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert tags.count(["uvs-run-status"]) == 1 and tags.count(["uvs-run-record"]) == 1
    assert "&lt;b&gt;" in nb.cells[0].source and "i&lt;1&gt;" in nb.cells[-1].source
    assert "new signature: &lt;x&gt;" in nb.cells[-1].source
    redact_notebook(nb, Redactor(["sekret-value-123"]))
    outputs = nb.cells[1].outputs
    assert "sekret" not in outputs[0]["text"]
    assert outputs[1]["data"]["image/png"] == "c2VrcmV0LXZhbHVlLTEyMw=="
    assert "sekret" not in outputs[1]["data"]["text/plain"]
    assert "abcdefghijkl" not in str(nb.metadata)
    path = tmp_path / "nb.ipynb"
    write_notebook(nb, path)
    _nbformat.validate(load_notebook(path))
    assert load_notebook(tmp_path / "missing.ipynb") is None


def test_redact_value_nested() -> None:
    """Strings nested in mappings and lists are masked; other values are kept."""
    value = {"a": ["x sekret-value-123", 3], "b": {"c": None}}
    assert redact_value(value, Redactor(["sekret-value-123"])) == {
        "a": ["x [REDACTED]", 3], "b": {"c": None}}
