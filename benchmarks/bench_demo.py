"""``make demo`` wall time and its breakdown, against a bare papermill run in the same session.

The demo (``uvs-analysis report -f params/demo.yaml``) runs as its own process, as a user runs
it. The breakdown comes from the run itself (the investigation times its phases) and from
measuring the two fixed costs around it: a kernel start, and rendering the executed notebook
to HTML. The baseline is papermill executing a one-cell notebook with the same kernel (the
floor any papermill report pays). Target: the demo under 60 s on a 2-core machine.

Run alone: ``python -m benchmarks.bench_demo``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill as pm
from jupyter_client.manager import start_new_kernel

from uvs_analysis.report.render import render_html

ROOT = Path(__file__).resolve().parents[1]
KERNEL = "uvs-analysis"
TARGET_S = 60.0
OUT = ROOT / "outputs" / "bench" / "demo.json"


def _kernel_start_s() -> float:
    began = time.perf_counter()
    manager, client = start_new_kernel(kernel_name=KERNEL)
    elapsed = time.perf_counter() - began
    client.stop_channels()
    manager.shutdown_kernel(now=True)
    return elapsed


def _bare_papermill_s(tmp: Path) -> float:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": KERNEL, "language": "python"}
    src = tmp / "bare.ipynb"
    nbformat.write(nb, src)
    began = time.perf_counter()
    pm.execute_notebook(str(src), str(tmp / "bare-out.ipynb"), kernel_name=KERNEL,
                        progress_bar=False)
    return time.perf_counter() - began


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        baseline = _bare_papermill_s(tmp)
        kernel = _kernel_start_s()
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "uvs_analysis", "report", "-f",
             str(ROOT / "params" / "demo.yaml"), "--out", str(tmp / "reports")],
            capture_output=True, text=True, cwd=ROOT, check=False)
        wall = time.perf_counter() - began
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            return 1
        run_dir = Path(done.stdout.strip().splitlines()[-1])
        summary = json.loads((run_dir / "summary.json").read_text())
        began = time.perf_counter()
        render_html(nbformat.read(run_dir / "report.ipynb", as_version=4))
        rendering = time.perf_counter() - began
    phases = dict(summary.get("timings_s", {}))
    breakdown = {"kernel_start": round(kernel, 3), **phases, "rendering": round(rendering, 3)}
    accounted = sum(breakdown.values())
    breakdown["other (process start, papermill, notebook display, writes)"] = round(
        max(wall - accounted, 0.0), 3)
    result = {
        "demo_wall_s": round(wall, 3),
        "breakdown_s": breakdown,
        "baseline_bare_papermill_s": round(baseline, 3),
        "demo_over_baseline": round(wall / baseline, 2),
        "target_s": TARGET_S,
        "verdict": "PASS" if wall < TARGET_S else "MISS",
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(f"make demo: {wall:.1f} s (target < {TARGET_S:.0f} s: {result['verdict']}); "
          f"a bare papermill run: {baseline:.1f} s ({result['demo_over_baseline']}x)")
    for phase, seconds in breakdown.items():
        print(f"  {phase:<60} {seconds:7.2f} s")
    print(f"written to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
