"""Versions recorded in every summary."""

from __future__ import annotations

import platform

from uvs_analysis import __version__
from uvs_analysis.report.versions import KEY_DEPENDENCIES, collect_versions


def test_versions_name_package_python_and_dependencies() -> None:
    """The package, Python and every key dependency have a version string."""
    versions = collect_versions()
    assert versions["uvs-analysis"] == __version__
    assert versions["python"] == platform.python_version()
    for name in ("pandas", "papermill", "websockets", "google-cloud-logging", "uvicorn",
                 "nbconvert"):
        assert name in KEY_DEPENDENCIES
        assert versions[name][0].isdigit(), (name, versions[name])
