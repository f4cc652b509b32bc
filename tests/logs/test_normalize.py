"""Tests for uvs_analysis.logs.normalize."""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uvs_analysis.logs.extract import close_from_text
from uvs_analysis.logs.normalize import MAX_BAD_DETAILS, Normalizer, normalize_records
from uvs_analysis.logs.query import LogQuery
from uvs_analysis.logs.schema import COLUMNS, LogLoad


def _by_id(load: LogLoad) -> dict[str, dict[str, Any]]:
    return {row["insert_id"]: row for row in load.frame.to_dict("records")}


def _accounted(load: LogLoad) -> bool:
    return load.read == len(load.frame) + load.bad_total + load.duplicates + load.filtered_out


def _entry(insert_id: str, ts: str, **extra: Any) -> dict[str, Any]:
    base = {
        "insertId": insert_id,
        "timestamp": ts,
        "logName": "projects/p/logs/run.googleapis.com%2Fstdout",
        "resource": {"type": "cloud_run_revision", "labels": {"service_name": "svc"}},
        "textPayload": "hello",
    }
    base.update(extra)
    return base


def test_frame_has_exactly_the_schema_columns_and_dtypes(cloud_run_entries):
    """The frame's columns, order and dtypes are schema.COLUMNS."""
    frame = normalize_records(cloud_run_entries).frame
    assert list(frame.columns) == list(COLUMNS)
    expected = {c: pd.api.types.pandas_dtype(d) for c, (d, _) in COLUMNS.items()}
    assert dict(frame.dtypes.items()) == expected


def test_empty_input_gives_an_empty_frame_with_the_schema():
    """No records: an empty frame that still has the schema."""
    load = normalize_records([])
    assert load.frame.empty and list(load.frame.columns) == list(COLUMNS)
    assert load.read == 0 and _accounted(load)


def test_request_log_fields(cloud_run_entries):
    """A request log gives the http fields, latency in seconds, the path and the instance."""
    row = _by_id(normalize_records(cloud_run_entries))["req-1"]
    assert row["log_kind"] == "request"
    assert row["log_name"] == "projects/netra-staging/logs/run.googleapis.com/requests"
    assert (row["http_method"], row["http_status"], row["http_path"]) == ("GET", 101, "/ws")
    assert row["http_latency_s"] == pytest.approx(3599.871254)
    assert row["http_remote_ip"] == "203.0.113.24" and row["span_id"] == "5f2c8e1d9a3b7c40"
    assert row["instance_id"].startswith("0069c7") and row["trace"].endswith("4736")
    assert (row["service"], row["location"]) == ("netra-backend-staging", "us-central1")
    assert row["receive_timestamp"] == pd.Timestamp("2025-09-15T02:01:05.912345678Z")
    assert pd.isna(row["payload"]) and pd.isna(row["message"])


def test_structured_log_close_code_and_merged_labels(cloud_run_entries):
    """Close code/reason come from the payload, the connection id from the entry labels."""
    row = _by_id(normalize_records(cloud_run_entries))["app-1"]
    assert (row["ws_close_code"], row["ws_close_reason"]) == (1011, "keepalive ping timeout")
    assert row["connection_id"] == "c-8f14e45f" and row["run_id"] == "run-7"
    assert row["message"] == "websocket closed: keepalive ping timeout"
    assert '"close_code":1011' in row["payload"]


def test_stderr_text_severity_is_inferred_and_close_code_read_from_text(cloud_run_entries):
    """stderr lines without severity: errors are inferred, the close code is read from text."""
    rows = _by_id(normalize_records(cloud_run_entries))
    assert (rows["err-1"]["severity"], rows["err-1"]["severity_inferred"]) == ("ERROR", True)
    assert rows["err-1"]["ws_close_code"] == 1011
    assert rows["err-1"]["ws_close_reason"] == "keepalive ping timeout"
    assert (rows["err-2"]["severity"], rows["err-2"]["severity_inferred"]) == ("ERROR", True)
    assert (rows["sys-1"]["severity"], rows["sys-1"]["severity_inferred"]) == ("WARNING", False)


