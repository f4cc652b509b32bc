"""The worker's atomic papermill I/O handler."""

from __future__ import annotations

import stat
from pathlib import Path

from uvs_analysis.report.worker import ATOMIC_SCHEME, AtomicFileHandler


def test_atomic_handler_roundtrip(tmp_path: Path) -> None:
    """Writes through the scheme land in the file (0600), with no temporary file left."""
    handler = AtomicFileHandler()
    path = ATOMIC_SCHEME + str(tmp_path / "nb.ipynb")
    handler.write('{"cells": []}', path)
    handler.write('{"cells": [1]}', path)
    assert handler.read(path) == '{"cells": [1]}'
    assert stat.S_IMODE((tmp_path / "nb.ipynb").stat().st_mode) == 0o600
    assert handler.listdir(ATOMIC_SCHEME + str(tmp_path)) == [path]
    assert handler.pretty_path(path) == str(tmp_path / "nb.ipynb")
