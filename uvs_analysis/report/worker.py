"""The papermill execution of one report, in its own process (``python -m``).

The runner starts this module as a child in its own session, sends a JSON spec on stdin and
reads its log on stdout. Running papermill in a child lets the runner stop a run (SIGTERM) or
survive a dying kernel without leaving a kernel behind: the kernel exits when its parent does.
Every save of the output notebook is atomic (a ``uvs-atomic:`` papermill I/O handler), so a
killed run leaves the last complete save, never half a file. The outcome is written as JSON to
``spec["result"]``.

Spec keys: ``input``, ``output``, ``parameters``, ``kernel_name``, ``cwd``, ``result``,
``start_timeout`` and ``execution_timeout`` (seconds or null).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

__all__ = ["ATOMIC_SCHEME", "AtomicFileHandler", "main"]

ATOMIC_SCHEME: Final = "uvs-atomic:"


class AtomicFileHandler:
    """papermill I/O handler for ``uvs-atomic:/path``: local files written atomically (0600)."""

    @staticmethod
    def _path(path: str) -> Path:
        return Path(path[len(ATOMIC_SCHEME):] if path.startswith(ATOMIC_SCHEME) else path)

    def read(self, path: str) -> str:
        return self._path(path).read_text(encoding="utf-8")

    def listdir(self, path: str) -> list[str]:
        return [ATOMIC_SCHEME + str(p) for p in self._path(path).iterdir()]

    def write(self, buf: str, path: str) -> None:
        target = self._path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(buf)
            Path(tmp).chmod(0o600)
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def pretty_path(self, path: str) -> str:
        return str(self._path(path))


def _execute(spec: dict[str, Any]) -> dict[str, Any]:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    from papermill.iorw import papermill_io

    papermill_io.register(ATOMIC_SCHEME, AtomicFileHandler())
    try:
        pm.execute_notebook(
            spec["input"],
            ATOMIC_SCHEME + spec["output"],
            parameters=spec["parameters"],
            kernel_name=spec["kernel_name"],
            cwd=spec["cwd"],
            log_output=True,
            progress_bar=False,
            start_timeout=spec.get("start_timeout") or 60,
            execution_timeout=spec.get("execution_timeout"),
        )
    except PapermillExecutionError as exc:
        return {"status": "failed", "error": {
            "kind": "cell_error", "cell_index": exc.cell_index,
            "execution_count": exc.exec_count, "ename": exc.ename, "evalue": exc.evalue}}
    except Exception as exc:  # a dead kernel, a missing kernel, a timeout: all end the run
        return {"status": "failed", "error": {
            "kind": type(exc).__name__, "ename": type(exc).__name__, "evalue": str(exc)}}
    return {"status": "complete"}


def main() -> int:
    """Read the spec from stdin, run the notebook, write the result file."""
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = json.loads(sys.stdin.read())
    result = _execute(spec)
    AtomicFileHandler().write(json.dumps(result), spec["result"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