@pytest.mark.parametrize(
    ("text", "severity", "inferred"),
    [
        ("INFO:     connection closed", "INFO", True),
        ("WARNING:  Invalid HTTP request received.", "WARNING", True),
        ("ValueError: bad frame", "ERROR", True),
        ("just a line", "DEFAULT", False),
    ],
)
def test_stderr_severity_inference_cases(text, severity, inferred):
    """Level prefixes, error words and plain lines on stderr."""
    entry = _entry("x", "2025-09-15T01:00:00Z", textPayload=text)
    entry["logName"] = "projects/p/logs/run.googleapis.com%2Fstderr"
    row = normalize_records([entry]).frame.iloc[0]
    assert (row["severity"], bool(row["severity_inferred"])) == (severity, inferred)


def test_stdout_text_without_severity_is_not_inferred():
    """Only stderr lines get an inferred severity."""
    entry = _entry("x", "2025-09-15T01:00:00Z", textPayload="Traceback (most recent call last):")
    row = normalize_records([entry]).frame.iloc[0]
    assert (row["severity"], bool(row["severity_inferred"])) == ("DEFAULT", False)


def test_backend_gcp_json_formatter_entry(cloud_run_entries):
    """gcp_json_formatter: own +02:00 timestamp to UTC, ids from labels/context, message kept."""
    row = _by_id(normalize_records(cloud_run_entries))["gcp-1"]
    assert row["timestamp"] == pd.Timestamp("2025-09-15T01:50:26.680191Z")
    assert row["user_id"] == "demo-user-001" and row["connection_id"] == "main_5b14bc0d"
    assert row["message"].count("\n") == 3 and row["message"].startswith("[🔴] RACE")
    assert pd.isna(row["ws_close_code"])


def test_backend_unified_formatter_entry(cloud_run_entries):
    """Unified loguru formatter: payload severity, trace_id, user and thread ids."""
    row = _by_id(normalize_records(cloud_run_entries))["uni-1"]
    assert row["severity"] == "CRITICAL" and not row["severity_inferred"]
    assert row["trace"] == "0af7651916cd43dd8448eb211c80319c"
    assert (row["user_id"], row["thread_id"]) == ("user-9", "thread-3")
    assert row["timestamp"] == pd.Timestamp("2025-09-15T01:50:27.000001Z")


def test_timestamps_with_offsets_or_without_zone_are_utc():
    """+02:00, -05:00, Z and a zone-less time all land on the same UTC instant."""
    stamps = [
        "2025-09-15T03:00:00+02:00",
        "2025-09-14T20:00:00-05:00",
        "2025-09-15T01:00:00Z",
        "2025-09-15T01:00:00",
    ]
    load = normalize_records([_entry(str(i), ts) for i, ts in enumerate(stamps)])
    assert load.bad_total == 0
    assert set(load.frame["timestamp"]) == {pd.Timestamp("2025-09-15T01:00:00Z")}


def test_nanosecond_timestamps_are_kept():
    """RFC 3339 with nine fraction digits keeps its nanoseconds."""
    frame = normalize_records([_entry("a", "2025-09-15T01:00:00.123456789Z")]).frame
    assert frame["timestamp"].iloc[0].nanosecond == 789


def test_duplicates_are_loaded_once_and_counted():
    """Same insertId+timestamp+logName is a duplicate; a different timestamp is not."""
    ts = "2025-09-15T01:00:00Z"
    records = [
        _entry("a", ts),
        _entry("a", ts),
        _entry("a", "2025-09-15T01:00:01Z"),
        _entry("b", ts),
        _entry("a", ts),
    ]
    no_id = [{k: v for k, v in _entry("", ts).items() if k != "insertId"} for _ in range(2)]
    load = normalize_records(records + no_id)
    assert load.duplicates == 2 and len(load.frame) == 5 and _accounted(load)


def test_duplicates_across_chunks_are_found():
    """Duplicates far apart (in different chunks) are still dropped."""
    records = [_entry(str(i), "2025-09-15T01:00:00Z") for i in range(20)] * 2
    normalizer = Normalizer("mem", chunk_rows=7)
    for line, record in enumerate(records, start=1):
        normalizer.add(record, line)
    load = normalizer.finish()
    assert load.duplicates == 20 and sorted(load.frame["insert_id"]) == sorted(map(str, range(20)))


