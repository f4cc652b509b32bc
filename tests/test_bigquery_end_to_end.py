"""A bigquery:// source end to end: the logs notebook, the CLI and the correlation, unchanged.

The same bundled export is read twice: from the file (the pandas path) and from the local
BigQuery stand-in (the analysis pushed down to SQL). Notebooks, the CLI and the five-whys
correlation call the same functions for both and must report the same findings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import papermill as pm
import pytest

from uvs_analysis.bqstandin.server import StandinHandle, start_standin
from uvs_analysis.logs.files import load_file
from uvs_analysis.logs.query import LogQuery, parse_time
from uvs_analysis.logs.sample import BUNDLED_SAMPLE
from uvs_analysis.logs.sources import open_source
from uvs_analysis.rca.correlate import correlate

ROOT = Path(__file__).resolve().parents[1]
PROJECT, DATASET = "demo-project", "cloud_run_logs"
START, END = "2025-09-10T00:00:00Z", "2025-09-12T00:00:00Z"
#: Summary keys both paths must agree on (bad lines never reach BigQuery, see docs).
SAME_KEYS = ("entries", "duplicates", "severity_counts", "log_kinds", "close_codes",
             "top_signatures", "ws_sessions", "window")


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinHandle]:
    """The bundled sample export served as a Log Analytics ``_AllLogs`` view."""
    with start_standin([BUNDLED_SAMPLE], project=PROJECT, dataset=DATASET) as handle:
        yield handle


def _url(handle: StandinHandle) -> str:
    return f"bigquery://{PROJECT}/{DATASET}?endpoint={handle.endpoint}"


def _logs_json(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "uvs_analysis", "logs", *args, "--json"],
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data: dict = json.loads(proc.stdout)
    return data


def test_logs_cli_reports_the_same_summary_from_bigquery(standin: StandinHandle) -> None:
    """`uvs-analysis logs bigquery://...` prints the summary the file gives, key for key."""
    window = ("--start", START, "--end", END)
    from_file = _logs_json(str(BUNDLED_SAMPLE), *window)
    from_bigquery = _logs_json(_url(standin), *window)
    for key in SAME_KEYS:
        assert from_bigquery[key] == from_file[key], key
    assert from_bigquery["pull"]["bytes_estimated"] > 0


def test_logs_notebook_runs_unchanged_on_a_bigquery_source(
    standin: StandinHandle, tmp_path: Path
) -> None:
    """papermill runs notebook 01 on bigquery:// and its verdict equals the file's verdict."""
    verdicts = {}
    for name, source in (("file", str(BUNDLED_SAMPLE)), ("bigquery", _url(standin))):
        out = tmp_path / f"{name}.ipynb"
        pm.execute_notebook(
            str(ROOT / "notebooks" / "01_cloud_run_logs.ipynb"), str(out),
            parameters={"source": source, "start": START, "end": END, "cache_dir": ""},
            kernel_name="uvs-analysis", cwd=str(ROOT / "notebooks"), progress_bar=False,
        )
        nb = json.loads(out.read_text())
        assert nb["metadata"]["papermill"]["exception"] is None
        last = [c for c in nb["cells"] if c["cell_type"] == "code"][-1]
        verdicts[name] = "".join("".join(o.get("text", "")) for o in last["outputs"])
    # "N entries (B bad, D duplicates); ..." - bad records never reach the view
    file_rest = verdicts["file"].split(" bad, ", 1)[1]
    bigquery_rest = verdicts["bigquery"].split(" bad, ", 1)[1]
    assert bigquery_rest == file_rest
    assert "Database unavailable" in bigquery_rest


def test_correlation_counts_every_entry_of_a_pushed_down_load(standin: StandinHandle) -> None:
    """The five-whys evidence reads a BigQuery load's totals, not just the rows it fetched."""
    query = LogQuery(PROJECT, parse_time(START), parse_time(END))
    pushed = open_source(_url(standin)).load(query)
    local = load_file(BUNDLED_SAMPLE, query)
    assert pushed.aggregates is not None and len(pushed.frame) < pushed.aggregates.entries
    facts_pushed = correlate(None, logs=pushed).log.facts()
    facts_local = correlate(None, logs=local).log.facts()
    for fact in ("logs.entries", "logs.errors"):
        assert facts_pushed[fact] == facts_local[fact], fact


def test_an_investigation_tells_bigquery_its_request_timeout() -> None:
    """The report's request timeout reaches a bigquery:// source (sessions are judged there);
    a timeout already in the URL and other sources are left alone."""
    from uvs_analysis.investigation import with_request_timeout

    assert with_request_timeout("bigquery://p/d", 900) == "bigquery://p/d?request_timeout_s=900"
    assert with_request_timeout("bigquery://p/d?endpoint=http://h:1", 45.0).endswith(
        "?endpoint=http://h:1&request_timeout_s=45")
    assert with_request_timeout("bigquery://p/d?request_timeout_s=60", 900).endswith("=60")
    assert with_request_timeout("cloudlogging://p", 900) == "cloudlogging://p"
    source = open_source(with_request_timeout("bigquery://proj-a/ds", 900))
    assert source.settings.request_timeout_s == 900.0  # type: ignore[attr-defined]
