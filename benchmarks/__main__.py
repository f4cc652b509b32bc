"""``python -m benchmarks [NAME ...]``: run the benchmarks (all by default) and print ratios.

Each benchmark module exposes ``main(argv) -> int`` and writes its JSON result under
``outputs/bench/``. Targets are reported as PASS or MISS; they are never timed assertions.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "logs_load": "benchmarks.bench_logs_load",
    "emulator_pull": "benchmarks.bench_emulator_pull",
    "replay": "benchmarks.bench_replay",
    "demo": "benchmarks.bench_demo",
    "bigquery": "benchmarks.bench_bigquery",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}", file=sys.stderr)
        return 2
    worst = 0
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        worst = max(worst, importlib.import_module(BENCHMARKS[name]).main([]))
    return worst


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
