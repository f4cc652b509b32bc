"""Versions recorded with every report run (package, Python, key dependencies)."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Final

from uvs_analysis import __version__

__all__ = ["KEY_DEPENDENCIES", "collect_versions"]

#: Distributions whose versions change what a report shows.
KEY_DEPENDENCIES: Final = (
    "pandas", "pyarrow", "papermill", "nbconvert", "nbclient", "ipykernel", "websockets",
    "google-cloud-logging", "uvicorn", "fastapi", "matplotlib",
)


def collect_versions() -> dict[str, str]:
    """``uvs-analysis``, ``python`` and each key dependency (``not installed`` when absent)."""
    versions = {"uvs-analysis": __version__, "python": platform.python_version()}
    for name in KEY_DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
