"""Peak memory of a benchmark run: RSS above the process's baseline, from /proc; each
measurement runs in a process of its own (:func:`run_child`) so peaks do not mix."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["peak_reset", "run_child", "status_kb"]


def run_child(cmd: Sequence[str]) -> dict[str, Any]:
    """Run ``cmd`` and return the last JSON object line it prints (``{"error": ...}`` with
    the exit code and the last lines of its output when it fails or prints none)."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def status_kb(field: str) -> int | None:
    """A ``/proc/self/status`` field in kB (``VmRSS``, ``VmHWM``), None where unavailable."""
    try:
        with Path("/proc/self/status").open() as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_reset() -> bool:
    """Reset the peak (VmHWM) to the current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True
