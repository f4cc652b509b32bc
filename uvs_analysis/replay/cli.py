"""``uvs-analysis replay``: replay a WebSocket handshake and agent run, print the verdicts.

Exit codes: 0 the replay ran (whatever the target did: outcomes are results, not errors), 2 bad
usage or input (bad URL, HAR, message JSON, missing token).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from uvs_analysis.errors import UsageError
from uvs_analysis.replay.contract import ContractParams
from uvs_analysis.replay.har import spec_from_har
from uvs_analysis.replay.matrix import run_matrix
from uvs_analysis.replay.runner import run_replay
from uvs_analysis.replay.spec import (
    DEFAULT_MESSAGE,
    HandshakeSpec,
    MessageStep,
    RetryPolicy,
)

__all__ = ["build_spec", "register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``replay`` sub-command."""
    p = subparsers.add_parser(
        "replay",
        help="replay a WebSocket handshake and agent run; classify every attempt",
        description="Replay a WebSocket handshake and agent run against WS_URL (or the URL of "
        "a HAR capture), N times, and report outcomes, close codes, the agent-run contract, "
        "SLOs, multi-user isolation and RFC 6455 conformance. The token is read from the "
        "environment variable named by --token-env, never from the command line.",
    )
    p.add_argument("ws_url", nargs="?", metavar="WS_URL",
                   help="ws:// or wss:// URL (optional with --har: overrides the capture's URL)")
    p.add_argument("--attempts", type=int, default=1, metavar="N")
    p.add_argument("--concurrency", type=int, default=1, metavar="C")
    p.add_argument("--users", type=int, default=1, metavar="U")
    p.add_argument("--token-env", metavar="VAR", help="environment variable holding the token")
    p.add_argument("--subprotocol", action="append", default=[], metavar="TEMPLATE",
                   help="offered subprotocol, e.g. 'jwt.{token}' (repeatable)")
    p.add_argument("--header", action="append", default=[], metavar="'Name: value-template'",
                   help="extra request header, e.g. 'Authorization: Bearer {token}' (repeatable)")
    p.add_argument("--message", action="append", default=[], metavar="JSON",
                   help="message to send after open (repeatable; default: a start_agent)")
    p.add_argument("--no-message", action="store_true", help="handshake only: send nothing")
    p.add_argument("--har", metavar="FILE", help="Chrome DevTools HAR export to replay")
    p.add_argument("--health", action="append", default=[], metavar="URL",
                   help="health/readiness URL probed before, during and after (repeatable)")
    p.add_argument("--origin", metavar="URL")
    p.add_argument("--no-compression", action="store_true")
    p.add_argument("--retries", type=int, default=2, metavar="R",
                   help="reconnects per attempt with backoff (default 2)")
    p.add_argument("--open-timeout", type=float, default=10.0, metavar="S")
    p.add_argument("--run-timeout", type=float, default=60.0, metavar="S")
    p.add_argument("--slo-data", type=float, default=5.0, metavar="S")
    p.add_argument("--slo-report", type=float, default=2.0, metavar="S")
    p.add_argument("--workflow", metavar="A,B,C",
                   help="agents that must run, e.g. triage,data_helper,reporting")
    p.add_argument("--matrix", action="store_true",
                   help="also vary one handshake feature at a time and name the one that "
                   "flips the outcome")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise UsageError(f"--header {text!r} has no 'Name: value' form",
                         expected="'Name: value', e.g. 'Authorization: Bearer {token}'")
    return name.strip(), value.strip()


def _message(text: str, position: int) -> MessageStep:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--message number {position} is not JSON: {exc.msg} at column {exc.colno}",
            expected='a JSON message such as \'{"type": "start_agent", "payload": '
            '{"user_request": "hi"}}\'',
        ) from exc
    return MessageStep(text)


def build_spec(args: argparse.Namespace) -> HandshakeSpec:
    """Turn parsed arguments into a HandshakeSpec."""
    fields: dict[str, Any] = {
        "open_timeout_s": args.open_timeout,
        "run_timeout_s": args.run_timeout,
        "retry": RetryPolicy(max_retries=max(0, args.retries)),
    }
    if args.health:
        fields["health_urls"] = tuple(args.health)
    if args.origin:
        fields["origin"] = args.origin
    if args.no_compression:
        fields["compression"] = False
    if args.subprotocol:
        fields["subprotocols"] = tuple(args.subprotocol)
    if args.header:
        fields["headers"] = tuple(_header(h) for h in args.header)
    if args.message:
        fields["messages"] = tuple(_message(m, i + 1) for i, m in enumerate(args.message))
    if args.no_message:
        fields["messages"] = ()
    if args.har:
        if args.ws_url:
            fields["url"] = args.ws_url
        spec = spec_from_har(args.har, token_env=args.token_env, **fields)
        if not spec.messages and "messages" not in fields:
            spec = spec.with_changes(messages=(MessageStep(DEFAULT_MESSAGE),))
        return spec
    if not args.ws_url:
        raise UsageError("no WS_URL given", expected="a ws:// or wss:// URL, or --har FILE")
    fields.setdefault("messages", (MessageStep(DEFAULT_MESSAGE),))
    return HandshakeSpec(url=args.ws_url, token_env=args.token_env, **fields)


def _text(summary: dict[str, Any]) -> str:
    hs = summary["handshake_ms"]
    lines = [
        f"target      {summary['url']}",
        f"attempts    {summary['attempts']} ({summary['tries']} tries; "
        f"{summary['transient']} transient, {summary['persistent']} persistent failures)",
        "outcomes    " + ", ".join(f"{k} x{v}" for k, v in summary["outcome_labels"].items()),
        "close codes " + (", ".join(f"{k} x{v}" for k, v in summary["close_codes"].items())
                          or "none"),
        f"handshake   p50 {hs['p50']} ms, p95 {hs['p95']} ms",
        f"contract    {summary['contract']['runs']} runs, "
        f"{summary['contract']['violations']} violations {summary['contract']['by_rule'] or ''}",
        f"slo         data p95 {summary['slo']['data_p95_s']} s, report p95 "
        f"{summary['slo']['report_p95_s']} s, {summary['slo']['breaches']} breaches",
        f"isolation   {summary['isolation']['users']} users, "
        f"{summary['isolation']['violations']} violations",
    ]
    for f in summary["conformance"]:
        lines.append(f"conformance {f['rule']}: {f['detail']} (x{f['count']})")
    if "matrix" in summary:
        lines.append(f"matrix      {summary['matrix']['explanation']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Handler of ``uvs-analysis replay``."""
    spec = build_spec(args)
    workflow = tuple(a.strip() for a in (args.workflow or "").split(",") if a.strip())
    params = ContractParams(required_agents=workflow, slo_data_s=args.slo_data,
                            slo_report_s=args.slo_report, expected_types=spec.expected_types)
    result = run_replay(spec, attempts=args.attempts, concurrency=args.concurrency,
                        users=args.users, contract=params)
    summary = result.summary()
    if args.matrix:
        summary["matrix"] = run_matrix(spec, contract=params).summary()
    if args.json:
        sys.stdout.write(json.dumps(summary, sort_keys=False) + "\n")
    else:
        sys.stdout.write(_text(summary) + "\n")
    return 0
