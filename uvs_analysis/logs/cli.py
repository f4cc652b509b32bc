"""``uvs-analysis logs``: load Cloud Run logs from a file or Cloud Logging and summarize them."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["register"]

_EPILOG = """\
SOURCE is a `gcloud logging read --format=json` export or NDJSON file (optionally .gz),
'sample' for the bundled sample export, or cloudlogging://PROJECT[?endpoint=URL][&rpm=N]
(Application Default Credentials; `endpoint` points at another API endpoint such as the
local emulator, `rpm` sets the pace under the read quota). Cloud Logging needs --start and
--end. Pulls are cached under --cache-dir; --refresh pulls again.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "logs",
        help="load Cloud Run logs and summarize them",
        description="Load Cloud Run logs (file export or Cloud Logging) into the normalized "
        "schema and summarize severities, WebSocket sessions, close codes and error signatures.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="SOURCE", help="file path, 'sample' or cloudlogging://")
    parser.add_argument("--service", default="", help="Cloud Run service name")
    parser.add_argument("--revision", default="", help="one revision only")
    parser.add_argument("--region", default="", help="Cloud Run region (location)")
    parser.add_argument("--start", default="", help="window start, ISO-8601 (UTC if no offset)")
    parser.add_argument("--end", default="", help="window end (exclusive), ISO-8601")
    parser.add_argument("--severity", default="", help="severity floor, e.g. WARNING")
    parser.add_argument(
        "--log-kinds",
        default="request,stdout,stderr,system",
        help="comma-separated Cloud Run logs to read (default: all four)",
    )
    parser.add_argument("--filter", default="", help="extra Logging query language clause")
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=300.0,
        help="Cloud Run request timeout in seconds (flags sessions ending at it; default 300)",
    )
    parser.add_argument("--cache-dir", default="outputs/cache", help="where pulls are cached")
    parser.add_argument("--refresh", action="store_true", help="pull again, ignoring the cache")
    parser.add_argument("--top", type=int, default=10, help="how many error signatures to list")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--out", default="", help="also write the normalized rows to FILE.parquet")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from uvs_analysis.logs.query import query_for
    from uvs_analysis.logs.sessions import check_request_timeout
    from uvs_analysis.logs.sources import load_logs
    from uvs_analysis.logs.summary import summarize_logs

    check_request_timeout(args.request_timeout)
    query = query_for(
        args.source,
        start=args.start,
        end=args.end,
        service=args.service,
        revision=args.revision,
        region=args.region,
        severity=args.severity,
        log_kinds=[k.strip() for k in args.log_kinds.split(",") if k.strip()],
        extra_filter=args.filter,
    )
    with tqdm(desc="entries", unit=" entries", file=sys.stderr, disable=None) as bar:

        def progress(count: int) -> None:
            bar.update(count - bar.n)

        load = load_logs(
            args.source,
            query,
            cache_dir=args.cache_dir or None,
            refresh=args.refresh,
            now=lambda: datetime.now(UTC),
            progress=progress,
        )
    summary = summarize_logs(load, request_timeout_s=args.request_timeout, top=args.top)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        load.frame.to_parquet(out, index=False)
        summary["out"] = str(out)
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(_text(summary))
    return 0


def _text(summary: dict[str, Any]) -> str:
    lines = [
        f"source       {summary['source']}",
        f"entries      {summary['entries']} loaded of {summary['read']} read "
        f"({summary['bad_lines']} bad, {summary['duplicates']} duplicates, "
        f"{summary['filtered_out']} outside the query)",
        f"window       {summary['window']['first']} .. {summary['window']['last']}",
        "severity     " + _inline(summary["severity_counts"]),
        "log kinds    " + _inline(summary["log_kinds"]),
        "close codes  " + (_inline(summary["close_codes"]) or "(none)"),
        f"ws sessions  {summary['ws_sessions']['count']} "
        f"({summary['ws_sessions']['at_timeout']} ended at the "
        f"{summary['ws_sessions']['request_timeout_s']:g} s request timeout)",
        "top error signatures:",
    ]
    lines += [f"  {sig['count']:>6}  {sig['template']}" for sig in summary["top_signatures"]]
    for bad in summary["bad_records"][:5]:
        lines.append(f"skipped {bad['source']}:{bad['line']}: {bad['reason']}")
    if "out" in summary:
        lines.append(f"rows written to {summary['out']}")
    return "\n".join(lines) + "\n"


def _inline(counts: dict[str, int]) -> str:
    return ", ".join(f"{key}={value}" for key, value in counts.items())
