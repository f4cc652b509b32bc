"""The JSON summary of a log load (``uvs-analysis logs --json`` and the report's ``logs``)."""

from __future__ import annotations

from typing import Any

from uvs_analysis.logs.schema import LogAggregates, LogLoad
from uvs_analysis.logs.sessions import session_summary, websocket_sessions
from uvs_analysis.logs.signatures import error_signatures
from uvs_analysis.logs.timeline import close_code_counts

__all__ = ["logs_verdict", "summarize_logs", "summary_markdown"]


def summarize_logs(
    load: LogLoad, *, request_timeout_s: float = 300.0, top: int = 10
) -> dict[str, Any]:
    """Counts a reader checks first, as plain JSON values.

    Keys: source, entries, read, bad_lines (count), bad_records (first few, with line and
    reason), duplicates, filtered_out, severity_counts, log_kinds, close_codes,
    top_signatures (list of {template, count}), ws_sessions ({count, at_timeout,
    request_timeout_s}), window ({first, last}), and the pull's metadata when there is any.
    """
    aggregates = load.aggregates
    if aggregates is None:
        frame = load.frame
        sessions = session_summary(websocket_sessions(frame, request_timeout_s=request_timeout_s))
        entries = len(frame)
        severity_counts, log_kinds = _counts(frame["severity"]), _counts(frame["log_kind"])
        ws_count, at_timeout = sessions.count, sessions.at_timeout
        first = frame["timestamp"].min() if len(frame) else None
        last = frame["timestamp"].max() if len(frame) else None
    else:  # pushed down to BigQuery: from the aggregates it computed
        entries = aggregates.entries
        severity_counts, log_kinds = dict(aggregates.severity_counts), dict(aggregates.log_kinds)
        ws_count, at_timeout = _pushed_sessions(load, aggregates, request_timeout_s)
        first, last = aggregates.first, aggregates.last
    signatures = error_signatures(load).head(top)
    summary: dict[str, Any] = {
        "source": load.source,
        "entries": entries,
        "read": load.read,
        "bad_lines": load.bad_total,
        "bad_records": [
            {"source": bad.source, "line": bad.line, "reason": bad.reason}
            for bad in load.bad_records[:20]
        ],
        "duplicates": load.duplicates,
        "filtered_out": load.filtered_out,
        "severity_counts": severity_counts,
        "log_kinds": log_kinds,
        "close_codes": {str(code): int(n) for code, n in close_code_counts(load).items()},
        "top_signatures": [
            {"template": str(template), "count": int(count)}
            for template, count in zip(signatures["template"], signatures["count"], strict=True)
        ],
        "ws_sessions": {
            "count": ws_count,
            "at_timeout": at_timeout,
            "request_timeout_s": request_timeout_s,
        },
        "window": {
            "first": None if first is None else first.isoformat(),
            "last": None if last is None else last.isoformat(),
        },
    }
    if load.meta:
        summary["pull"] = {k: v for k, v in load.meta.items() if k != "cache"}
        if "cache" in load.meta:
            summary["cache"] = load.meta["cache"]
    return summary


def _pushed_sessions(
    load: LogLoad, aggregates: LogAggregates, request_timeout_s: float
) -> tuple[int, int]:
    """WebSocket sessions and those at the timeout of a pushed-down load: counted in SQL when
    it used this timeout, else the sessions listed, judged against this one."""
    if float(request_timeout_s) == aggregates.request_timeout_s:
        counts = aggregates.session_counts
        return int(counts["count"].sum()), int(counts["at_timeout"].sum())
    sessions = session_summary(websocket_sessions(load, request_timeout_s=request_timeout_s))
    return aggregates.sessions_total, sessions.at_timeout


def _counts(series: Any) -> dict[str, int]:
    counts = series.fillna("(none)").value_counts()
    return {str(key): int(value) for key, value in counts.items()}


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary as a short Markdown block for a notebook or report."""
    ws = summary["ws_sessions"]
    lines = [
        f"**Source** `{summary['source']}`: **{summary['entries']:,}** entries loaded of "
        f"{summary['read']:,} read; {summary['bad_lines']:,} bad records skipped, "
        f"{summary['duplicates']:,} duplicates, {summary['filtered_out']:,} outside the query.",
        "",
        f"Window: {summary['window']['first']} to {summary['window']['last']}.",
        "",
        f"WebSocket sessions: **{ws['count']:,}**, of which **{ws['at_timeout']:,}** ended at the "
        f"{ws['request_timeout_s']:g} s request timeout.",
        "",
        "| severity | entries |",
        "|---|---:|",
        *(f"| {key} | {value:,} |" for key, value in summary["severity_counts"].items()),
    ]
    if summary["close_codes"]:
        codes = ", ".join(f"{code}: {n:,}" for code, n in summary["close_codes"].items())
        lines += ["", f"Close codes in the logs: {codes}."]
    pull = summary.get("pull") or {}
    if "filter" in pull:
        lines += ["", "Cloud Logging filter (re-run it in Logs Explorer):", "", "```",
                  str(pull["filter"]), "```"]
    if pull.get("pushed_down"):
        lines += ["", f"Computed in BigQuery (`{pull.get('table')}`): "
                  f"{int(pull.get('bytes_estimated', 0)):,} bytes scanned (dry-run estimate); "
                  f"{int(pull.get('rows_fetched', 0)):,} rows near failures fetched, "
                  f"{int(pull.get('rows_near_failures_not_fetched', 0)):,} more over the row "
                  f"limit of {int(pull.get('max_rows', 0)):,}."]
    if summary.get("cache"):
        cache = summary["cache"]
        state = "read from the cached snapshot" if cache.get("hit") else "pulled and cached"
        lines += ["", f"Pull {state} (key `{cache.get('key')}`)."]
    if summary["bad_records"]:
        lines += ["", "Skipped records (first few):", ""]
        lines += [
            f"- `{bad['source']}` line {bad['line']}: {bad['reason']}"
            for bad in summary["bad_records"][:5]
        ]
    return "\n".join(lines)


def logs_verdict(summary: dict[str, Any]) -> str:
    """One stable line for the end of a logs notebook."""
    top = summary["top_signatures"][0]["template"] if summary["top_signatures"] else "none"
    ws = summary["ws_sessions"]
    return (f"{summary['entries']} entries ({summary['bad_lines']} bad, {summary['duplicates']} "
            f"duplicates); {ws['count']} WebSocket sessions, {ws['at_timeout']} at the timeout; "
            f"top error signature: {top}")
