"""Fault knobs and the read quota (uvs_analysis.emulator.faults)."""

from __future__ import annotations

from collections import Counter

import pytest

from uvs_analysis.emulator.faults import Fault, FaultConfig, ReadQuota
from uvs_analysis.errors import UsageError


def test_draws_depend_only_on_seed_and_request_number() -> None:
    """The same (seed, request number) always draws the same fault, in any call order."""
    config = FaultConfig(rate_limit=0.2, unavailable=0.2, disconnect=0.1)
    forward = [config.draw(3, n) for n in range(1, 200)]
    backward = [config.draw(3, n) for n in reversed(range(1, 200))][::-1]
    assert forward == backward
    assert forward != [config.draw(4, n) for n in range(1, 200)]


def test_draw_frequencies_follow_probabilities() -> None:
    """Over many requests each fault occurs about as often as its probability says."""
    config = FaultConfig(rate_limit=0.3, unavailable=0.1, slow=0.1, empty_page=0.1)
    counts = Counter(config.draw(0, n) for n in range(1, 5001))
    assert abs(counts[Fault.RATE_LIMIT] / 5000 - 0.3) < 0.03
    assert abs(counts[Fault.UNAVAILABLE] / 5000 - 0.1) < 0.02
    assert abs(counts[None] / 5000 - 0.4) < 0.03
    assert counts[Fault.DISCONNECT] == 0


def test_script_overrides_probabilities() -> None:
    """Scripted faults hit exactly their request numbers, before any draw."""
    config = FaultConfig.from_json({"rate_limit": 1.0, "script": {"2": "504", "3": "500"}})
    assert [config.draw(0, n) for n in (1, 2, 3, 4)] == [
        Fault.RATE_LIMIT,
        Fault.DEADLINE,
        Fault.INTERNAL,
        Fault.RATE_LIMIT,
    ]
    assert FaultConfig().draw(0, 1) is None


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"rate_limit": 1.5}, "outside [0, 1]"),
        ({"rate_limit": 0.6, "unavailable": 0.6}, "sum to more than 1"),
        ({"slow_seconds": -1.0}, "negative"),
        ({"script": {1: "teapot"}}, "not a fault"),
    ],
)
def test_invalid_configs_are_usage_errors(kwargs: dict[str, object], needle: str) -> None:
    """Out-of-range or unknown knobs raise UsageError saying which."""
    with pytest.raises(UsageError, match=needle.replace("[", r"\[")):
        FaultConfig(**kwargs)  # type: ignore[arg-type]


def test_json_round_trip_and_errors() -> None:
    """to_json/from_json round-trip; unknown keys and wrong types are refused."""
    config = FaultConfig(slow=0.5, slow_seconds=3, deny=True, script={5: Fault.DISCONNECT})
    assert FaultConfig.from_json(config.to_json()) == config
    with pytest.raises(UsageError, match="unknown fault settings"):
        FaultConfig.from_json({"explode": 1})
    with pytest.raises(UsageError, match="not a boolean"):
        FaultConfig.from_json({"deny": "yes"})
    with pytest.raises(UsageError, match="not a number"):
        FaultConfig.from_json({"slow": "often"})


def test_quota_sliding_window_per_project() -> None:
    """N requests per window per project; refused requests are not counted; the window slides."""
    now = [0.0]
    quota = ReadQuota(2, lambda: now[0])
    assert [quota.try_acquire("p") for _ in range(3)] == [True, True, False]
    assert quota.try_acquire("q")
    now[0] = 30.0
    assert not quota.try_acquire("p")
    now[0] = 60.0
    assert [quota.try_acquire("p") for _ in range(3)] == [True, True, False]
    quota.reset()
    assert quota.try_acquire("p")


def test_quota_scales_and_can_be_off() -> None:
    """A higher quota admits proportionally more; 0 or None means unlimited."""
    now = [0.0]
    big = ReadQuota(6000, lambda: now[0])
    assert sum(big.try_acquire("p") for _ in range(6500)) == 6000
    for off in (0, None):
        unlimited = ReadQuota(off, lambda: now[0])
        assert all(unlimited.try_acquire("p") for _ in range(1000))
    with pytest.raises(UsageError):
        ReadQuota(-1, lambda: now[0])
