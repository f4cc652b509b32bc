"""run_replay: N attempts with bounded concurrency, retries, U users and health probes.

The orchestration around ``client.run_try``: reads the token from the environment at the edge,
runs every attempt (each with its retries) under a semaphore, probes health URLs before, during
and after, and hands the traces to ``frames.build_result``. Every attempt is accounted for: an
unexpected error in the orchestration of one attempt becomes a recorded ``client_error`` try.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import jwt

from uvs_analysis.errors import UsageError
from uvs_analysis.replay.classify import classify, should_retry
from uvs_analysis.replay.client import Resolver, default_resolver, run_try
from uvs_analysis.replay.contract import ContractParams
from uvs_analysis.replay.frames import ReplayResult, build_result
from uvs_analysis.replay.probes import Monotonic, probe
from uvs_analysis.replay.redact import Redactor
from uvs_analysis.replay.spec import HandshakeSpec, render
from uvs_analysis.replay.trace import AttemptTrace, Clock, ProbeRecord

__all__ = [
    "TokenProvider",
    "resolve_tokens",
    "run_replay",
    "run_replay_async",
    "run_sync",
    "utc_now",
]

#: user index -> token (e.g. a testbed that mints one token per user).
TokenProvider = Callable[[int], str]
_T = TypeVar("_T")


def utc_now() -> datetime:
    """The default wall clock (the edge: callers may pass their own)."""
    return datetime.now(UTC)


def resolve_tokens(
    spec: HandshakeSpec,
    users: int,
    *,
    tokens: TokenProvider | None = None,
    env: Mapping[str, str] | None = None,
) -> list[str | None]:
    """One token per user: from ``tokens`` if given, else the spec's environment variable.

    Raises:
        UsageError: the spec needs a token and none is available.
    """
    if tokens is not None:
        return [tokens(u) for u in range(users)]
    environ = os.environ if env is None else env
    token = environ.get(spec.token_env) if spec.token_env else None
    if spec.needs_token and not token:
        where = (f"the environment variable {spec.token_env} is not set or empty"
                 if spec.token_env else "no token environment variable was named")
        raise UsageError(
            f"the replay needs a token but {where}",
            expected="the token in an environment variable named by --token-env / token_env",
            hint="export UVS_TOKEN=<token> and pass --token-env UVS_TOKEN",
        )
    return [token] * users


def _subject(token: str | None) -> str | None:
    if not token:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    sub = claims.get("sub") or claims.get("user_id")
    return str(sub) if sub else None


def _synthetic(attempt: int, try_index: int, user: int, spec: HandshakeSpec, exc: BaseException,
               clock: Clock, redactor: Redactor) -> AttemptTrace:
    now = clock()
    return AttemptTrace(
        attempt=attempt, try_index=try_index, user=user,
        thread_id=f"{spec.thread_prefix}-u{user}-a{attempt}", url=redactor.url(spec.url),
        started_at=now, ended_at=now, failed_phase="http",
        exception_type=type(exc).__name__,
        exception_mro=tuple(c.__name__ for c in type(exc).__mro__),
        exception_message=redactor.text(str(exc))[:2000],
    )


async def run_replay_async(
    spec: HandshakeSpec,
    *,
    attempts: int = 1,
    concurrency: int = 1,
    users: int = 1,
    progress: Callable[[int], object] | None = None,
    clock: Clock = utc_now,
    monotonic: Monotonic = time.perf_counter,
    tokens: TokenProvider | None = None,
    env: Mapping[str, str] | None = None,
    resolver: Resolver = default_resolver,
    ssl_context: ssl.SSLContext | None = None,
    contract: ContractParams | None = None,
    probe_interval_s: float = 1.0,
    seed: int = 0,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> ReplayResult:
    """Replay ``spec`` ``attempts`` times and judge the result.

    Args:
        spec: what to replay.
        attempts: logical attempts (each may take several tries under ``spec.retry``).
        concurrency: attempts in flight at once.
        users: simulated users; attempt i belongs to user ``i % users``.
        progress: called with 1 after each attempt (e.g. ``tqdm.update``).
        clock: wall clock (UTC) recorded in traces and probes.
        monotonic: clock for durations.
        tokens: per-user token provider; default: the spec's ``token_env`` for everyone.
        env: environment to read ``token_env`` from (default ``os.environ``).
        resolver: DNS hook.
        ssl_context: TLS context for wss://.
        contract: contract and SLO parameters (default ``ContractParams()`` plus the spec's
            expected types).
        probe_interval_s: seconds between health probes while attempts run.
        seed: seeds the retry jitter.
        sleep: how to wait between retries.

    Raises:
        UsageError: bad counts, or a token is needed and missing.
    """
    for name, value in (("attempts", attempts), ("concurrency", concurrency), ("users", users)):
        if value < 1:
            raise UsageError(f"{name} is {value}", expected=f"{name} >= 1")
    user_tokens = resolve_tokens(spec, users, tokens=tokens, env=env)
    render(spec, token=user_tokens[0], attempt=0, user=0)  # fail early on a bad template
    redactor = Redactor(t for t in user_tokens if t)
    user_ids = {u: s for u, t in enumerate(user_tokens) if (s := _subject(t)) is not None}
    if contract is None:
        contract = ContractParams(expected_types=spec.expected_types)
    rnd = random.Random(seed)
    sem = asyncio.Semaphore(concurrency)

    async def probe_all(phase: str) -> list[ProbeRecord]:
        return list(await asyncio.gather(*(
            probe(u, phase, redactor=redactor, clock=clock, monotonic=monotonic)
            for u in spec.health_urls
        )))

    async def one(attempt: int) -> list[AttemptTrace]:
        user = attempt % users
        tries: list[AttemptTrace] = []
        async with sem:
            for try_index in range(spec.retry.max_retries + 1):
                try:
                    trace = await run_try(
                        spec, token=user_tokens[user], attempt=attempt, try_index=try_index,
                        user=user, user_id=user_ids.get(user), redactor=redactor, clock=clock,
                        monotonic=monotonic, resolver=resolver, ssl_context=ssl_context,
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # recorded: no attempt is lost
                    trace = _synthetic(attempt, try_index, user, spec, exc, clock, redactor)
                tries.append(trace)
                if try_index == spec.retry.max_retries or not should_retry(
                    classify(trace), spec.retry
                ):
                    break
                await sleep(spec.retry.delay(try_index, retry_after=trace.retry_after,
                                             rnd=rnd.random()))
        if progress is not None:
            progress(1)
        return tries

    probes = await probe_all("before")
    stop = asyncio.Event()

    async def prober() -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), probe_interval_s)
            except TimeoutError:
                probes.extend(await probe_all("during"))

    probe_task = asyncio.create_task(prober()) if spec.health_urls else None
    try:
        results = await asyncio.gather(*(one(i) for i in range(attempts)))
    finally:
        stop.set()
        if probe_task is not None:
            await probe_task
    probes.extend(await probe_all("after"))
    traces = [t for tries in results for t in tries]
    return build_result(traces, url=redactor.url(spec.url), attempts=attempts, users=users,
                        probes=probes, params=contract, user_ids=user_ids)


def run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion, also from inside a running loop (e.g. Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def run_replay(spec: HandshakeSpec, **kwargs: Any) -> ReplayResult:
    """Synchronous ``run_replay_async`` (same arguments); works inside Jupyter too."""
    return run_sync(run_replay_async(spec, **kwargs))

