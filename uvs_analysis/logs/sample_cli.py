"""``uvs-analysis sample``: write a generated Cloud Run log export of any size."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from uvs_analysis.errors import UsageError
from uvs_analysis.logs.query import parse_time, rfc3339
from uvs_analysis.logs.sample import DEFAULT_START, FORMATS, write_sample

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``sample`` command to the CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "sample",
        help="write a realistic generated Cloud Run log export (deterministic)",
        description=(
            "Write a generated Cloud Run log export: a healthy period, a deploy and a WebSocket "
            "1011 episode, with realistic noise. Same arguments, same bytes."
        ),
    )
    parser.add_argument("--entries", type=int, required=True, help="how many log entries")
    parser.add_argument("--out", type=Path, required=True, help="output file (.gz compresses)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="ndjson (one entry per line) or json (a gcloud-style array); "
        "default: from the file name (.json -> json, otherwise ndjson)",
    )
    parser.add_argument(
        "--start",
        default=None,
        help=f"window start, ISO-8601 (default {rfc3339(DEFAULT_START)})",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write the export the parsed arguments describe; returns the exit code."""
    if args.entries < 0:
        raise UsageError(f"--entries {args.entries} is negative", expected="a count >= 0")
    out: Path = args.out
    fmt = args.format or ("json" if out.name.removesuffix(".gz").endswith(".json") else "ndjson")
    start = DEFAULT_START if args.start is None else parse_time(args.start, name="--start")
    path = write_sample(out, entries=args.entries, seed=args.seed, fmt=fmt, start=start)
    size = path.stat().st_size
    sys.stdout.write(f"wrote {args.entries} entries ({fmt}, {size:,} bytes) to {path}\n")
    return 0
