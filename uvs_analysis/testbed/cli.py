"""``uvs-analysis testbed``: run the testbed backend with fault profiles until interrupted."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from uvs_analysis.errors import UsageError
from uvs_analysis.testbed.faults import (
    EVENT_SHAPES,
    FAULTS,
    LOG_FORMATS,
    WORDINGS,
    TestbedSettings,
    parse_faults,
)

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``testbed`` sub-command."""
    p = subparsers.add_parser(
        "testbed", help="run the local testbed backend (FastAPI/uvicorn) with fault profiles",
        description="Run a local backend that speaks the real WebSocket protocol and fails like "
                    "the real one. The JWT secret comes from the environment "
                    "(UVS_TESTBED_JWT_SECRET); use uvs_analysis.testbed.start_testbed() to get "
                    "a minted demo token.")
    p.add_argument("--fault", default="healthy", metavar="NAME[,NAME]",
                   help="fault profiles to combine (see --list-faults)")
    p.add_argument("--list-faults", action="store_true", help="print the profiles and exit")
    p.add_argument("--mint-token", metavar="USER_ID",
                   help="print a one-hour JWT for USER_ID signed with UVS_TESTBED_JWT_SECRET "
                        "and exit (for replaying against a testbed started by hand)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--log-file", type=Path, help="append Cloud Run LogEntry NDJSON here")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="multiply every delay, timeout and SLO by this (e.g. 0.05 in tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fault-rate", type=float, default=0.5,
                   help="fraction of connections hit by database-down / redis-down")
    p.add_argument("--log-format", choices=LOG_FORMATS, default="gcp")
    p.add_argument("--wording", choices=WORDINGS, default="default")
    p.add_argument("--event-shape", choices=EVENT_SHAPES, default="bridge")
    p.add_argument("--data-sufficiency", choices=("auto", "sufficient", "insufficient"),
                   default="auto")
    p.add_argument("--auth", choices=("strict", "demo"), default="strict", dest="auth_mode")
    p.add_argument("--request-timeout", type=float, metavar="S",
                   help="platform request timeout in base seconds (900; 2 under request-timeout)")
    p.add_argument("--startup-delay", type=float, metavar="S",
                   help="startup-race: base seconds until dependencies are ready (40)")
    p.add_argument("--idle-cut", type=float, metavar="S",
                   help="proxy-idle-cut: base seconds of silence before nginx cuts (15)")
    proxy = p.add_mutually_exclusive_group()
    proxy.add_argument("--proxy", dest="proxy", action="store_true", default=None,
                       help="run nginx in front (automatic for the proxy faults)")
    proxy.add_argument("--no-proxy", dest="proxy", action="store_false")
    p.add_argument("--project", default="netra-staging")
    p.add_argument("--service", default="netra-backend-staging")
    p.add_argument("--revision", default="netra-backend-staging-00001-abc")
    p.add_argument("--location", default="us-central1")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``uvs-analysis testbed``."""
    if args.mint_token:
        import os
        import time

        from uvs_analysis.testbed.auth import SECRET_ENV, mint_token

        secret = os.environ.get(SECRET_ENV, "")
        if not secret:
            raise UsageError(f"the environment variable {SECRET_ENV} is not set",
                             expected="the testbed's JWT signing secret in the environment",
                             hint=f"export {SECRET_ENV}=$(python -c 'import secrets; "
                                  "print(secrets.token_hex(32))') before starting the testbed")
        sys.stdout.write(mint_token(secret, args.mint_token, now=time.time()) + "\n")
        return 0
    if args.list_faults:
        width = max(map(len, FAULTS))
        for name, text in FAULTS.items():
            sys.stdout.write(f"{name.ljust(width)}  {text}\n")
        return 0
    try:
        faults = parse_faults(args.fault)
    except UsageError as exc:
        sys.stderr.write("known fault profiles:\n" + "".join(
            f"  {name}\n" for name in FAULTS))
        raise exc
    settings = TestbedSettings(
        faults=faults, time_scale=args.time_scale, seed=args.seed, fault_rate=args.fault_rate,
        log_format=args.log_format, wording=args.wording, event_shape=args.event_shape,
        data_sufficiency=args.data_sufficiency, auth_mode=args.auth_mode, project=args.project,
        service=args.service, revision=args.revision, location=args.location,
        request_timeout_s=args.request_timeout, startup_delay_s=args.startup_delay,
        idle_cut_s=args.idle_cut)
    from uvs_analysis.testbed.server import serve  # heavy imports only when serving

    return serve(settings, host=args.host, port=args.port, log_file=args.log_file,
                 proxy=args.proxy, argv=sys.argv[1:])