@pytest.mark.parametrize(
    ("record", "words"),
    [
        (5, ["number", "LogEntry object"]),
        ([1, 2], ["array", "LogEntry object"]),
        ("text", ["string", "LogEntry object"]),
        (None, ["null", "LogEntry object"]),
        ({}, ["empty object"]),
        ({"logName": "x", "textPayload": "y"}, ["no timestamp"]),
        (_entry("a", "2025-09-15T01:00:00Z", logName=7), ["'logName'", "number", "string"]),
        (_entry("a", "2025-09-15T01:00:00Z", jsonPayload="t"), ["'jsonPayload'", "object"]),
        (_entry("a", "2025-09-15T01:00:00Z", httpRequest=[1]), ["'httpRequest'", "object"]),
        (_entry("a", "yesterday"), ["'yesterday'", "not a time", "RFC 3339"]),
        (_entry("a", {"seconds": 1}), ["'timestamp'", "RFC 3339"]),
    ],
)
def test_bad_records_are_counted_with_line_and_reason(record, words):
    """Records that are not usable LogEntries are counted, with their position and why."""
    good = _entry("g", "2025-09-15T01:00:00Z")
    load = normalize_records([good, record, good | {"insertId": "h"}], source="mem.json")
    assert load.bad_total == 1 and len(load.frame) == 2 and _accounted(load)
    bad = load.bad_records[0]
    assert (bad.source, bad.line) == ("mem.json", 2)
    for word in words:
        assert word in bad.reason


def test_only_the_first_bad_record_details_are_kept():
    """All bad records are counted, but details are capped."""
    load = normalize_records([1] * (MAX_BAD_DETAILS + 50))
    assert load.bad_total == MAX_BAD_DETAILS + 50
    assert len(load.bad_records) == MAX_BAD_DETAILS


@pytest.mark.parametrize(
    ("http", "status", "latency"),
    [
        ({"status": "503", "latency": {"seconds": 2, "nanos": 500_000_000}}, 503, 2.5),
        ({"status": 101.0, "latency": 12}, 101, 12.0),
        ({"status": "n/a", "latency": "soon"}, None, None),
    ],
)
def test_http_status_and_latency_forms(http, status, latency):
    """Status as string/float and latency as dict/number are normalized; junk becomes NA."""
    row = normalize_records([_entry("a", "2025-09-15T01:00:00Z", httpRequest=http)]).frame.iloc[0]
    assert (None if pd.isna(row["http_status"]) else row["http_status"]) == status
    assert (None if pd.isna(row["http_latency_s"]) else row["http_latency_s"]) == latency


CLOSE_TEXTS = [
    "close 1011 (internal error)",
    "received 1011 (internal error) keepalive ping timeout",
    "sent 1000 (OK); then received 1000 (OK)",
    "code=1011 reason=Service not ready",
    'websocket.close(code=1011, reason="Service initialization failed")',
    "close(1008, 'Authentication failed')",
    "WebSocket closed with code 1008: Authentication failed",
    "WebSocket connection main_1 closed with code 1000: main cleanup",
    "nothing to see in 2025 here",
    "HTTP 503 after 1011 ms",
]


@pytest.mark.parametrize("text", CLOSE_TEXTS)
def test_close_code_from_text_matches_the_reference_function(text):
    """The column-wise close-code search agrees with extract.close_from_text."""
    row = normalize_records([_entry("a", "2025-09-15T01:00:00Z", textPayload=text)]).frame.iloc[0]
    code = None if pd.isna(row["ws_close_code"]) else int(row["ws_close_code"])
    reason = None if pd.isna(row["ws_close_reason"]) else row["ws_close_reason"]
    assert (code, reason) == close_from_text(text)


def test_payload_close_code_wins_over_text_and_invalid_codes_are_ignored():
    """A payload code beats the message; a non-close "code" (e.g. an HTTP status) is ignored."""
    payload = {"message": "received 1006 (abnormal)", "code": 1001, "reason": "going away"}
    entries = [
        _entry("a", "2025-09-15T01:00:00Z", jsonPayload=payload, textPayload=None),
        _entry("b", "2025-09-15T01:00:00Z", jsonPayload={"message": "x", "code": "AUTH_FAILED"}),
        _entry("c", "2025-09-15T01:00:00Z", jsonPayload={"closeCode": 1011.0, "code": 503}),
    ]
    rows = _by_id(normalize_records(entries))
    assert (rows["a"]["ws_close_code"], rows["a"]["ws_close_reason"]) == (1001, "going away")
    assert pd.isna(rows["b"]["ws_close_code"])
    assert rows["c"]["ws_close_code"] == 1011


