"""``uvs-analysis report``: run the whole investigation as one papermill report.

Prints progress on stderr and the run directory as the last line of stdout. Exit codes: 0 the
run completed, 1 it failed, is partial or was interrupted (or another run held the incident's
lock too long), 2 bad params or usage (nothing was run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from uvs_analysis.report.runner import DEFAULT_KERNEL, DEFAULT_OUT, default_notebook, run_report

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``report`` sub-command."""
    p = subparsers.add_parser(
        "report",
        help="run the report notebook with a params file into a new run directory",
        description="Validate PARAMS against the report notebook's parameters, execute it with "
        "papermill and write DIR/<incident_id>/<run_id>/ (report.ipynb, report.html, "
        "summary.json, run.log) and DIR/index.html. Tokens come only from environment "
        "variables named in '*_env' parameters.",
    )
    p.add_argument("-f", "--params", required=True, type=Path, metavar="PARAMS",
                   help="params YAML file (relative *_file/*_path/*_dir values are resolved "
                        "against its directory)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                   help=f"output directory (default {DEFAULT_OUT})")
    p.add_argument("--notebook", type=Path, default=None, metavar="PATH",
                   help="report notebook (default: notebooks/report.ipynb of the checkout the "
                        f"package runs from: {default_notebook()})")
    p.add_argument("--lock-timeout", type=float, default=600.0, metavar="S",
                   help="seconds to wait for another run of the same incident (default 600)")
    p.add_argument("--kernel", default=DEFAULT_KERNEL, help=argparse.SUPPRESS)
    p.add_argument("--show-code", action="store_true",
                   help="include the code cells in report.html (hidden by default)")
    p.add_argument("--cell-timeout", type=float, default=None, metavar="S",
                   help="fail a cell that runs longer than S seconds (default: no limit)")
    p.set_defaults(handler=run)


def _echo(line: str) -> None:
    sys.stderr.write(f"uvs-analysis report: {line}\n")
    sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    """Handler of ``uvs-analysis report``."""
    outcome = run_report(
        args.params,
        out_dir=args.out,
        notebook=args.notebook,
        lock_timeout_s=args.lock_timeout,
        kernel_name=args.kernel,
        show_code=args.show_code,
        execution_timeout_s=args.cell_timeout,
        echo=_echo,
    )
    _echo(outcome.message)
    if outcome.run_dir is None:
        return outcome.exit_code
    sys.stdout.write(f"{outcome.run_dir}\n")
    sys.stdout.flush()
    return outcome.exit_code
