"""The emulator driven by the real google-cloud-logging client (HTTP transport)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud import logging as gl

from uvs_analysis.emulator import EmulatorHandle, Fault, FaultConfig, start_emulator
from uvs_analysis.logs.filter_lang import parse_timestamp_ns


def fetch(handle: EmulatorHandle, project: str = "acme-prod", **kwargs: Any) -> list[Any]:
    """Entries of ``project`` through the real client, read from another project.

    Reading as another project keeps the client from building a Logger per log name, which
    would query metadata.google.internal for the monitored resource.
    """
    kwargs.setdefault("resource_names", [f"projects/{project}"])
    client = handle.client("offline-reader")
    return list(client.list_entries(**kwargs))  # type: ignore[no-untyped-call]


def _ids(items: Any) -> list[str]:
    return [e.insert_id for e in items]


def _sorted_ids(entries: list[dict[str, Any]], *, reverse: bool = False) -> list[str]:
    keyed = sorted(
        entries, key=lambda e: (parse_timestamp_ns(e["timestamp"]), e["insertId"]), reverse=reverse
    )
    return [e["insertId"] for e in keyed]


def test_pages_through_everything_in_timestamp_order(
    emulator: EmulatorHandle, entries: list[dict[str, Any]], window: str
) -> None:
    """The client pages through all entries, ascending by timestamp, one request per page."""
    got = fetch(emulator, filter_=window, page_size=7)
    assert _ids(got) == _sorted_ids(entries)
    stats = emulator.stats
    assert stats.outcomes == {"ok": math.ceil(len(entries) / 7)}
    assert [r.page_size for r in stats.requests] == [7] * len(stats.requests)
    assert stats.duplicate_pages == ()
    assert stats.entries_served == len(entries)


def test_descending_order(
    emulator: EmulatorHandle, entries: list[dict[str, Any]], window: str
) -> None:
    """orderBy "timestamp desc" returns newest first, ties broken by insertId."""
    got = fetch(emulator, filter_=window, order_by=gl.DESCENDING, page_size=1000)
    assert _ids(got) == _sorted_ids(entries, reverse=True)


def test_timestamps_are_served_z_normalized(emulator: EmulatorHandle, window: str) -> None:
    """Entries stored with +02:00 offsets reach the client (which rejects offsets) as UTC."""
    got = fetch(emulator, filter_=window, page_size=1000)
    first = next(e for e in got if e.insert_id == "id-0001")
    assert first.timestamp.isoformat() == "2024-05-14T09:02:00.001000+00:00"
    assert first.received_timestamp is not None


def test_filters_are_evaluated(
    emulator: EmulatorHandle, entries: list[dict[str, Any]], window: str
) -> None:
    """Cloud Run filters select the same entries a direct reading of the data does."""
    websockets = fetch(
        emulator,
        filter_=f'{window} AND log_id("run.googleapis.com/requests") AND httpRequest.status=101',
    )
    want = [
        e["insertId"]
        for e in entries
        if e["logName"].endswith("%2Frequests") and e["httpRequest"]["status"] == 101
    ]
    assert sorted(_ids(websockets)) == sorted(want)
    errors = fetch(emulator, filter_=f"{window}\nseverity>=ERROR", page_size=3)
    assert sorted(_ids(errors)) == sorted(
        e["insertId"] for e in entries if e.get("severity") == "ERROR"
    )
    text = fetch(emulator, filter_=f'{window} textPayload:"KEEPALIVE"')
    assert sorted(_ids(text)) == sorted(
        e["insertId"] for e in entries if "keepalive" in e.get("textPayload", "")
    )


def test_empty_result(emulator: EmulatorHandle, window: str) -> None:
    """A filter matching nothing yields no entries after one request."""
    got = fetch(emulator, filter_=f"{window} severity>=ALERT")
    assert got == []
    assert emulator.stats.outcomes == {"ok": 1}


def test_resource_names_restrict_to_the_project(make_entries: Any, window: str) -> None:
    """Only entries whose logName is under projects/P/ are served for resourceNames P."""
    mixed = make_entries("acme-prod", 10) + make_entries("other", 4)
    for i, entry in enumerate(mixed):
        entry["insertId"] = f"x-{i}"
    with start_emulator(mixed, quota_per_minute=0) as handle:
        assert len(fetch(handle, "other", filter_=window)) == 4
        both = fetch(
            handle, resource_names=["projects/acme-prod", "projects/other"], filter_=window
        )
        assert len(both) == 14


def test_bad_filter_is_a_bad_request_with_the_reason(emulator: EmulatorHandle, window: str) -> None:
    """A filter the evaluator cannot parse comes back as BadRequest naming the problem."""
    with pytest.raises(gexc.BadRequest) as info:
        fetch(emulator, filter_=f"{window} AND severity>=LOUD")
    assert "Invalid filter" in info.value.message
    assert "LOUD" in info.value.message and "not a severity" in info.value.message
    assert emulator.stats.outcomes == {"invalid": 1}


def test_page_size_over_1000_is_rejected(emulator: EmulatorHandle, window: str) -> None:
    """pageSize above 1000 is a 400 INVALID_ARGUMENT, as in the real API."""
    with pytest.raises(gexc.BadRequest, match="pageSize 1001"):
        fetch(emulator, filter_=window, page_size=1001)


def test_quota_exhaustion_and_recovery(entries: list[dict[str, Any]], window: str) -> None:
    """Past N requests a minute the client gets 429 with the real message; a minute later, not."""
    now = [1000.0]
    with start_emulator(entries, quota_per_minute=3, clock=lambda: now[0]) as handle:
        with pytest.raises(gexc.TooManyRequests) as info:
            fetch(handle, filter_=window, page_size=10)
        assert (
            "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per "
            "minute' of service 'logging.googleapis.com'"
        ) in info.value.message
        assert handle.stats.outcomes == {"ok": 3, "quota": 1}
        now[0] += 60.0
        assert len(fetch(handle, filter_=window, page_size=20)) == len(entries)


def test_deny_gives_forbidden(entries: list[dict[str, Any]], window: str) -> None:
    """deny=True answers 403 PERMISSION_DENIED, which the client raises as Forbidden."""
    with start_emulator(entries, faults=FaultConfig(deny=True)) as handle:
        with pytest.raises(gexc.Forbidden, match="does not have permission"):
            fetch(handle, filter_=window)
        assert handle.stats.outcomes == {"denied": 1}


def _outcomes_with_seed(entries: list[dict[str, Any]], window: str, seed: int) -> list[str]:
    faults = FaultConfig(rate_limit=0.3, unavailable=0.2)
    with start_emulator(entries, quota_per_minute=0, faults=faults, seed=seed) as handle:
        for _ in range(12):
            try:
                fetch(handle, filter_=window, page_size=1000)
            except (gexc.TooManyRequests, gexc.ServiceUnavailable):
                pass
        return [r.outcome for r in handle.stats.requests]


def test_faults_are_deterministic_for_a_seed(entries: list[dict[str, Any]], window: str) -> None:
    """The same seed and request sequence meet the same faults; the faults do occur."""
    first = _outcomes_with_seed(entries, window, seed=7)
    assert first == _outcomes_with_seed(entries, window, seed=7)
    assert {"429", "503", "ok"} <= set(first)
    assert first != _outcomes_with_seed(entries, window, seed=8)


def test_broken_connection(emulator: EmulatorHandle, window: str) -> None:
    """A disconnect fault breaks the response mid-body; the page is not counted as served."""
    emulator.set_faults(FaultConfig(script={2: Fault.DISCONNECT}))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        fetch(emulator, filter_=window, page_size=10)
    stats = emulator.stats
    assert [r.outcome for r in stats.requests] == ["ok", "disconnect"]
    assert [offset for _, offset in stats.served_pages] == [0]
    assert len(fetch(emulator, filter_=window, page_size=1000)) == 60


def test_slow_pages_wait_with_the_injected_sleep(
    entries: list[dict[str, Any]], window: str
) -> None:
    """A slow fault delays the page by slow_seconds through the injected sleep, then serves it."""
    waits: list[float] = []
    faults = FaultConfig(slow=1.0, slow_seconds=12.5)
    with start_emulator(entries, quota_per_minute=0, faults=faults, sleep=waits.append) as h:
        got = fetch(h, filter_=window, page_size=25)
        assert len(got) == len(entries)
        assert waits == [12.5, 12.5, 12.5]
        assert h.stats.outcomes == {"slow": 3}


def test_empty_progress_pages_are_followed(entries: list[dict[str, Any]], window: str) -> None:
    """Empty pages with a token (the API's "still searching") are followed transparently."""
    faults = FaultConfig(script={1: Fault.EMPTY, 2: Fault.EMPTY, 4: Fault.EMPTY})
    with start_emulator(entries, quota_per_minute=0, faults=faults) as handle:
        got = fetch(handle, filter_=window, page_size=40)
        assert _ids(got) == _sorted_ids(entries)
        stats = handle.stats
        assert [r.outcome for r in stats.requests] == ["empty", "empty", "ok", "empty", "ok"]
        assert stats.duplicate_pages == ()


def test_duplicate_pages_are_detected(emulator: EmulatorHandle, window: str) -> None:
    """Restarting a query from page one shows up as pages served twice."""
    fetch(emulator, filter_=window, page_size=25)
    assert emulator.stats.duplicate_pages == ()
    fetch(emulator, filter_=window, page_size=25, max_results=10)
    assert len(emulator.stats.duplicate_pages) == 1


def test_page_token_bound_to_request_arguments(emulator: EmulatorHandle, window: str) -> None:
    """A token replayed with another filter is refused; with the same arguments it resumes."""
    url = f"{emulator.endpoint}/v2/entries:list?prettyPrint=false"
    body: dict[str, Any] = {
        "resourceNames": ["projects/acme-prod"],
        "filter": window,
        "pageSize": 20,
    }
    first = requests.post(url, json=body, timeout=10).json()
    token = first["nextPageToken"]
    resumed = requests.post(url, json={**body, "pageToken": token}, timeout=10)
    assert resumed.status_code == 200
    assert resumed.json()["entries"][0]["insertId"] != first["entries"][0]["insertId"]
    for change in (
        {"filter": window + " severity>=ERROR"},
        {"pageSize": 21},
        {"orderBy": "timestamp desc"},
        {"resourceNames": ["projects/other"]},
    ):
        bad = requests.post(url, json={**body, **change, "pageToken": token}, timeout=10)
        assert bad.status_code == 400
        error = bad.json()["error"]
        assert error == {
            "code": 400,
            "message": "page_token doesn't match arguments from the request",
            "status": "INVALID_ARGUMENT",
        }


def test_control_routes_over_http(emulator: EmulatorHandle, window: str) -> None:
    """GET /emulator/stats, POST /emulator/faults and POST /emulator/reset work over HTTP."""
    fetch(emulator, filter_=window, page_size=30)
    stats = requests.get(f"{emulator.endpoint}/emulator/stats", timeout=10).json()
    assert stats["outcomes"] == {"ok": 2}
    assert [p[1] for p in stats["served_pages"]] == [0, 30]
    assert stats["store"]["entries"] == 60
    set_faults = requests.post(
        f"{emulator.endpoint}/emulator/faults", json={"script": {"1": "503"}}, timeout=10
    )
    assert set_faults.status_code == 200
    assert requests.post(f"{emulator.endpoint}/emulator/reset", timeout=10).status_code == 200
    assert emulator.stats.requests == ()
    with pytest.raises(gexc.ServiceUnavailable):
        fetch(emulator, filter_=window)
    refused = requests.post(
        f"{emulator.endpoint}/emulator/faults", json={"rate_limit": 2}, timeout=10
    )
    assert refused.status_code == 400 and "outside [0, 1]" in refused.json()["error"]["message"]


def test_unknown_route_has_googles_error_shape(emulator: EmulatorHandle) -> None:
    """Unknown paths answer 404 in Google's error shape."""
    reply = requests.post(f"{emulator.endpoint}/v2/logs", json={}, timeout=10)
    assert reply.status_code == 404
    assert reply.json()["error"]["status"] == "NOT_FOUND"
