"""Pull throughput through the emulator with the read quota on, as a fraction of the bound.

The bound is pages of 1,000 entries times the allowed requests per minute. The pull (every
entry received, paced, through the real client) is measured against it; the same pull
normalized into the DataFrame is reported beside it. The quota is scaled up (300 requests per
minute by default instead of 60) so the run takes seconds while the interval between pages
stays well above the time one page takes to serve and normalize, as at the real quota; the
client paces itself with its default policy scaled by the same factor. Target: at least 95%.

Run alone: ``python -m benchmarks.bench_emulator_pull [--entries N] [--quota Q]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

from uvs_analysis.logs.cloud import CloudLoggingSource, PullPolicy
from uvs_analysis.logs.query import LogQuery, parse_time, rfc3339
from uvs_analysis.logs.sample import write_sample

REAL_QUOTA = 60.0
TARGET = 0.95
OUT = Path("outputs/bench/emulator_pull.json")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_emulator_pull", description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--quota", type=float, default=300.0, help="requests per minute")
    args = parser.parse_args(argv)

    scale = args.quota / REAL_QUOTA
    default = PullPolicy()
    policy = PullPolicy(requests_per_minute=default.requests_per_minute * scale)
    with tempfile.TemporaryDirectory() as tmp:
        export = write_sample(Path(tmp) / "export.ndjson", entries=args.entries, seed=7)
        first, last = _bounds(export)
        query = LogQuery(project="netra-staging", start=first, end=_after(last))
        # The emulator runs as its own process, as the real API is not in the client's.
        server = subprocess.Popen(
            [sys.executable, "-m", "uvs_analysis", "emulator", "--logs", str(export),
             "--quota-per-minute", str(int(args.quota))],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            assert server.stdout is not None
            endpoint = server.stdout.readline().strip()
            source = CloudLoggingSource("netra-staging", endpoint=endpoint, policy=policy)
            # Warm-up: the emulator evaluates a new filter over the whole store on its first
            # request (seconds at this size); one page primes it, then the window clears.
            next(iter(source.entries(query)))
            time.sleep(60.0 / args.quota)
            began = time.perf_counter()
            pulled = sum(1 for _ in source.entries(query))
            elapsed = time.perf_counter() - began
            began = time.perf_counter()
            load = CloudLoggingSource("netra-staging", endpoint=endpoint, policy=policy).load(
                query
            )
            load_elapsed = time.perf_counter() - began
            with urllib.request.urlopen(f"{endpoint}/emulator/stats") as answer:
                stats = json.load(answer)
        finally:
            server.terminate()
            server.wait(timeout=10)
    bound_per_s = 1000.0 * args.quota / 60.0
    achieved_per_s = pulled / elapsed
    fraction = achieved_per_s / bound_per_s
    result = {
        "entries": pulled,
        "pages": load.meta.get("pages"),
        "pull_elapsed_s": round(elapsed, 3),
        "pull_and_normalize_elapsed_s": round(load_elapsed, 3),
        "pull_and_normalize_fraction_of_bound": round(load.read / load_elapsed / bound_per_s, 4),
        "quota_requests_per_minute": args.quota,
        "client_requests_per_minute": policy.requests_per_minute,
        "achieved_entries_per_s": round(achieved_per_s, 1),
        "bound_entries_per_s": round(bound_per_s, 1),
        "fraction_of_bound": round(fraction, 4),
        "throttled_requests": stats["outcomes"].get("quota", 0),
        "target": TARGET,
        "verdict": "PASS" if fraction >= TARGET else "MISS",
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(f"pulled {pulled:,} entries in {result['pages']} pages, {elapsed:.2f} s "
          f"({load_elapsed:.2f} s with normalization into the DataFrame: "
          f"{result['pull_and_normalize_fraction_of_bound']:.1%} of the bound)")
    print(f"quota {args.quota:g}/min -> bound {bound_per_s:,.0f} entries/s; "
          f"achieved {achieved_per_s:,.0f} entries/s = {fraction:.1%} of the bound "
          f"(target >= {TARGET:.0%}: {result['verdict']}); "
          f"throttled: {result['throttled_requests']}")
    print(f"written to {OUT}")
    return 0


def _bounds(export: Path) -> tuple[str, str]:
    with export.open(encoding="utf-8") as lines:
        first = json.loads(next(lines))["timestamp"]
        last = first
        for line in lines:
            last = max(last, json.loads(line)["timestamp"])
    return first, last


def _after(timestamp: str) -> str:
    return rfc3339(parse_time(timestamp) + timedelta(seconds=1))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
