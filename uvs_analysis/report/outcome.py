"""What a finished notebook run means, and the changes the runner makes to the executed notebook.

``judge_run`` turns how the execution ended (worker result, the saved notebook, the notebook's
``investigation.json``) into a status and the failing cell. ``annotate_notebook`` adds a status
banner (runs that did not complete) and a run record; ``redact_notebook`` masks secrets in every
cell, output and metadata string (images excepted).
"""

from __future__ import annotations

import html
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from uvs_analysis.replay.redact import Redactor
from uvs_analysis.report.files import atomic_write_text

__all__ = [
    "INVESTIGATION",
    "annotate_notebook",
    "judge_run",
    "load_notebook",
    "outcome_message",
    "redact_notebook",
    "redact_value",
    "write_notebook",
]

INVESTIGATION: Final = "investigation.json"
_BINARY_MIME: Final = ("image/png", "image/jpeg", "image/gif", "application/pdf")
_STATUS_TAG: Final = "uvs-run-status"
_RECORD_TAG: Final = "uvs-run-record"


def outcome_message(status: str, summary: Mapping[str, Any]) -> str:
    """One line for people: the status and, when it failed, the cell and the exception."""
    failed = summary.get("failed_cell")
    error = summary.get("error") or {}
    if failed:
        count = failed.get("execution_count")
        where = f"cell {failed['index']}" + (f" (In [{count}])" if count is not None else "")
        if error.get("kind") == "cell_error":
            return f"{status}: {where} raised {failed['ename']}: {failed.get('evalue', '')}"
        return f"{status}: {failed['ename']} at {where}: {failed.get('evalue', '')}"
    if error:
        return f"{status}: {error.get('ename')}: {error.get('evalue', '')}"
    return status


def _nbformat() -> Any:
    return importlib.import_module("nbformat")


def load_notebook(path: Path) -> Any:
    """The notebook at ``path`` (a NotebookNode), or None when it is missing or unreadable."""
    nbformat = _nbformat()
    try:
        return nbformat.read(str(path), as_version=4)
    except (OSError, ValueError):
        return None


def write_notebook(nb: Any, path: Path) -> None:
    """Write ``nb`` to ``path`` atomically (mode 0600)."""
    nbformat = _nbformat()
    atomic_write_text(path, nbformat.writes(nb))


def _cell_info(nb: Any, index: int, ename: str, evalue: str) -> dict[str, Any]:
    cell = nb.cells[index] if nb is not None and 0 <= index < len(nb.cells) else None
    first = ""
    if cell is not None:
        first = next((ln for ln in str(cell.source).splitlines() if ln.strip()), "")[:200]
    return {"index": index, "execution_count": getattr(cell, "execution_count", None),
            "ename": ename, "evalue": evalue[:500], "source": first}


def _running_cell(nb: Any) -> int | None:
    """The cell that was executing when the run stopped: the last one papermill started."""
    if nb is None:
        return None
    found = None
    for i, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get("papermill", {}).get("start_time"):
            found = i
    return found


def _error_cell(nb: Any) -> tuple[int, str, str] | None:
    if nb is None:
        return None
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return i, str(output.get("ename", "")), str(output.get("evalue", ""))
    return None


