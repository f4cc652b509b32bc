"""The Cloud Logging source: the real google-cloud-logging client against the local emulator.

No mock of the client: every request goes over HTTP to the emulator, which evaluates the
generated filter, pages, enforces the read quota and injects faults.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from uvs_analysis.emulator.faults import Fault, FaultConfig
from uvs_analysis.emulator.server import EmulatorHandle, start_emulator
from uvs_analysis.errors import LogPermissionError, LogSourceError
from uvs_analysis.logs.cloud import CloudLoggingSource, PullPolicy, RateLimiter
from uvs_analysis.logs.query import LogQuery

PROJECT = "netra-staging"
START = datetime(2025, 9, 10, 21, 0, tzinfo=UTC)
QUERY = LogQuery(project=PROJECT, service="netra-backend-staging", start=START,
                 end=START + timedelta(hours=1))


def _entries(
    n: int, *, service: str = "netra-backend-staging", step_s: float = 1.0
) -> list[dict[str, object]]:
    """n stdout entries step_s apart."""
    return [
        {
            "insertId": f"{service}-{i:06d}",
            "logName": f"projects/{PROJECT}/logs/run.googleapis.com%2Fstdout",
            "resource": {"type": "cloud_run_revision",
                         "labels": {"service_name": service, "project_id": PROJECT,
                                    "revision_name": f"{service}-00001-abc",
                                    "location": "us-central1"}},
            "severity": "INFO",
            "jsonPayload": {"message": f"event {i}"},
            "timestamp": (START + timedelta(seconds=i * step_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        for i in range(n)
    ]


class FakeTime:
    """A shared monotonic clock whose sleep advances time instantly (thread-safe)."""

    def __init__(self) -> None:
        self._now = 1000.0
        self._lock = threading.Lock()
        self.slept = 0.0

    def clock(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += max(seconds, 0.0)
            self.slept += max(seconds, 0.0)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def emulator(fake_time: FakeTime) -> Iterator[EmulatorHandle]:
    entries = _entries(2500) + _entries(300, service="other-service")
    with start_emulator(entries, quota_per_minute=None, clock=fake_time.clock) as handle:
        yield handle


def _source(handle: EmulatorHandle, fake_time: FakeTime, **policy: object) -> CloudLoggingSource:
    return CloudLoggingSource(
        PROJECT,
        endpoint=handle.endpoint,
        policy=PullPolicy(**{"backoff_initial_s": 1.0, **policy}),  # type: ignore[arg-type]
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )


def test_pull_pages_through_every_matching_entry(
    emulator: EmulatorHandle, fake_time: FakeTime
) -> None:
    """2,500 matching entries arrive in 3 pages of at most 1,000, in order, filtered by service."""
    load = _source(emulator, fake_time).load(QUERY)
    assert len(load.frame) == 2500
    assert load.frame["service"].unique().tolist() == ["netra-backend-staging"]
    assert load.frame["timestamp"].is_monotonic_increasing
    assert load.meta["pages"] == 3
    sent = [r.filter for r in emulator.stats.requests]
    assert all("timestamp>=" in f and "timestamp<" in f for f in sent)


def test_a_429_is_retried_on_the_same_page_and_no_page_is_served_twice(
    emulator: EmulatorHandle, fake_time: FakeTime
) -> None:
    """The second request meets a 429; the pull backs off, asks for that page again, completes."""
    emulator.set_faults(FaultConfig(script={2: Fault.RATE_LIMIT, 3: Fault.UNAVAILABLE}))
    source = _source(emulator, fake_time)
    load = source.load(QUERY)
    stats = emulator.stats
    assert len(load.frame) == 2500
    assert stats.duplicate_pages == ()
    assert stats.outcomes.get("429") == 1 and stats.outcomes.get("503") == 1
    assert load.meta["retries"] == 2
    assert fake_time.slept >= 1.0, "backed off before retrying"


def test_a_broken_connection_is_retried(emulator: EmulatorHandle, fake_time: FakeTime) -> None:
    """A connection cut mid-response is retried like a 503; nothing is lost or doubled."""
    emulator.set_faults(FaultConfig(script={2: Fault.DISCONNECT}))
    load = _source(emulator, fake_time).load(QUERY)
    assert len(load.frame) == 2500
    assert load.frame["insert_id"].is_unique
    assert emulator.stats.duplicate_pages == ()


def test_an_interrupted_pull_resumes_from_the_last_page_token(
    emulator: EmulatorHandle, fake_time: FakeTime, tmp_path: Path
) -> None:
    """Retries exhausted on page 3: a new run resumes there; pages 1-2 are not fetched again."""
    emulator.set_faults(FaultConfig(script={3: Fault.UNAVAILABLE, 4: Fault.UNAVAILABLE}))
    first = _source(emulator, fake_time, max_retries=1)
    first.checkpoint_dir = tmp_path
    with pytest.raises(LogSourceError, match="resumes from the last page token"):
        first.load(QUERY)
    assert len(emulator.stats.served_pages) == 2
    emulator.set_faults(FaultConfig())
    second = _source(emulator, fake_time)
    second.checkpoint_dir = tmp_path
    load = second.load(QUERY)
    stats = emulator.stats
    assert len(load.frame) == 2500 and load.frame["insert_id"].is_unique
    assert stats.duplicate_pages == ()
    assert len(stats.served_pages) == 3
    assert load.meta["resumed_pages"] == 2
    assert list(tmp_path.iterdir()) == [], "a finished pull leaves no checkpoint behind"


def test_pacing_stays_under_the_read_quota(fake_time: FakeTime) -> None:
    """At the default pace against a 60/min quota, 70 pages meet no 429 and take about 71 s."""
    entries = _entries(7000, step_s=0.5)
    with start_emulator(entries, quota_per_minute=60, clock=fake_time.clock) as handle:
        load = _source(handle, fake_time, page_size=100).load(QUERY)
        assert len(load.frame) == 7000
        assert "quota" not in handle.stats.outcomes
    interval = 60 / PullPolicy().requests_per_minute
    assert 69 * interval * 0.99 <= fake_time.slept <= 69 * interval * 1.01


def test_pulling_faster_than_the_quota_backs_off_and_still_completes(fake_time: FakeTime) -> None:
    """A pace above the quota meets 429s; backoff and retry keep every page, once."""
    with start_emulator(_entries(3000), quota_per_minute=10, clock=fake_time.clock) as handle:
        load = _source(handle, fake_time, page_size=100, requests_per_minute=600,
                       max_retries=10).load(QUERY)
        assert len(load.frame) == 3000
        assert handle.stats.outcomes.get("quota", 0) > 0
        assert handle.stats.duplicate_pages == ()


def test_403_names_the_missing_role(emulator: EmulatorHandle, fake_time: FakeTime) -> None:
    """A denied read says which role is missing and how to grant it."""
    emulator.set_faults(FaultConfig(deny=True))
    with pytest.raises(LogPermissionError) as info:
        _source(emulator, fake_time).load(QUERY)
    assert "roles/logging.viewer" in info.value.message
    assert info.value.exit_code == 2


def test_rate_limiter_spaces_request_starts() -> None:
    """Five acquisitions at 60/min start one second apart."""
    clock = FakeTime()
    limiter = RateLimiter(60, clock=clock.clock, sleep=clock.sleep)
    for _ in range(5):
        limiter.acquire()
    assert clock.slept == pytest.approx(4.0)


def test_rate_limiter_catches_up_after_a_slow_page_but_never_exceeds_the_quota() -> None:
    """With pauses of random length between requests, no 60 s window holds more than 60 starts."""
    import random

    clock = FakeTime()
    policy = PullPolicy()
    limiter = RateLimiter(policy.requests_per_minute, burst=policy.burst, clock=clock.clock,
                          sleep=clock.sleep)
    rng = random.Random(3)
    starts = []
    for _ in range(400):
        limiter.acquire()
        starts.append(clock.clock())
        clock.sleep(rng.choice([0.0, 0.2, 0.5, 1.5, 3.0]))  # processing time of the page
    most = max(sum(1 for t in starts if s <= t < s + 60.0) for s in starts)
    assert most <= 60
    slow_then_fast = [b - a for a, b in itertools.pairwise(starts)]
    assert min(slow_then_fast) < 60 / policy.requests_per_minute, "a slow page is caught up"


def test_missing_credentials_say_how_to_get_them(tmp_path: Path) -> None:
    """Without Application Default Credentials the CLI exits 2 and names the gcloud command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
    env.update(HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path / "gcloud"),
               NO_GCE_CHECK="true", GCE_METADATA_HOST="127.0.0.1:9",
               GCE_METADATA_IP="127.0.0.1:9")
    result = subprocess.run(
        [sys.executable, "-m", "uvs_analysis", "logs", f"cloudlogging://{PROJECT}",
         "--start", "2025-09-10T21:00:00Z", "--end", "2025-09-10T22:00:00Z",
         "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "gcloud auth application-default login" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_faults_lose_and_double_nothing(fake_time: FakeTime, seed: int) -> None:
    """429s, 503s and cut connections at random (seeded): the pull ends with exactly the entries
    the emulator holds for the query, checked by insertId (none missing, none twice)."""
    entries = _entries(3000)
    faults = FaultConfig(rate_limit=0.15, unavailable=0.15, disconnect=0.1)
    with start_emulator(entries, quota_per_minute=None, faults=faults, seed=seed,
                        clock=fake_time.clock) as handle:
        load = _source(handle, fake_time, page_size=200, max_retries=20).load(QUERY)
        stats = handle.stats
    assert sorted(load.frame["insert_id"]) == sorted(str(e["insertId"]) for e in entries)
    assert stats.duplicate_pages == ()
    assert sum(n for k, n in stats.outcomes.items() if k not in ("ok", "slow")) > 0


def test_an_unreachable_endpoint_says_so(fake_time: FakeTime) -> None:
    """A refused connection on every retry names the endpoint, not the read quota."""
    source = CloudLoggingSource(
        PROJECT, endpoint="http://127.0.0.1:9", policy=PullPolicy(max_retries=2),
        clock=fake_time.clock, sleep=fake_time.sleep,
    )
    with pytest.raises(LogSourceError, match=r"at http://127.0.0.1:9 could not be reached after "
                       r"2 retries \(ConnectionError") as caught:
        source.load(QUERY)
    assert "read quota" not in str(caught.value)