def _query(**kw: Any) -> LogQuery:
    base: dict[str, Any] = {
        "project": "netra-staging",
        "start": "2025-09-15T01:00:00Z",
        "end": "2025-09-15T02:00:00Z",
    }
    base.update(kw)
    return LogQuery(**base)


def test_query_window_and_kinds_filter_and_count(cloud_run_entries):
    """Rows outside the window or log kinds are dropped and counted."""
    load = normalize_records(cloud_run_entries, query=_query(log_kinds=("stderr", "stdout")))
    # req-1 is a request log; sys-1 is after 02:00; gcp-1 (01:50Z) and uni-1 are inside
    assert sorted(load.frame["insert_id"]) == ["app-1", "err-1", "err-2", "gcp-1", "uni-1"]
    assert load.filtered_out == 2 and _accounted(load)


def test_query_severity_floor_uses_inferred_severity(cloud_run_entries):
    """severity>=ERROR keeps stderr tracebacks whose severity was inferred."""
    load = normalize_records(cloud_run_entries, query=_query(severity="ERROR"))
    assert set(load.frame["insert_id"]) == {"app-1", "err-1", "err-2", "gcp-1", "uni-1"}
    assert _accounted(load)


def test_query_service_revision_region_filter():
    """Service, revision and region must all match; rows missing them are dropped."""
    entries = [
        _entry("a", "2025-09-15T01:00:00Z"),
        _entry("b", "2025-09-15T01:00:00Z", resource={"labels": {"service_name": "other"}}),
        _entry("c", "2025-09-15T01:00:00Z", resource=None),
    ]
    load = normalize_records(entries, query=_query(service="svc"))
    assert list(load.frame["insert_id"]) == ["a"] and load.filtered_out == 2
    assert len(normalize_records(entries, query=_query(region="us-central1")).frame) == 0


def test_query_extra_filter_is_applied_per_record(cloud_run_entries):
    """extra_filter (Logging query language) keeps only matching entries."""
    query = _query(extra_filter='textPayload:"keepalive"')
    load = normalize_records(cloud_run_entries, query=query)
    assert list(load.frame["insert_id"]) == ["err-1"] and _accounted(load)


def test_chunking_does_not_change_the_result(cloud_run_entries):
    """Small chunks give the same frame as one chunk."""
    records = [
        copy.deepcopy(e) | {"insertId": f"{e['insertId']}-{i}"}
        for i in range(5)
        for e in cloud_run_entries
    ]
    normalizer = Normalizer("mem", chunk_rows=3)
    for line, record in enumerate(records, start=1):
        normalizer.add(record, line)
    pd.testing.assert_frame_equal(normalizer.finish().frame, normalize_records(records).frame)


def test_strings_arrow_refuses_are_repaired():
    """A lone surrogate (valid JSON escape) does not stop the load."""
    load = normalize_records([_entry("a", "2025-09-15T01:00:00Z", textPayload="bad \ud800 x")])
    assert len(load.frame) == 1 and load.frame["message"].iloc[0].startswith("bad ")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        "timestamp",
        "logName",
        "severity",
        "insertId",
        "textPayload",
        "jsonPayload",
        "labels",
        "resource",
        "httpRequest",
        "trace",
        "receiveTimestamp",
    ]
)
LOGENTRY_LIKE = st.dictionaries(
    FIELDS,
    JSON | st.sampled_from(["2025-09-15T01:00:00Z", "2025-09-15T01:00:00+02:00", "ERROR"]),
    max_size=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(JSON | LOGENTRY_LIKE, max_size=8))
def test_normalizer_never_raises_and_accounts_for_every_record(records):
    """Any JSON values: no exception, and every record is loaded or counted."""
    load = normalize_records(records)
    assert load.read == len(records) and _accounted(load)
    assert list(load.frame.columns) == list(COLUMNS)