def judge_run(
    interrupted: bool,
    returncode: int,
    result: Mapping[str, Any] | None,
    investigation: Mapping[str, Any] | None,
    nb: Any,
    signal_name: str,
) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
    """(status, failed_cell, error) from how the execution ended.

    Args:
        interrupted: the runner stopped the execution (SIGTERM/SIGINT).
        returncode: the worker's exit code.
        result: the worker's result (None when it died before writing one).
        investigation: the notebook's ``investigation.json`` (None when missing).
        nb: the saved notebook (None when unreadable).
        signal_name: the signal that interrupted the run.

    ``failed_cell`` indexes ``nb.cells``: the cell with the error output for a raising cell,
    else the last cell papermill started (a dead kernel, an interrupted run).
    """
    running = _running_cell(nb)
    if interrupted:
        error = {"kind": "interrupted", "ename": "Interrupted",
                 "evalue": f"{signal_name or 'a signal'} stopped the run"}
        cell = _cell_info(nb, running, "Interrupted", error["evalue"]) if running is not None \
            else None
        return "interrupted", cell, error
    if result is None:
        error = {"kind": "worker", "ename": "WorkerDied",
                 "evalue": f"the notebook runner exited with code {returncode}"}
        cell = _cell_info(nb, running, "WorkerDied", error["evalue"]) if running is not None \
            else None
        return "failed", cell, error
    if result.get("status") != "complete":
        err = dict(result.get("error") or {})
        found = _error_cell(nb)
        if err.get("kind") == "cell_error" and found is not None:
            return "failed", _cell_info(nb, found[0], found[1], found[2]), err
        index = running if running is not None else err.get("cell_index")
        cell = (_cell_info(nb, int(index), str(err.get("ename")), str(err.get("evalue", "")))
                if isinstance(index, int) else None)
        return "failed", cell, err
    if investigation is None:
        return "failed", None, {
            "kind": "no_investigation", "ename": "MissingInvestigation",
            "evalue": f"the notebook completed but wrote no readable {INVESTIGATION} "
                      "in output_dir"}
    if investigation.get("status") == "partial":
        return "partial", None, None
    return "complete", None, None


def annotate_notebook(nb: Any, summary: Mapping[str, Any]) -> Any:
    """Add a status banner (runs that did not complete) and a run record at the end."""
    nbformat = _nbformat()
    nb.cells = [c for c in nb.cells if _STATUS_TAG not in c.get("metadata", {}).get("tags", [])
                and _RECORD_TAG not in c.get("metadata", {}).get("tags", [])]
    status = str(summary["status"])
    e = html.escape
    if status != "complete":
        failed = summary.get("failed_cell")
        text = f"**Run {e(status)}**: " + e(outcome_message(status, summary))
        if status in {"failed", "interrupted"}:
            text += ". The outputs below are partial."
        banner = nbformat.v4.new_markdown_cell(text)
        banner.metadata["tags"] = [_STATUS_TAG]
        nb.cells.insert(0, banner)
        if failed:
            failed["index"] += 1
    changes = (summary.get("compare_previous") or {}).get("changes")
    lines = [
        "## Run record", "",
        f"- incident: {e(str(summary['incident_id']))}; run: {e(str(summary['run_id']))}; "
        f"status: **{e(status)}**",
        f"- started {e(str(summary['started']))}, finished {e(str(summary['finished']))}",
        f"- params file: {e(str(summary['params_file']))}",
        "- versions: " + e(", ".join(f"{k} {v}" for k, v in summary["versions"].items())),
    ]
    if summary.get("compare_previous") is not None:
        prev = summary["compare_previous"]
        lines += ["", f"### Since the previous run ({e(str(prev.get('previous_run_id')))})", ""]
        lines += [f"- {e(c)}" for c in changes] if changes else ["- nothing changed"]
    record = nbformat.v4.new_markdown_cell("\n".join(lines))
    record.metadata["tags"] = [_RECORD_TAG]
    nb.cells.append(record)
    return nb


def redact_value(value: Any, redactor: Redactor) -> Any:
    """``value`` with every string in it (nested in mappings and lists) masked."""
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, redactor) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, redactor) for v in value]
    return value


def redact_notebook(nb: Any, redactor: Redactor) -> None:
    """Mask secrets in every cell's source and outputs and in the metadata (not in images)."""
    nb.metadata = redact_value(nb.metadata, redactor)
    for cell in nb.cells:
        cell.source = redactor.text(str(cell.source))
        for output in cell.get("outputs", []):
            for key in ("text", "evalue", "traceback"):
                if key in output:
                    output[key] = redact_value(output[key], redactor)
            data = output.get("data")
            if data:
                for mime in list(data):
                    if mime not in _BINARY_MIME:
                        data[mime] = redact_value(data[mime], redactor)
    _renode(nb)


def _renode(nb: Any) -> None:
    nbformat = _nbformat()
    nb.metadata = nbformat.from_dict(nb.metadata)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "data" in output:
                output["data"] = nbformat.from_dict(output["data"])
