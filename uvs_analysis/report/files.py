"""File-system helpers for report runs: private atomic writes, a per-incident lock, scrubbing.

Every file is written to a temporary sibling and renamed into place (a reader never sees half a
file), with mode 0600; directories are 0700.
"""

from __future__ import annotations

import contextlib
import fcntl
import html
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from uvs_analysis.errors import AnalysisError
from uvs_analysis.replay.redact import MASK, secret_forms

__all__ = [
    "LockTimeoutError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "incident_lock",
    "private_dir",
    "scrub_tree",
]

FILE_MODE = 0o600
DIR_MODE = 0o700


class LockTimeoutError(AnalysisError):
    """Another run of the same incident held the lock past the timeout."""


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) readable by the user only; returns it."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and a rename (mode 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).chmod(FILE_MODE)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """``atomic_write_bytes`` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically."""
    atomic_write_bytes(path, orjson.dumps(value, option=orjson.OPT_INDENT_2
                                          | orjson.OPT_NON_STR_KEYS) + b"\n")


@contextlib.contextmanager
def incident_lock(
    path: Path,
    *,
    timeout_s: float,
    cancelled: threading.Event | None = None,
    on_wait: Callable[[], None] | None = None,
    poll_s: float = 0.1,
) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``path`` (created 0600) for the block.

    Args:
        path: the lock file.
        timeout_s: how long to wait for another holder.
        cancelled: stop waiting when set (raises ``InterruptedError``).
        on_wait: called once when the lock is busy (to say that the run waits).
        poll_s: polling interval.

    Raises:
        LockTimeoutError: the lock stayed busy for ``timeout_s``.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        deadline = time.monotonic() + max(timeout_s, 0.0)
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited and on_wait is not None:
                    on_wait()
                waited = True
                if cancelled is not None and cancelled.is_set():
                    raise InterruptedError("interrupted while waiting for the lock") from None
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(
                        f"another report run of this incident holds {path} and did not finish "
                        f"within {timeout_s:g} s",
                        expected="one run per incident at a time",
                        hint="wait for the other run, or raise --lock-timeout",
                    ) from None
                time.sleep(poll_s)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def scrub_tree(root: Path, secrets: Iterable[str]) -> list[Path]:
    """Mask every wire form of ``secrets`` (and its HTML-escaped form) in every file under
    ``root``.

    Returns the files that were rewritten. Binary files are scanned too (a secret's bytes are
    replaced by the mask's bytes).
    """
    found: set[str] = set()
    for secret in secrets:
        if secret:
            for form in secret_forms(secret):
                found.update((form, html.escape(form), html.escape(form, quote=False)))
    forms: list[bytes] = sorted((f.encode() for f in found), key=len, reverse=True)
    changed: list[Path] = []
    if not forms:
        return changed
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        new = data
        for pattern in forms:
            if pattern in new:
                new = new.replace(pattern, MASK.encode())
        if new != data:
            atomic_write_bytes(path, new)
            changed.append(path)
    return changed
