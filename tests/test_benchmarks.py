"""The benchmarks still run end to end (tiny sizes: the results are checked, not the numbers)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import bench_bigquery


def test_bigquery_benchmark_gives_the_pandas_summary_at_both_sizes(tmp_path: Path) -> None:
    """The query path's summary equals the pandas path's; both runs report peak memory."""
    out = tmp_path / "bigquery.json"
    code = bench_bigquery.main(["--entries", "3000", "--scale", "2", "--out", str(out)])
    report = json.loads(out.read_text())
    assert code == 0, report
    assert report["same_summary"] is True
    assert report["scaled_rows"] == 2 * report["query"]["summary"]["entries"] \
        + 2 * report["query"]["summary"]["duplicates"]
    for run in ("pandas", "query", "query_scaled"):
        assert report[run]["peak_rss_above_baseline_mb"] >= 0
    assert report["query_scaled"]["summary"]["entries"] == 2 * report["query"]["summary"]["entries"]
