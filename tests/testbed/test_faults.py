"""Fault names, settings validation and time scaling."""

from __future__ import annotations

import pytest

from uvs_analysis.errors import UsageError
from uvs_analysis.testbed.faults import FAULTS, TestbedSettings, connection_hit, parse_faults


def test_parse_faults_keeps_order_and_rejects_unknown_names() -> None:
    """Comma lists parse in order without duplicates; an unknown name lists the valid ones."""
    assert parse_faults("redis-down, handler-crash,redis-down") == ("redis-down", "handler-crash")
    assert parse_faults("") == ("healthy",)
    with pytest.raises(UsageError) as info:
        parse_faults("database-down,nope")
    assert "nope" in info.value.message and "startup-race" in info.value.message


def test_every_profile_has_a_description() -> None:
    """The issue's seventeen profiles are all present."""
    assert len(FAULTS) == 17 and all(FAULTS.values())


@pytest.mark.parametrize("kwargs", [{"time_scale": 0}, {"fault_rate": 1.5},
                                    {"log_format": "xml"}, {"request_timeout_s": -1.0}])
def test_bad_settings_raise_usage_errors(kwargs: dict[str, object]) -> None:
    """Out-of-range options are usage errors naming the parameter."""
    with pytest.raises(UsageError, match="--"):
        TestbedSettings(**kwargs)  # type: ignore[arg-type]


def test_time_scale_multiplies_every_delay() -> None:
    """All delays scale linearly; slow profiles exceed their SLOs at any scale."""
    base = TestbedSettings().timings()
    fast = TestbedSettings(time_scale=0.1).timings()
    assert fast.heartbeat_s == pytest.approx(base.heartbeat_s * 0.1)
    assert fast.request_timeout_s == pytest.approx(base.request_timeout_s * 0.1)
    assert fast.steps_s["data_helper"] == pytest.approx(base.steps_s["data_helper"] * 0.1)
    slow = TestbedSettings(faults=("slow-data-helper", "slow-report"), time_scale=0.1).timings()
    assert slow.steps_s["data_helper"] > slow.data_slo_s
    assert slow.steps_s["reporting"] > slow.report_slo_s
    assert base.steps_s["data_helper"] < base.data_slo_s


def test_proxy_faults_need_nginx_and_turn_server_pings_off() -> None:
    """proxy-idle-cut needs the proxy and disables uvicorn keepalive pings."""
    settings = TestbedSettings(faults=("proxy-idle-cut",))
    assert settings.needs_proxy and settings.timings().ws_ping_s is None
    assert not TestbedSettings().needs_proxy


def test_connection_hit_is_seeded_and_follows_the_rate() -> None:
    """Draws repeat for a seed, differ across seeds, and hit about rate of connections."""
    draws = [connection_hit(3, "redis", i, 0.5) for i in range(400)]
    assert draws == [connection_hit(3, "redis", i, 0.5) for i in range(400)]
    assert draws != [connection_hit(4, "redis", i, 0.5) for i in range(400)]
    assert 150 < sum(draws) < 250
    assert not any(connection_hit(3, "redis", i, 0.0) for i in range(50))
