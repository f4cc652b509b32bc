"""The ``uvs-analysis`` command: a thin shell that parses, calls the package and prints.

Each command lives in its own module that exposes ``register(subparsers)``; the module adds its
sub-parser and sets ``handler`` to a function ``(args) -> int``. Exit codes: 0 ok, 1 the analysis
failed, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from uvs_analysis import __version__
from uvs_analysis.errors import UvsAnalysisError

__all__ = ["COMMAND_MODULES", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: Modules that each register one command, in --help order.
COMMAND_MODULES: tuple[str, ...] = (
    "uvs_analysis.logs.sample_cli",
    "uvs_analysis.testbed.cli",
    "uvs_analysis.emulator.cli",
    "uvs_analysis.bqstandin.cli",
    "uvs_analysis.logs.cli",
    "uvs_analysis.replay.cli",
    "uvs_analysis.report.cli",
)


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 2 and a one-line hint on usage errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="uvs-analysis",
        description="Incident analysis workbook for WebSocket failures on Cloud Run.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except UvsAnalysisError as exc:
        sys.stderr.write(f"uvs-analysis {args.command}: error: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"uvs-analysis {args.command}: interrupted\n")
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
