"""Replay throughput with full tracing vs a bare websockets loop, and 1,000 concurrent attempts.

1. Full attempts per second: ``run_replay`` (tracing, redaction, classification, contract) vs a
   bare ``websockets.connect`` loop doing the same exchange (open, send start_agent, read until the
   report, close) against the same server in the same run. Target: ratio >= 0.8. The server is
   the testbed (healthy, fast time scale) when it is installed, else a local websockets server.
2. 1,000 concurrent attempts against a local server: every attempt accounted for, and the open
   file descriptors and asyncio tasks back to their baseline afterwards.

Writes ``outputs/bench/replay.json``. Usage: ``python -m benchmarks.bench_replay [--attempts N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import orjson
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from uvs_analysis.replay.runner import run_replay_async
from uvs_analysis.replay.spec import DEFAULT_MESSAGE, HandshakeSpec, MessageStep, RetryPolicy

OUT = Path("outputs/bench/replay.json")
TOKEN_ENV = "UVS_BENCH_TOKEN"
TARGET_RATIO = 0.8
AGENTS = ("triage", "data_helper", "reporting")
KINDS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")


async def _local_handler(ws: ServerConnection) -> None:
    await ws.send('{"type": "connection_established", "data": {"mode": "main"}}')
    try:
        await ws.recv()
        for agent in AGENTS:
            for kind in KINDS:
                event: dict[str, Any] = {"type": kind, "run_id": "r1", "user_id": "bench",
                                         "agent_name": agent, "data": {"status": kind}}
                if kind.startswith("tool"):
                    event["tool_name"] = f"{agent}_tool"
                if agent == "reporting" and kind == "agent_completed":
                    event["data"]["result"] = {"report": "ok"}
                await ws.send(json.dumps(event))
        await ws.wait_closed()
    except Exception:
        return


def _select(conn: ServerConnection, offered: list[str]) -> str | None:
    return offered[0] if offered else None


def _serve_forever(port_file: str) -> None:
    async def go() -> None:
        async with serve(_local_handler, "127.0.0.1", 0, select_subprotocol=cast(Any, _select),
                         ping_interval=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            Path(port_file).write_text(str(port))
            await asyncio.Future()

    asyncio.run(go())


@contextlib.contextmanager
def _local_server() -> Iterator[str]:
    """A local websockets server in a child process (its descriptors are not ours)."""
    import multiprocessing
    import tempfile

    port_file = tempfile.mktemp(prefix="uvs-bench-port-")
    proc = multiprocessing.get_context("spawn").Process(target=_serve_forever, args=(port_file,),
                                                        daemon=True)
    proc.start()
    try:
        deadline = time.monotonic() + 20
        while not (Path(port_file).exists() and Path(port_file).read_text()):
            if time.monotonic() > deadline:
                raise RuntimeError("the local benchmark server did not start")
            time.sleep(0.02)
        yield f"ws://127.0.0.1:{Path(port_file).read_text()}/ws"
    finally:
        proc.terminate()
        proc.join(5)
        Path(port_file).unlink(missing_ok=True)


@contextlib.contextmanager
def _target() -> Iterator[tuple[str, str, str]]:
    """(kind, ws_url, token env) of the server both loops talk to."""
    try:
        testbed: Any = importlib.import_module("uvs_analysis.testbed")
    except ImportError:
        testbed = None
    if testbed is not None:
        with testbed.start_testbed(["healthy"], time_scale=0.01) as tb:
            yield "testbed", tb.ws_url, tb.token_env
    else:
        os.environ[TOKEN_ENV] = "bench-token-not-secret"
        with _local_server() as url:
            yield "local", url, TOKEN_ENV


def _spec(url: str, token_env: str) -> HandshakeSpec:
    return HandshakeSpec(url=url, subprotocols=("jwt.{token}",), token_env=token_env,
                         messages=(MessageStep(DEFAULT_MESSAGE),), retry=RetryPolicy(0),
                         linger_s=0.0, ping_interval_s=None, run_timeout_s=30,
                         open_timeout_s=30, close_timeout_s=5)


async def _bare(url: str, token: str, attempts: int, concurrency: int) -> int:
    sem = asyncio.Semaphore(concurrency)
    message = DEFAULT_MESSAGE.replace("{thread_id}", "bench-thread")

    async def one() -> bool:
        async with sem:
            try:
                async with connect(url, subprotocols=[f"jwt.{token}"],  # type: ignore[list-item]
                                   ping_interval=None, proxy=None, open_timeout=30) as ws:
                    await ws.send(message)
                    async for raw in ws:
                        event = orjson.loads(raw)
                        if (event.get("type") == "agent_completed"
                                and event.get("agent_name") == "reporting"):
                            return True
            except Exception:
                return False
            return False

    results = await asyncio.gather(*(one() for _ in range(attempts)))
    return sum(results)


def _throughput(url: str, token_env: str, attempts: int, concurrency: int) -> dict[str, Any]:
    token = os.environ[token_env]
    spec = _spec(url, token_env)
    asyncio.run(_bare(url, token, 5, 1))  # warm-up both paths
    asyncio.run(run_replay_async(spec, attempts=5, concurrency=1))
    rates: dict[str, list[float]] = {"bare": [], "traced": []}
    completed = {"bare": 0, "traced": 0}
    for _ in range(3):  # interleave rounds so drift hits both equally
        t0 = time.perf_counter()
        completed["bare"] += asyncio.run(_bare(url, token, attempts, concurrency))
        rates["bare"].append(attempts / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        result = asyncio.run(run_replay_async(spec, attempts=attempts, concurrency=concurrency))
        rates["traced"].append(attempts / (time.perf_counter() - t0))
        completed["traced"] += result.summary()["outcomes"].get("completed", 0)
    bare, traced = max(rates["bare"]), max(rates["traced"])
    return {
        "attempts_per_round": attempts,
        "concurrency": concurrency,
        "bare_per_s": round(bare, 1),
        "traced_per_s": round(traced, 1),
        "ratio": round(traced / bare, 3),
        "completed": completed,
    }


def _fds() -> int:
    fd_dir = Path("/proc/self/fd")
    return len(list(fd_dir.iterdir())) if fd_dir.exists() else -1


async def _concurrent(url: str, n: int) -> dict[str, Any]:
    os.environ.setdefault(TOKEN_ENV, "bench-token-not-secret")
    spec = _spec(url, TOKEN_ENV).with_changes(token_env=TOKEN_ENV)
    gc.collect()
    fds_before, tasks_before = _fds(), len(asyncio.all_tasks())
    t0 = time.perf_counter()
    result = await run_replay_async(spec, attempts=n, concurrency=n)
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(0.2)
    gc.collect()
    s = result.summary()
    return {
        "attempts": n,
        "accounted": len(result.verdicts),
        "tries": len(result.traces),
        "outcomes": s["outcomes"],
        "seconds": round(elapsed, 2),
        "fds_before": fds_before,
        "fds_after": _fds(),
        "tasks_before": tasks_before,
        "tasks_after": len(asyncio.all_tasks()),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_replay")
    parser.add_argument("--attempts", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--concurrent", type=int, default=1000)
    args = parser.parse_args(argv)
    with _target() as (kind, url, token_env):
        throughput = _throughput(url, token_env, args.attempts, args.concurrency)
    with _local_server() as url:
        load = asyncio.run(_concurrent(url, args.concurrent))
    leak_free = (load["fds_after"] <= load["fds_before"] + 2
                 and load["tasks_after"] <= load["tasks_before"])
    report = {
        "target": kind,
        "throughput": throughput,
        "throughput_target_ratio": TARGET_RATIO,
        "throughput_pass": throughput["ratio"] >= TARGET_RATIO,
        "concurrent": load,
        "concurrent_pass": load["accounted"] == args.concurrent and leak_free,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    t = throughput
    print(f"replay vs bare websockets ({kind}): {t['traced_per_s']}/s vs {t['bare_per_s']}/s, "
          f"ratio {t['ratio']} (target >= {TARGET_RATIO}): "
          f"{'PASS' if report['throughput_pass'] else 'MISS'}")
    print(f"{args.concurrent} concurrent attempts: {load['accounted']} accounted, "
          f"fds {load['fds_before']} -> {load['fds_after']}, tasks {load['tasks_before']} -> "
          f"{load['tasks_after']}: {'PASS' if report['concurrent_pass'] else 'MISS'}")
    print(f"wrote {OUT}")
    return 0 if report["throughput_pass"] and report["concurrent_pass"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
