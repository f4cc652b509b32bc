"""Fixtures for the testbed tests: testbed processes that are always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from uvs_analysis.testbed import TestbedHandle, start_testbed

from .wire import SCALE, Wire


@pytest.fixture
def testbed(tmp_path: Path) -> Iterator[Callable[..., Wire]]:
    """Factory: ``testbed(faults, **options)`` starts a testbed that is stopped after the test."""
    handles: list[TestbedHandle] = []

    def start(faults: tuple[str, ...] = ("healthy",), **options: Any) -> Wire:
        options.setdefault("time_scale", SCALE)
        options.setdefault("log_file", tmp_path / f"log-{len(handles)}.ndjson")
        handle = start_testbed(faults, **options)
        handles.append(handle)
        return Wire(handle)

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture(scope="module")
def healthy() -> Iterator[Wire]:
    """One healthy testbed shared by a module's read-only wire tests."""
    with start_testbed(("healthy",), time_scale=SCALE,
                       token_env="UVS_TESTBED_TOKEN_SHARED") as handle:
        yield Wire(handle)
