"""LogCache: a pull round-trips through Parquet with its accounting and provenance."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from uvs_analysis.logs.cache import LogCache
from uvs_analysis.logs.query import LogQuery
from uvs_analysis.logs.schema import COLUMNS, BadRecord, LogLoad, empty_frame

SOURCE = "cloudlogging://netra-staging"
QUERY = LogQuery(project="netra-staging", start="2025-09-10T21:00:00Z", end="2025-09-10T22:00:00Z")


def _frame() -> pd.DataFrame:
    row = {name: pd.NA for name in COLUMNS}
    row.update(
        timestamp=pd.Timestamp("2025-09-10T21:30:00.123456789Z"),
        severity="ERROR",
        severity_inferred=False,
        log_kind="stdout",
        message="WebSocket closed with code 1011",
        ws_close_code=1011,
        http_latency_s=1.5,
    )
    frame = pd.concat([empty_frame(), pd.DataFrame([row])], ignore_index=True)
    return frame.astype({name: dtype for name, (dtype, _) in COLUMNS.items()})


def _load() -> LogLoad:
    return LogLoad(
        frame=_frame(),
        source=SOURCE,
        read=4,
        bad_records=(BadRecord("page 1", 3, "no timestamp"),),
        bad_total=1,
        duplicates=1,
        filtered_out=1,
        meta={"pages": 2, "filter": QUERY.to_filter()},
    )


def test_a_stored_pull_reads_back_identically(tmp_path: Path) -> None:
    """Rows, dtypes, accounting and bad records survive the round trip."""
    cache = LogCache(tmp_path)
    cache.put(SOURCE, QUERY, _load(), pulled_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    hit = cache.get(SOURCE, QUERY)
    assert hit is not None
    pd.testing.assert_frame_equal(hit.frame, _frame())
    assert (hit.read, hit.bad_total, hit.duplicates, hit.filtered_out) == (4, 1, 1, 1)
    assert hit.bad_records == (BadRecord("page 1", 3, "no timestamp"),)
    assert hit.meta["cache"]["hit"] is True
    assert hit.meta["cache"]["pulled_at"] == "2026-01-02T03:04:05.000000Z"


def test_the_snapshot_records_when_and_how_it_was_pulled(tmp_path: Path) -> None:
    """The sidecar JSON names the source, the query, the filter and the pull time."""
    cache = LogCache(tmp_path)
    cache.put(SOURCE, QUERY, _load(), pulled_at=datetime(2026, 1, 2, tzinfo=UTC))
    entry = cache.entry(SOURCE, QUERY)
    assert entry is not None
    assert entry.meta["source"] == SOURCE
    assert entry.meta["filter"] == QUERY.to_filter()
    assert entry.meta["query"]["start"] == "2025-09-10T21:00:00.000000Z"
    assert entry.meta["pull"]["pages"] == 2


def test_another_query_misses(tmp_path: Path) -> None:
    """A different window is another key: no stale snapshot is served."""
    cache = LogCache(tmp_path)
    cache.put(SOURCE, QUERY, _load(), pulled_at=datetime(2026, 1, 2, tzinfo=UTC))
    other = LogQuery(project="netra-staging", start="2025-09-10T21:00:00Z",
                     end="2025-09-10T23:00:00Z")
    assert cache.get(SOURCE, other) is None
    assert cache.get("cloudlogging://other", QUERY) is None


def test_cache_files_are_readable_by_the_user_only(tmp_path: Path) -> None:
    """Snapshots may hold log text; they are created with mode 0600."""
    cache = LogCache(tmp_path)
    data = cache.put(SOURCE, QUERY, _load(), pulled_at=datetime(2026, 1, 2, tzinfo=UTC))
    entry = cache.entry(SOURCE, QUERY)
    assert entry is not None
    for path in (data, entry.meta_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
