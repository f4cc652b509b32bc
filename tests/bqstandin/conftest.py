"""Fixtures for the BigQuery stand-in tests: the bundled sample as a table, engine and server."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from tests.netguard import local_network_only as local_network_only
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
