"""Load soak (``make soak``): long checks that do not belong in ``make test``.

1. 1,000 concurrent replay sessions against the testbed, bounded in time: every attempt is
   accounted for, and memory and file descriptors return to their baseline afterwards.
2. A 1 GB log export through the whole report (``uvs-analysis report``), with peak memory.

Run: ``python -m benchmarks.soak [--sessions N] [--entries N]``. Results in
``outputs/bench/soak.json``; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from uvs_analysis.logs.sample import write_sample
from uvs_analysis.replay.runner import run_replay_async
from uvs_analysis.replay.spec import HandshakeSpec
from uvs_analysis.testbed.launcher import start_testbed

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "bench" / "soak.json"


def _fds() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def concurrent_sessions(n: int, time_limit_s: float) -> dict[str, Any]:
    """n sessions at once against the healthy testbed; every attempt accounted for."""
    with start_testbed(("healthy",), time_scale=0.05) as tb:
        # Handshake, connection_established, then hold the socket open for a moment: 1,000 of
        # them at once.
        spec = HandshakeSpec(url=tb.ws_url, subprotocols=("jwt.{token}",),
                             token_env=tb.token_env, hold_s=0.5, open_timeout_s=60.0,
                             run_timeout_s=60.0)
        gc.collect()
        fds, rss = _fds(), _rss_mb()
        began = time.perf_counter()
        result = asyncio.run(asyncio.wait_for(
            run_replay_async(spec, attempts=n, concurrency=n), timeout=time_limit_s))
        elapsed = time.perf_counter() - began
        gc.collect()
        time.sleep(1.0)
        fds_after, rss_after = _fds(), _rss_mb()
    accounted = len(result.verdicts)
    outcomes = result.summary()["outcomes"]
    # Memory: the allocator keeps some arenas, so "back to baseline" means within 100 MB.
    ok = accounted == n and fds_after <= fds + 2 and rss_after <= rss + 100
    return {"sessions": n, "accounted": accounted, "outcomes": outcomes,
            "elapsed_s": round(elapsed, 2), "fds_before": fds, "fds_after": fds_after,
            "rss_mb_before": round(rss, 1), "rss_mb_after": round(rss_after, 1),
            "verdict": "PASS" if ok else "FAIL"}


def big_export_report(entries: int) -> dict[str, Any]:
    """A generated export of ``entries`` entries (1M is about 1 GB) through the report."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        export = write_sample(tmp / "export.ndjson", entries=entries, seed=11)
        size = export.stat().st_size
        params = yaml.safe_load((ROOT / "params" / "demo.yaml").read_text())
        params.update(incident_id="soak-1gb", logs_source=str(export), matrix=False,
                      log_start="2025-09-10T00:00:00Z", log_end="2025-09-12T00:00:00Z")
        params_file = tmp / "soak.yaml"
        params_file.write_text(yaml.safe_dump(params))
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "uvs_analysis", "report", "-f", str(params_file), "--out",
             str(tmp / "reports")], capture_output=True, text=True, cwd=ROOT, check=False)
        elapsed = time.perf_counter() - began
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        summary: dict[str, Any] = {}
        if done.returncode == 0:
            run_dir = Path(done.stdout.strip().splitlines()[-1])
            summary = json.loads((run_dir / "summary.json").read_text())
    logs = summary.get("logs") or {}
    ok = done.returncode == 0 and logs.get("read") == entries
    return {"entries": entries, "file_mb": round(size / 2**20, 1), "exit_code": done.returncode,
            "elapsed_s": round(elapsed, 1), "peak_child_rss_mb": round(peak, 1),
            "logs_read": logs.get("read"), "logs_loaded": logs.get("entries"),
            "stderr_tail": done.stderr[-500:] if done.returncode else "",
            "verdict": "PASS" if ok else "FAIL"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--time-limit", type=float, default=300.0)
    args = parser.parse_args(argv)
    results = {"concurrent": concurrent_sessions(args.sessions, args.time_limit)}
    print(json.dumps(results["concurrent"], indent=1))
    results["big_export"] = big_export_report(args.entries)
    print(json.dumps(results["big_export"], indent=1))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    return 0 if all(r["verdict"] == "PASS" for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
