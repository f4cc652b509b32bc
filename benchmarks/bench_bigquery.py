"""Benchmark: the analysis pushed down to BigQuery (run by DuckDB) against the pandas path.

Both paths produce what a logs notebook shows: the summary, severity over time, WebSocket
sessions, close codes, error signatures and the revision timeline, for the whole window.

- ``pandas``: ``load_file`` of the generated NDJSON export, then the analysis functions over
  the normalized frame (the path for files and Cloud Logging pulls);
- ``query``: ``bigquery://`` through the real ``google-cloud-bigquery`` client against the
  local stand-in, whose DuckDB (memory limit ``--duckdb-memory``, spilling to disk) runs the
  transpiled SQL over an ``_AllLogs`` table built from the same export; only aggregates and
  the rows near failures cross the wire. Building the table is set-up (in BigQuery the logs
  are already there) and is reported apart.

Then the query path alone over the table grown ``--scale`` times (copies with shifted
timestamps and distinct insert ids). Target: its peak memory (RSS above the process's
baseline after imports, server and client together) stays within ``--budget-mb`` at both
sizes. Each run is its own process. Writes ``outputs/bench/bigquery.json``.

    python -m benchmarks.bench_bigquery [--entries N] [--scale K] [--budget-mb MB]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.memory import peak_reset, run_child, status_kb

__all__ = ["main"]

DEFAULT_OUT = Path("outputs/bench/bigquery.json")
PROJECT, DATASET = "bench-project", "cloud_run_logs"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns 0 unless a run failed."""
    parser = argparse.ArgumentParser(prog="bench_bigquery", description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries to generate")
    parser.add_argument("--scale", type=int, default=10, help="growth factor of the second run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-mb", type=float, default=2048.0,
                        help="peak memory budget of the query path (MB above baseline)")
    parser.add_argument("--duckdb-memory", default="1GB", help="the stand-in's memory_limit")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # internal: pandas|query
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        print(json.dumps(_measure(args.run, args.data, args.duckdb_memory)))
        return 0

    from uvs_analysis.bqstandin import build_alllogs, connect, replicate_alllogs
    from uvs_analysis.logs.sample import write_sample

    with tempfile.TemporaryDirectory(prefix="uvs-bench-bq-") as tmp:
        export = Path(tmp) / "export.ndjson"
        print(f"generating {args.entries:,} entries ...", flush=True)
        write_sample(export, entries=args.entries, seed=args.seed, fmt="ndjson", gzip=False)
        small = Path(tmp) / "small.duckdb"
        start = time.perf_counter()
        con = connect(small, memory_limit=args.duckdb_memory)
        build = build_alllogs(con, [export])
        con.close()
        build_s = time.perf_counter() - start
        print(f"_AllLogs: {build.rows:,} rows built in {build_s:.1f} s", flush=True)

        results: dict[str, Any] = {"build_s": round(build_s, 1)}
        print("running pandas ...", flush=True)
        results["pandas"] = _spawn("pandas", export, args.duckdb_memory)
        print("running query ...", flush=True)
        results["query"] = _spawn("query", small, args.duckdb_memory)
        results["same_summary"] = _same(results["pandas"], results["query"])
        export.unlink()

        large = Path(tmp) / "large.duckdb"
        shutil.copyfile(small, large)
        small.unlink()
        start = time.perf_counter()
        con = connect(large, memory_limit=args.duckdb_memory)
        rows = replicate_alllogs(con, "_AllLogs", args.scale)
        con.close()
        print(f"_AllLogs x{args.scale}: {rows:,} rows in {time.perf_counter() - start:.1f} s",
              flush=True)
        print(f"running query at {rows:,} rows ...", flush=True)
        results["query_scaled"] = _spawn("query", large, args.duckdb_memory)
        results["scaled_rows"] = rows

    report = {"benchmark": "bigquery", "entries": args.entries, "scale": args.scale,
              "budget_mb": args.budget_mb, "duckdb_memory": args.duckdb_memory,
              "cpus": os.cpu_count(), **results, **_ratios(results, args.budget_mb)}
    _print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    failed = any("error" in results[k] for k in ("pandas", "query", "query_scaled"))
    return 1 if failed else 0


def _spawn(run: str, data: Path, duckdb_memory: str) -> dict[str, Any]:
    return run_child([sys.executable, "-m", "benchmarks.bench_bigquery", "--run", run,
                      "--data", str(data), "--duckdb-memory", duckdb_memory])


# One run, in its own process


def _measure(run: str, data: Path | None, duckdb_memory: str) -> dict[str, Any]:
    if data is None:
        raise SystemExit("--run needs --data")
    work = _pandas_path(data) if run == "pandas" else _query_path(data, duckdb_memory)
    import gc

    gc.collect()
    base_kb = status_kb("VmRSS") or 0
    peak_reset()
    start = time.perf_counter()
    outcome = work()
    seconds = time.perf_counter() - start
    peak_kb = status_kb("VmHWM") or base_kb
    return {"seconds": round(seconds, 2), "baseline_rss_mb": round(base_kb / 1024, 1),
            "peak_rss_above_baseline_mb": round((peak_kb - base_kb) / 1024, 1), **outcome}


def _analysis(load: Any) -> dict[str, Any]:
    """What the logs notebook computes, the same calls for both paths."""
    from uvs_analysis.logs import sessions, signatures, timeline
    from uvs_analysis.logs.summary import summarize_logs

    summary = summarize_logs(load, request_timeout_s=300.0)
    timeline.severity_over_time(load)
    sessions.session_summary(sessions.websocket_sessions(load, request_timeout_s=300.0))
    timeline.close_code_counts(load)
    signatures.error_signatures(load)
    timeline.revision_timeline(load)
    timeline.deploys(load)
    timeline.instance_events(load)
    timeline.error_waves(load)
    keys = ("entries", "duplicates", "severity_counts", "log_kinds", "close_codes",
            "top_signatures", "ws_sessions", "window")
    return {"rows_in_memory": len(load.frame), "summary": {k: summary[k] for k in keys}}


def _pandas_path(data: Path) -> Callable[[], dict[str, Any]]:
    from uvs_analysis.logs.files import load_file

    def work() -> dict[str, Any]:
        load = load_file(data)
        return _analysis(load)

    return work


def _query_path(database: Path, duckdb_memory: str) -> Callable[[], dict[str, Any]]:
    from uvs_analysis.bqstandin import start_standin_from_database
    from uvs_analysis.logs.query import LogQuery
    from uvs_analysis.logs.sources import open_source

    first, last = _span(database)
    handle = start_standin_from_database(database, project=PROJECT, dataset=DATASET,
                                         memory_limit=duckdb_memory)

    def work() -> dict[str, Any]:
        try:
            source = open_source(f"bigquery://{PROJECT}/{DATASET}?endpoint={handle.endpoint}"
                                 "&max_bytes=0")
            load = source.load(LogQuery(project=PROJECT, start=first, end=last))
            outcome = _analysis(load)
            stats = handle.stats()
            outcome["wire"] = {"queries": stats.queries, "dry_runs": stats.dry_runs,
                               "rows_returned": stats.rows_returned}
            return outcome
        finally:
            handle.stop()

    return work


def _span(database: Path) -> tuple[str, str]:
    """The table's window (end exclusive), read before the run starts."""
    import duckdb

    con = duckdb.connect(str(database), read_only=True)
    try:
        row = con.execute("SELECT min(timestamp), max(timestamp) + INTERVAL 1 SECOND "
                          'FROM "_AllLogs"').fetchone()
    finally:
        con.close()
    assert row is not None
    return row[0].isoformat(), row[1].isoformat()


# Report


def _same(pandas: dict[str, Any], query: dict[str, Any]) -> bool | None:
    if "summary" not in pandas or "summary" not in query:
        return None
    return bool(pandas["summary"] == query["summary"])


def _ratios(results: dict[str, Any], budget_mb: float) -> dict[str, Any]:
    pandas, query, scaled = results["pandas"], results["query"], results["query_scaled"]
    if any("error" in r for r in (pandas, query, scaled)):
        return {"targets": []}
    peak, peak_scaled = query["peak_rss_above_baseline_mb"], scaled["peak_rss_above_baseline_mb"]
    targets = [
        {"name": "query path peak memory within budget (1x)", "value": peak,
         "target": f"<= {budget_mb:g} MB", "met": peak <= budget_mb},
        {"name": f"query path peak memory within budget ({results['scaled_rows']:,} rows)",
         "value": peak_scaled, "target": f"<= {budget_mb:g} MB", "met": peak_scaled <= budget_mb},
    ]
    return {
        "speedup_query_vs_pandas": round(pandas["seconds"] / query["seconds"], 2),
        "memory_pandas_over_query": round(
            pandas["peak_rss_above_baseline_mb"] / max(peak, 1.0), 2),
        "scaled_time_ratio": round(scaled["seconds"] / query["seconds"], 2),
        "scaled_memory_ratio": round(peak_scaled / max(peak, 1.0), 2),
        "targets": targets,
    }


def _print(report: dict[str, Any]) -> None:
    print(f"\n{'run':<14} {'seconds':>9} {'peak MB':>9} {'rows in memory':>15}")
    for name in ("pandas", "query", "query_scaled"):
        r = report[name]
        if "error" in r:
            print(f"{name:<14} ERROR {r['error']}")
            continue
        print(f"{name:<14} {r['seconds']:>9.2f} {r['peak_rss_above_baseline_mb']:>9.0f} "
              f"{r['rows_in_memory']:>15,}")
    if not report["targets"]:
        return
    print(f"\nquery path vs pandas: {report['speedup_query_vs_pandas']}x faster, "
          f"{report['memory_pandas_over_query']}x less memory; same summary: "
          f"{report['same_summary']}")
    print(f"at {report['scaled_rows']:,} rows: {report['scaled_time_ratio']}x the time, "
          f"{report['scaled_memory_ratio']}x the peak memory")
    for t in report["targets"]:
        print(f"  {'PASS' if t['met'] else 'MISS'}  {t['name']}: {t['value']} ({t['target']})")


if __name__ == "__main__":
    raise SystemExit(main())
