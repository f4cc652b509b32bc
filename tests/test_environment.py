"""The two descriptions of the environment (pyproject.toml, environment.yml) agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_runtime() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = [Requirement(text) for text in data["project"]["dependencies"]]
    return {req.name.lower(): str(req.specifier) for req in reqs}


def _environment_runtime() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    reqs = [Requirement(text) for text in pip_block if not text.startswith("-")]
    return {req.name.lower(): str(req.specifier) for req in reqs}


def test_environment_yml_lists_the_runtime_dependencies_of_pyproject() -> None:
    """environment.yml and pyproject.toml name the same runtime packages and versions."""
    assert _environment_runtime() == _pyproject_runtime()


def test_environment_yml_pins_python_311_and_installs_the_checkout() -> None:
    """conda users get Python 3.11, the lock file and the package from this checkout."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip_block = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert "-e .[dev]" in pip_block
    assert "-c constraints.txt" in pip_block


def test_constraints_pin_every_runtime_dependency() -> None:
    """The lock file pins each runtime dependency to one version, so installs resolve alike."""
    pinned = {
        line.split("==")[0].strip().lower().replace("_", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    missing = sorted(name for name in _pyproject_runtime() if name.replace("_", "-") not in pinned)
    assert missing == []
