"""The ``uvs-analysis testbed`` command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from uvs_analysis.cli import main
from uvs_analysis.testbed.faults import FAULTS


def test_list_faults_prints_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    """--list-faults prints every profile with its description and exits 0."""
    assert main(["testbed", "--list-faults"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(FAULTS)


def test_unknown_fault_exits_2_with_the_list(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown profile is a usage error (exit 2) that lists the valid names."""
    assert main(["testbed", "--fault", "healthy,bogus"]) == 2
    err = capsys.readouterr().err
    assert "bogus" in err and "reserved-close-code" in err


def test_missing_secret_exits_2(monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """Without the JWT secret in the environment the testbed refuses to start."""
    monkeypatch.delenv("UVS_TESTBED_JWT_SECRET", raising=False)
    assert main(["testbed", "--time-scale", "0.05"]) == 2
    assert "UVS_TESTBED_JWT_SECRET" in capsys.readouterr().err


def test_bad_option_values_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A non-positive time scale is a usage error."""
    assert main(["testbed", "--time-scale", "0"]) == 2
    assert "--time-scale" in capsys.readouterr().err


def test_mint_token_signs_with_the_secret_from_the_environment(tmp_path: Path) -> None:
    """--mint-token prints a JWT the testbed accepts; without the secret it exits 2 clearly."""
    import jwt as pyjwt

    env = {k: v for k, v in os.environ.items() if k != "UVS_TESTBED_JWT_SECRET"}
    missing = subprocess.run([sys.executable, "-m", "uvs_analysis", "testbed", "--mint-token",
                              "user-1"], capture_output=True, text=True, env=env, check=False)
    assert missing.returncode == 2 and "UVS_TESTBED_JWT_SECRET" in missing.stderr
    env["UVS_TESTBED_JWT_SECRET"] = "s" * 32
    done = subprocess.run([sys.executable, "-m", "uvs_analysis", "testbed", "--mint-token",
                           "user-1"], capture_output=True, text=True, env=env, check=True)
    claims = pyjwt.decode(done.stdout.strip(), "s" * 32, algorithms=["HS256"])
    assert claims["sub"] == "user-1"
