"""``uvs-analysis emulator``: serve log export files through a local Cloud Logging API."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from uvs_analysis.emulator.faults import FaultConfig
from uvs_analysis.emulator.server import serve_forever
from uvs_analysis.emulator.service import LoggingService
from uvs_analysis.emulator.store import open_store
from uvs_analysis.localhttp import port_number, until_signalled

__all__ = ["register", "run"]

_DESCRIPTION = """\
Serve Cloud Logging export files through a local emulator of the Cloud Logging API
(POST /v2/entries:list, as google-cloud-logging's HTTP transport calls it).

Prints the endpoint URL as the first line on stdout, then serves until SIGINT or SIGTERM.
Point a client at it with:
  gl.Client(project="P", credentials=AnonymousCredentials(), _use_grpc=False,
            client_options={"api_endpoint": URL})
and list_entries(resource_names=["projects/LOGS_PROJECT"], ...), with P other than the
project in the entries' logName (else the client queries the GCE metadata server).
Control routes: GET /emulator/stats, POST /emulator/reset, GET|POST /emulator/faults.
"""


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number between 0 and 1") from exc
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _non_negative(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from exc
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text} is negative")
        return value

    return parse


def register(subparsers: Any) -> None:
    """Add the ``emulator`` command."""
    p = subparsers.add_parser(
        "emulator",
        help="serve log export files through a local Cloud Logging API emulator",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--logs",
        nargs="+",
        required=True,
        metavar="FILE",
        help="LogEntry exports to serve: NDJSON (one entry per line) or a JSON array "
        "(gcloud logging read --format=json), optionally gzipped",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument(
        "--port",
        type=port_number,
        default=0,
        help="port to bind; 0 picks a free port (default: %(default)s)",
    )
    p.add_argument(
        "--quota-per-minute",
        type=_non_negative(int),
        default=60,
        metavar="N",
        help="read requests per minute per project before 429 RESOURCE_EXHAUSTED, like the "
        "real API's 60/min; 0 disables the quota (default: %(default)s)",
    )
    p.add_argument(
        "--fault-429",
        type=_probability,
        default=0.0,
        metavar="P",
        help="probability that a request gets 429 RESOURCE_EXHAUSTED (default: 0)",
    )
    p.add_argument(
        "--fault-503",
        type=_probability,
        default=0.0,
        metavar="P",
        help="probability that a request gets 503 UNAVAILABLE (default: 0)",
    )
    p.add_argument(
        "--fault-slow",
        type=_probability,
        default=0.0,
        metavar="P",
        help="probability that a page is delayed by --slow-seconds (default: 0)",
    )
    p.add_argument(
        "--slow-seconds",
        type=_non_negative(float),
        default=2.0,
        metavar="S",
        help="delay of a slow page in seconds (default: %(default)s)",
    )
    p.add_argument(
        "--fault-disconnect",
        type=_probability,
        default=0.0,
        metavar="P",
        help="probability that the connection breaks half-way through a response (default: 0)",
    )
    p.add_argument(
        "--fault-empty",
        type=_probability,
        default=0.0,
        metavar="P",
        help="probability of an empty page whose token leads to the same place, as the real "
        "API returns while it searches (default: 0)",
    )
    p.add_argument(
        "--deny",
        action="store_true",
        help="answer every request with 403 PERMISSION_DENIED (a missing IAM role)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the fault draws; same seed and request order, same faults "
        "(default: %(default)s)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load the files, print the endpoint and serve until SIGINT/SIGTERM; returns 0."""
    faults = FaultConfig(
        rate_limit=args.fault_429,
        unavailable=args.fault_503,
        slow=args.fault_slow,
        slow_seconds=args.slow_seconds,
        disconnect=args.fault_disconnect,
        empty_page=args.fault_empty,
        deny=args.deny,
    )
    store = open_store(args.logs)
    service = LoggingService(
        store, quota_per_minute=args.quota_per_minute, faults=faults, seed=args.seed
    )

    def ready(endpoint: str) -> None:
        sys.stdout.write(endpoint + "\n")
        sys.stdout.flush()
        sys.stderr.write(
            f"uvs-analysis emulator: serving {len(store.entries)} entries from "
            f"{len(store.sources)} file(s) at {endpoint}; skipped {len(store.skipped)} "
            f"record(s); quota {args.quota_per_minute or 'off'}/min\n"
        )
        for bad in store.skipped[:10]:
            sys.stderr.write(f"  skipped {bad.source}:{bad.line}: {bad.reason}\n")
        if len(store.skipped) > 10:
            sys.stderr.write(f"  ... and {len(store.skipped) - 10} more\n")
        sys.stderr.flush()

    if until_signalled(
        lambda: serve_forever(service, host=args.host, port=args.port, on_ready=ready)
    ):
        sys.stderr.write("uvs-analysis emulator: stopped\n")
    return 0
