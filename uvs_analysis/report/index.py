"""The run index: ``DIR/index.html`` listing every report run, with per-incident trends.

Runs are read from ``DIR/<incident_id>/<run_id>/summary.json``; hidden directories (runs still
in progress, ``.<run_id>.tmp``) are skipped. The page is self-contained (inline CSS and SVG
sparklines, no script) and every text taken from a summary is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from uvs_analysis.report.compare import key_figures
from uvs_analysis.report.files import atomic_write_text, incident_lock

__all__ = ["RunEntry", "find_previous", "load_runs", "render_index", "write_index"]

#: Statuses whose runs carry analysis results (compared against).
ANALYSED: Final = ("complete", "partial")


@dataclass(frozen=True)
class RunEntry:
    """One run directory and its summary."""

    incident_id: str
    run_id: str
    path: Path
    summary: Mapping[str, Any] = field(default_factory=dict)
    readable: bool = True


def load_runs(out_dir: Path) -> list[RunEntry]:
    """Every run under ``out_dir``, newest first (run ids start with their UTC start time).

    A run directory whose summary is missing or unreadable is listed with ``readable=False``.
    """
    runs: list[RunEntry] = []
    if not out_dir.is_dir():
        return runs
    for incident in sorted(p for p in out_dir.iterdir() if p.is_dir()):
        if incident.name.startswith("."):
            continue
        for run in sorted(p for p in incident.iterdir() if p.is_dir()):
            if run.name.startswith("."):
                continue
            try:
                data = orjson.loads((run / "summary.json").read_bytes())
                ok = isinstance(data, dict)
            except (OSError, orjson.JSONDecodeError):
                data, ok = {}, False
            runs.append(RunEntry(incident.name, run.name, run, data if ok else {}, ok))
    runs.sort(key=lambda r: (r.run_id, r.incident_id), reverse=True)
    return runs


def find_previous(incident_dir: Path, run_id: str) -> dict[str, Any] | None:
    """The summary of the latest run of this incident before ``run_id`` that got analysis
    results (status complete or partial), or None."""
    if not incident_dir.is_dir():
        return None
    for run in sorted((p for p in incident_dir.iterdir() if p.is_dir()), reverse=True):
        if run.name.startswith(".") or run.name >= run_id:
            continue
        try:
            data = orjson.loads((run / "summary.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("status") in ANALYSED:
            return data
    return None


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{float(value):.0%}"


def _sparkline(values: Sequence[float | None], *, width: int = 120, height: int = 24) -> str:
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    if not points:
        return '<span class="muted">no data</span>'
    step = width / max(len(values) - 1, 1)
    coords = " ".join(f"{i * step:.1f},{height - 2 - v * (height - 4):.1f}" for i, v in points)
    last_x, last_v = points[-1]
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="failure rate, oldest to newest">'
        f'<polyline fill="none" stroke="#c62828" stroke-width="1.5" points="{coords}"/>'
        f'<circle cx="{last_x * step:.1f}" cy="{height - 2 - last_v * (height - 4):.1f}" '
        f'r="2" fill="#c62828"/></svg>'
    )


_CSS: Final = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f5f5f5}.muted{color:#888}
.complete{color:#2e7d32}.failed,.interrupted{color:#c62828}.partial{color:#ef6c00}
"""


def _run_row(run: RunEntry) -> str:
    s = run.summary
    if not run.readable:
        return (f"<tr><td>{_e(run.incident_id)}</td><td>{_e(run.run_id)}</td>"
                '<td class="failed">unreadable summary</td><td></td><td></td></tr>')
    root = (s.get("five_whys") or {}).get("root_cause") if isinstance(s.get("five_whys"),
                                                                     Mapping) else None
    root = root if isinstance(root, Mapping) else {}
    status = str(s.get("status", "unknown"))
    failed = s.get("failed_cell") if isinstance(s.get("failed_cell"), Mapping) else None
    detail = ""
    if failed:
        detail = (f'<br><span class="muted">cell {_e(failed.get("index"))}: '
                  f'{_e(failed.get("ename"))}</span>')
    href = f"{run.incident_id}/{run.run_id}/report.html"
    link = (f'<a href="{_e(href)}">report</a>' if (run.path / "report.html").is_file()
            else '<span class="muted">no report</span>')
    return (
        f"<tr><td>{_e(run.incident_id)}</td><td>{_e(s.get('started', run.run_id))}</td>"
        f'<td class="{_e(status)}">{_e(status)}{detail}</td>'
        f"<td>{_e(root.get('category', ''))}<br><small>{_e(root.get('statement', ''))}</small>"
        f"</td><td>{link}</td></tr>"
    )


def _trend(incident: str, runs: Iterable[RunEntry]) -> str:
    ordered = sorted((r for r in runs if r.readable), key=lambda r: r.run_id)
    if not ordered:
        return ""
    figures = [key_figures(r.summary) for r in ordered]
    rows = "".join(
        f"<tr><td>{_e(r.summary.get('started', r.run_id))}</td><td>{_e(r.summary.get('status'))}"
        f"</td><td>{_pct(f['failure_rate'])}</td>"
        f"<td>{_e(f['top_close_code'] or '–')} {_pct(f['top_close_code_share'])}</td>"
        f"<td>{_e('–' if f['signature_count'] is None else f['signature_count'])}</td>"
        f"<td>{_e(f['root_cause_category'] or '–')}</td></tr>"
        for r, f in zip(reversed(ordered), reversed(figures), strict=True)
    )
    spark = _sparkline([f["failure_rate"] for f in figures])
    return (
        f"<h3>{_e(incident)}</h3><p>Failure rate across runs (oldest to newest): {spark}</p>"
        "<table><tr><th>run</th><th>status</th><th>failure rate</th>"
        "<th>top close code (share of attempts)</th><th>error signatures</th>"
        f"<th>root cause</th></tr>{rows}</table>"
    )


def render_index(runs: Sequence[RunEntry], *, title: str = "uvs-analysis reports") -> str:
    """The index page for ``runs`` (newest first): every run, then each incident's trend."""
    rows = "".join(_run_row(r) for r in runs) or (
        '<tr><td colspan="5" class="muted">no runs yet</td></tr>')
    incidents: dict[str, list[RunEntry]] = {}
    for run in runs:
        incidents.setdefault(run.incident_id, []).append(run)
    trends = "".join(_trend(name, items) for name, items in incidents.items())
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><h2>Runs (newest first)</h2>"
        "<table><tr><th>incident</th><th>started (UTC)</th><th>status</th>"
        f"<th>root cause</th><th>report</th></tr>{rows}</table>"
        f"<h2>Trends by incident</h2>{trends or '<p class=muted>no data</p>'}</body></html>\n"
    )


def write_index(out_dir: Path, *, lock_timeout_s: float = 60.0) -> Path:
    """Rebuild ``out_dir/index.html`` atomically (under ``out_dir/.index.lock``)."""
    with incident_lock(out_dir / ".index.lock", timeout_s=lock_timeout_s):
        page = render_index(load_runs(out_dir))
        path = out_dir / "index.html"
        atomic_write_text(path, page)
    return path
