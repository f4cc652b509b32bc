"""Peak memory of a benchmark run: RSS above the process's baseline, from /proc."""

from __future__ import annotations

from pathlib import Path

__all__ = ["peak_reset", "status_kb"]


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
