"""Fixtures for the BigQuery stand-in tests: the bundled sample as a table, engine and server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from uvs_analysis.bqstandin import (
    BigQueryEngine,
    StandinHandle,
    build_alllogs,
    connect,
    start_standin,
)
from uvs_analysis.bqstandin.alllogs import AllLogsBuild
from uvs_analysis.logs.files import load_file
from uvs_analysis.logs.sample import BUNDLED_SAMPLE
from uvs_analysis.logs.schema import LogLoad

PROJECT = "demo-project"
DATASET = "cloud_run_logs"
TABLE = f"`{PROJECT}.{DATASET}._AllLogs`"


@pytest.fixture(scope="session")
def sample_load() -> LogLoad:
    """The bundled sample read by the file loader (the reference for row counts and fields)."""
    return load_file(BUNDLED_SAMPLE)


@pytest.fixture(scope="session")
def sample_db() -> Iterator[tuple[duckdb.DuckDBPyConnection, AllLogsBuild]]:
    """An in-memory DuckDB with ``_AllLogs`` built from the bundled sample."""
    con = connect()
    build = build_alllogs(con, [BUNDLED_SAMPLE])
    yield con, build
    con.close()


@pytest.fixture(scope="session")
def engine(sample_db: tuple[duckdb.DuckDBPyConnection, AllLogsBuild]) -> BigQueryEngine:
    """An engine over the sample table as demo-project.cloud_run_logs._AllLogs."""
    return BigQueryEngine(sample_db[0], project=PROJECT, dataset=DATASET)


@pytest.fixture(scope="session")
def standin() -> Iterator[StandinHandle]:
    """A running stand-in serving the bundled sample."""
    with start_standin([BUNDLED_SAMPLE], project=PROJECT, dataset=DATASET) as handle:
        yield handle


@pytest.fixture(autouse=True)
def local_network_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse name lookups of anything but the loopback, and fail the test if one was tried."""
    blocked: list[str] = []
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in ("127.0.0.1", "localhost", "::1"):
            blocked.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"tests stay on 127.0.0.1, not {name}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield blocked
    assert blocked == [], f"a test tried to reach {sorted(set(blocked))}"
