"""The entries:list method without HTTP (uvs_analysis.emulator.service)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from uvs_analysis.emulator.faults import Fault, FaultConfig
from uvs_analysis.emulator.service import LoggingService
from uvs_analysis.emulator.store import open_store


def _call(service: LoggingService, **body: Any) -> tuple[int, dict[str, Any]]:
    reply = service.list_entries(json.dumps(body).encode())
    return reply.status, json.loads(reply.body)


@pytest.fixture
def service(entries: list[dict[str, Any]]) -> LoggingService:
    """A service over the sixty fixture entries, no quota."""
    return LoggingService(open_store(entries), quota_per_minute=0)


BASE = {"resourceNames": ["projects/acme-prod"]}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"pageSize": 1001}, "pageSize 1001"),
        ({"pageSize": -1}, "pageSize -1"),
        ({"pageSize": "many"}, "not an integer"),
        ({"orderBy": "insertId"}, "Invalid orderBy"),
        ({"filter": 'severity>="LOUD"'}, "Invalid filter"),
        ({"filter": 7}, "filter must be a string"),
        ({"maxResults": 5}, 'Unknown name "maxResults"'),
        ({"resourceNames": ["organizations/1"]}, "not supported"),
        ({"resourceNames": "projects/a b/c"}, "not supported"),
        ({"resourceNames": [f"projects/p{i}" for i in range(101)]}, "at most 100"),
        ({"pageToken": "%%%"}, "Invalid page token"),
    ],
)
def test_invalid_requests_are_400(
    service: LoggingService, body: dict[str, Any], needle: str
) -> None:
    """Each invalid argument gets 400 INVALID_ARGUMENT with a message naming it."""
    status, payload = _call(service, **{**BASE, **body})
    assert status == 400
    assert payload["error"]["status"] == "INVALID_ARGUMENT"
    assert needle in payload["error"]["message"]
    assert service.stats().outcomes == {"invalid": 1}


def test_body_that_is_not_json(service: LoggingService) -> None:
    """A body that is not a JSON object is a 400 saying so."""
    for raw in (b"{", b"[1]"):
        reply = service.list_entries(raw)
        assert reply.status == 400
        assert "Invalid JSON payload" in json.loads(reply.body)["error"]["message"]


def test_defaults_page_size_50_and_missing_keys(service: LoggingService) -> None:
    """Without pageSize the page holds 50; without resourceNames every project is searched."""
    status, payload = _call(service)
    assert status == 200
    assert len(payload["entries"]) == 50 and "nextPageToken" in payload
    status, rest = _call(service, pageToken=payload["nextPageToken"])
    assert len(rest["entries"]) == 10 and "nextPageToken" not in rest


def test_log_view_resource_names_select_the_project(make_entries: Any) -> None:
    """A log view resource name restricts to its project like projects/P does."""
    service = LoggingService(open_store(make_entries("a", 3) + make_entries("b", 2)))
    view = "projects/b/locations/global/buckets/_Default/views/_AllLogs"
    status, payload = _call(service, resourceNames=[view])
    assert status == 200 and len(payload["entries"]) == 2


def test_empty_page_repeats_the_position(service: LoggingService) -> None:
    """An injected empty page carries a token that resumes exactly where it was."""
    service.set_faults(FaultConfig(script={1: Fault.EMPTY}))
    _, empty = _call(service, **BASE, pageSize=10)
    assert "entries" not in empty
    _, page = _call(service, **BASE, pageSize=10, pageToken=empty["nextPageToken"])
    _, direct = _call(service, **BASE, pageSize=10)
    assert page["entries"] == direct["entries"]
    assert [r.outcome for r in service.stats().requests] == ["empty", "ok", "ok"]


def test_quota_is_per_project(entries: list[dict[str, Any]]) -> None:
    """Each project has its own quota; 429 carries RESOURCE_EXHAUSTED and the consumer."""
    now = [0.0]
    service = LoggingService(open_store(entries), quota_per_minute=1, clock=lambda: now[0])
    assert _call(service, resourceNames=["projects/a"])[0] == 200
    status, payload = _call(service, resourceNames=["projects/a"])
    assert status == 429
    assert payload["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert "for consumer 'projects/a'" in payload["error"]["message"]
    assert _call(service, resourceNames=["projects/b"])[0] == 200


def test_scripted_error_faults_have_googles_shape(service: LoggingService) -> None:
    """500, 503 and 504 faults answer with their canonical status names."""
    script = {1: Fault.INTERNAL, 2: Fault.UNAVAILABLE, 3: Fault.DEADLINE, 4: Fault.RATE_LIMIT}
    service.set_faults(FaultConfig(script=script))
    got = [_call(service, **BASE) for _ in range(4)]
    assert [(s, p["error"]["status"]) for s, p in got] == [
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
        (429, "RESOURCE_EXHAUSTED"),
    ]
    assert service.stats().outcomes == {"500": 1, "503": 1, "504": 1, "429": 1}


def test_reset_restarts_numbering_and_forgets(service: LoggingService) -> None:
    """reset() clears requests and served pages, and scripted faults apply again from 1."""
    service.set_faults(FaultConfig(script={1: Fault.UNAVAILABLE}))
    assert _call(service, **BASE)[0] == 503
    assert _call(service, **BASE)[0] == 200
    service.reset()
    assert service.stats().requests == () and service.stats().served_pages == ()
    assert _call(service, **BASE)[0] == 503


def test_stats_json_is_serializable(service: LoggingService) -> None:
    """The stats snapshot converts to plain JSON with the accounting of the store."""
    _call(service, **BASE, pageSize=30)
    data = json.loads(json.dumps(service.stats().to_json()))
    assert data["outcomes"] == {"ok": 1}
    assert data["entries_served"] == 30
    assert data["store"]["entries"] == 60 and data["store"]["skipped"] == []
    assert data["requests"][0]["project"] == "acme-prod"
