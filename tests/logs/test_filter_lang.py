"""Tests for the Logging-query-language evaluator (uvs_analysis.logs.filter_lang)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uvs_analysis.errors import FilterSyntaxError
from uvs_analysis.logs.filter_lang import (
    SEVERITY_RANK,
    compile_filter,
    format_timestamp_ns,
    parse_timestamp_ns,
)
from uvs_analysis.logs.query import DEFAULT_LOG_KINDS, LogQuery
from uvs_analysis.logs.schema import SEVERITY_RANK as SCHEMA_RANK
from uvs_analysis.logs.schema import log_kind_of

INSTANCE = "0069c7a98812e4f0b8d4b2c6a7e1f39d0c5b6a2e8f1d7c3b9a0e4f6d"
OTHER_INSTANCE = "00aa11bb22cc33dd44ee55ff66778899aabbccddeeff00112233445566"
TRACE = "projects/acme-prod/traces/4bf92f3577b34da6a3ce929d0e0e4736"
RESOURCE = {
    "type": "cloud_run_revision",
    "labels": {
        "configuration_name": "ws-gateway",
        "location": "europe-west1",
        "project_id": "acme-prod",
        "revision_name": "ws-gateway-00042-xuv",
        "service_name": "ws-gateway",
    },
}
LOG = "projects/acme-prod/logs/run.googleapis.com%2F"

# The example entries of cloud_logging.md §4.6: (a) a 101 request log, (b) a structured ERROR on
# stdout, (c) a plain stderr traceback line without severity, (d) a system log, and (e) the 504
# request-timeout variant.
ENTRIES: dict[str, dict[str, Any]] = {
    "a": {
        "httpRequest": {
            "requestMethod": "GET",
            "requestUrl": "https://ws-gateway-7x3kq2mbpa-ew.a.run.app/ws?room=lobby",
            "requestSize": "612",
            "status": 101,
            "responseSize": "48213",
            "remoteIp": "203.0.113.24",
            "latency": "3599.871254s",
            "protocol": "HTTP/1.1",
        },
        "insertId": "a",
        "labels": {"instanceId": INSTANCE},
        "logName": LOG + "requests",
        "receiveTimestamp": "2024-05-14T10:01:05.912345678Z",
        "resource": RESOURCE,
        "severity": "INFO",
        "spanId": "5f2c8e1d9a3b7c40",
        "timestamp": "2024-05-14T09:01:05.871522Z",
        "trace": TRACE,
        "traceSampled": True,
    },
    "b": {
        "insertId": "b",
        "jsonPayload": {
            "message": "websocket closed: keepalive ping timeout",
            "close_code": 1011,
            "close_reason": "keepalive ping timeout",
            "conn_age_s": 2471.2,
        },
        "labels": {"conn_id": "c-8f14e45f", "room": "lobby", "instanceId": INSTANCE},
        "logName": LOG + "stdout",
        "resource": RESOURCE,
        "severity": "ERROR",
        "spanId": "5f2c8e1d9a3b7c40",
        "timestamp": "2024-05-14T09:42:17.118Z",
        "trace": TRACE,
    },
    "c": {
        "insertId": "c",
        "labels": {"instanceId": INSTANCE},
        "logName": LOG + "stderr",
        "resource": RESOURCE,
        "textPayload": "websockets.exceptions.ConnectionClosedError: received 1011 (internal "
        "error) keepalive ping timeout; then sent 1011 (internal error) keepalive ping timeout",
        "timestamp": "2024-05-14T09:42:17.120834Z",
    },
    "d": {
        "insertId": "d",
        "labels": {"container_name": "ws-gateway-1", "instanceId": INSTANCE},
        "logName": LOG + "varlog%2Fsystem",
        "resource": RESOURCE,
        "severity": "WARNING",
        "textPayload": "Container called exit(1).",
        "timestamp": "2024-05-14T10:30:10.053646Z",
    },
    "e": {
        "httpRequest": {"requestMethod": "GET", "status": 504, "latency": "300.001234s"},
        "insertId": "e",
        "labels": {"instanceId": OTHER_INSTANCE},
        "logName": LOG + "requests",
        "resource": RESOURCE,
        "severity": "ERROR",
        "textPayload": "The request has been terminated because it has reached the maximum "
        "request timeout. To change this limit, see "
        "https://cloud.google.com/run/docs/configuring/request-timeout",
        "timestamp": "2024-05-14T11:15:00Z",
        "trace": "projects/acme-prod/traces/0000000000000000000000000000beef",
    },
}


def matching(text: str) -> set[str]:
    predicate = compile_filter(text)
    return {key for key, entry in ENTRIES.items() if predicate(entry)}


# Every example filter of cloud_logging.md §1.5, with the example entries each must select.
DOC_EXAMPLES = [
    ('resource.type="cloud_run_revision"', "abcde"),
    ('resource.labels.service_name="ws-gateway"', "abcde"),
    ('resource.labels.revision_name="ws-gateway-00042-xuv"', "abcde"),
    ('resource.labels.location="europe-west1"', "abcde"),
    ('timestamp>="2024-05-14T09:00:00Z" AND timestamp<"2024-05-14T11:00:00Z"', "abcd"),
    ('logName="projects/acme-prod/logs/run.googleapis.com%2Frequests"', "ae"),
    ('logName:"run.googleapis.com%2Frequests"', "ae"),
    ('log_id("run.googleapis.com/requests")', "ae"),
    (
        'logName=("projects/acme-prod/logs/run.googleapis.com%2Fstdout" OR '
        '"projects/acme-prod/logs/run.googleapis.com%2Fstderr")',
        "bc",
    ),
    ('logName="projects/acme-prod/logs/run.googleapis.com%2Fvarlog%2Fsystem"', "d"),
    ('-logName:"run.googleapis.com%2Frequests"', "bcd"),
    ("httpRequest.status=101", "a"),
    ("httpRequest.status>=500", "e"),
    ("severity>=ERROR", "be"),
    ('textPayload:"1011"', "c"),
    ('textPayload:"maximum request timeout"', "e"),
    ("jsonPayload.close_code=1011", "b"),
    ('jsonPayload.message:"keepalive"', "b"),
    ('trace="projects/acme-prod/traces/4bf92f3577b34da6a3ce929d0e0e4736"', "ab"),
    (f'labels.instanceId="{INSTANCE}"', "abcd"),
    ('-logName=~"logs/run.googleapis.com%2Frequests"', "bcd"),
    (
        'resource.type="cloud_run_revision" AND resource.labels.service_name="ws-gateway" '
        'AND logName:"run.googleapis.com%2Frequests" AND timestamp>="2024-05-14T09:00:00Z"',
        "ae",
    ),
]


@pytest.mark.parametrize(("text", "expected"), DOC_EXAMPLES, ids=[t for t, _ in DOC_EXAMPLES])
def test_documented_examples(text: str, expected: str) -> None:
    """Each documented Cloud Run filter selects exactly the example entries it describes."""
    assert matching(text) == set(expected)


def test_official_sample_query() -> None:
    """The language reference's sample (severity >= "ERROR" AND NOT textPayload:robot) works."""
    assert matching(
        'resource.type = "cloud_run_revision" AND\nseverity >= "ERROR" AND\nNOT textPayload:robot'
    ) == {"b", "e"}
    assert matching('severity >= "ERROR" AND NOT textPayload:"maximum"') == {"b"}


def test_or_binds_tighter_than_and() -> None:
    """a OR NOT b AND NOT c OR d groups as (a OR (NOT b)) AND ((NOT c) OR d), as documented."""
    atoms = {
        "a": "severity>=WARNING",
        "b": "textPayload:*",
        "c": 'log_id("run.googleapis.com/requests")',
        "d": "httpRequest.status=101",
    }
    text = "{a} OR NOT {b} AND NOT {c} OR {d}".format(**atoms)
    grouped = "({a} OR (NOT {b})) AND ((NOT {c}) OR {d})".format(**atoms)
    and_first = "{a} OR ((NOT {b}) AND (NOT {c})) OR {d}".format(**atoms)
    assert matching(text) == matching(grouped) == {"a", "b", "d"}
    assert matching(and_first) == {"a", "b", "d", "e"}


def test_implicit_and_across_newlines_and_spaces() -> None:
    """Adjacent terms, on one line or several, are ANDed."""
    assert matching('severity>=ERROR\nlogName:"requests"') == {"e"}
    assert matching("severity>=ERROR keepalive") == {"b"}


def test_string_comparisons_are_case_insensitive() -> None:
    """= and : ignore case on strings, as the real API does."""
    assert matching('resource.labels.service_name="WS-Gateway"') == set("abcde")
    assert matching('jsonPayload.message:"KEEPALIVE"') == {"b"}
    assert matching("severity=error") == {"b", "e"}


def test_regex_is_case_sensitive_search() -> None:
    """=~ searches anywhere with Python re; !~ is its negation on present fields."""
    assert matching('textPayload=~"exit\\\\(\\\\d\\\\)"') == {"d"}
    assert matching('textPayload=~"EXIT"') == set()
    assert matching('textPayload=~"(?i)EXIT"') == {"d"}
    assert matching('textPayload!~"exit"') == {"c", "e"}


def test_severity_ranks_and_missing_severity_is_default() -> None:
    """Severity compares by rank; an entry without severity is DEFAULT."""
    assert matching("severity>=WARNING") == {"b", "d", "e"}
    assert matching("severity<INFO") == {"c"}
    assert matching("severity=DEFAULT") == {"c"}
    assert matching("severity>=400") == {"b", "d", "e"}
    assert SEVERITY_RANK is SCHEMA_RANK


def test_timestamps_compare_as_instants_in_any_offset() -> None:
    """Timestamp literals with offsets, fractions or only a date compare as times."""
    assert matching('timestamp>="2024-05-14T11:00:00+02:00"') == set("abcde")
    assert matching('timestamp<"2024-05-14T11:42:17.119+02:00"') == {"a", "b"}
    assert matching('timestamp>"2024-05-14T09:42:17.118Z"') == {"c", "d", "e"}
    assert matching("timestamp>=2024-05-14T10:00:00Z") == {"d", "e"}
    assert matching('timestamp<"2024-05-15"') == set("abcde")
    assert matching('receiveTimestamp>"2024-05-14T10:01:05.912345677Z"') == {"a"}


def test_numbers_and_durations_compare_numerically() -> None:
    """Numbers compare as numbers (floats too); durations compare as seconds."""
    assert matching("jsonPayload.close_code>1000") == {"b"}
    assert matching("jsonPayload.conn_age_s<2471.3") == {"b"}
    assert matching('httpRequest.latency>"1000s"') == {"a"}
    assert matching("httpRequest.latency<1000s") == {"e"}
    assert matching("httpRequest.responseSize>48000") == {"a"}
    grpc_style = dict(ENTRIES["b"], jsonPayload={"close_code": 1011.0})
    assert compile_filter("jsonPayload.close_code=1011")(grpc_style)


def test_missing_fields_never_match_but_not_does() -> None:
    """A comparison on a missing field is false, and its negation is true."""
    assert matching("jsonPayload.close_code!=1000") == {"b"}
    assert matching("NOT jsonPayload.close_code=1011") == set("acde")
    assert matching("-httpRequest.status>=500") == set("abcd")
    assert matching('jsonPayload.nothing:""') == set()


def test_has_star_tests_presence() -> None:
    """field:* selects entries that have the field."""
    assert matching("httpRequest:*") == {"a", "e"}
    assert matching("jsonPayload.close_reason:*") == {"b"}
    assert matching("NOT textPayload:*") == {"a", "b"}


def test_has_on_a_structure_searches_its_values() -> None:
    """: on an object matches when any value inside contains the text."""
    assert matching('jsonPayload:"ping timeout"') == {"b"}
    assert matching("labels:lobby") == {"b"}


def test_value_lists_and_nested_value_expressions() -> None:
    """field=(x OR y), field:(x AND y) and NOT inside a value list work."""
    assert matching("httpRequest.status=(101 OR 504)") == {"a", "e"}
    assert matching('textPayload:("1011" AND "keepalive")') == {"c"}
    assert matching('textPayload:(NOT "1011")') == {"a", "b", "d", "e"}
    assert matching("severity=(ERROR OR WARNING)") == {"b", "d", "e"}


def test_global_search_over_every_value() -> None:
    """A bare word or quoted string searches all values of the entry, case-insensitively."""
    assert matching("c-8f14e45f") == {"b"}
    assert matching('"KEEPALIVE PING"') == {"b", "c"}
    assert matching("203.0.113.24") == {"a"}


def test_snake_case_and_quoted_path_segments() -> None:
    """http_request.status, log_name and labels."a/b" reach the same fields."""
    assert matching("http_request.status=101") == {"a"}
    assert matching("http_request.response_size=48213") == {"a"}
    assert matching('log_name:"stderr"') == {"c"}
    job = {"logName": "x", "labels": {"run.googleapis.com/execution_name": "job-abc"}}
    assert compile_filter('labels."run.googleapis.com/execution_name"="job-abc"')(job)


def test_lists_fan_out_like_repeated_fields() -> None:
    """A path through a list matches when any element matches."""
    entry = {"jsonPayload": {"events": [{"code": 1000}, {"code": 1011}]}}
    assert compile_filter("jsonPayload.events.code=1011")(entry)
    assert not compile_filter("jsonPayload.events.code=1006")(entry)


def test_empty_filter_matches_everything() -> None:
    """An empty or blank filter selects every entry."""
    assert matching("") == set("abcde")
    assert matching("  \n ") == set("abcde")


NEGATIVE = [
    ("severity>=LOUD", "LOUD"),
    ('timestamp>="yesterday"', "yesterday"),
    ("severity>=ERROR AND", "end of the filter"),
    ("(severity>=ERROR", "parenthesis"),
    ("severity>=ERROR)", "')'"),
    ('textPayload:"unterminated', "unterminated"),
    ("=ERROR", "'=ERROR'"),
    ("jsonPayload.x=", "no value"),
    ("sample(insertId, 0.1)", "sample()"),
    ('SEARCH("hello")', "SEARCH()"),
    ('textPayload=~"("', "regular expression"),
    ("AND severity>=ERROR", "AND"),
    ("log_id(requests)", "log_id"),
    ("a." + "b" * 3 + ".=1", "empty field name"),
]


@pytest.mark.parametrize(("text", "needle"), NEGATIVE, ids=[t for t, _ in NEGATIVE])
def test_errors_name_position_and_token(text: str, needle: str) -> None:
    """Bad or unsupported filters raise FilterSyntaxError naming the place and what was found."""
    with pytest.raises(FilterSyntaxError) as info:
        compile_filter(text)
    message = info.value.message
    assert "line 1, column" in message and "offset" in message
    assert needle in message
    assert info.value.expected and info.value.hint


def test_too_long_filter_is_refused() -> None:
    """A filter over the API's 20,000-character limit is refused."""
    with pytest.raises(FilterSyntaxError, match="20000"):
        compile_filter("severity>=ERROR " * 2000)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab.=:<>!~-()" \nANDORT*1')), max_size=30))
def test_parser_never_fails_otherwise(text: str) -> None:
    """Any text either compiles to a total predicate or raises FilterSyntaxError."""
    try:
        predicate = compile_filter(text)
    except FilterSyntaxError:
        return
    for entry in ENTRIES.values():
        assert predicate(entry) in (True, False)


def test_parse_and_format_timestamps() -> None:
    """RFC 3339 times in any offset become epoch nanoseconds and print back Z-normalized."""
    ns = parse_timestamp_ns("2024-05-14T11:00:00.123456789+02:00")
    assert ns is not None
    assert format_timestamp_ns(ns) == "2024-05-14T09:00:00.123456789Z"
    assert (
        parse_timestamp_ns("2024-05-14T09:00:00Z")
        == int(datetime(2024, 5, 14, 9, tzinfo=UTC).timestamp()) * 10**9
    )
    assert format_timestamp_ns(parse_timestamp_ns("2024-05-14T09:00:00.5-00:30") or 0) == (
        "2024-05-14T09:30:00.500Z"
    )
    assert parse_timestamp_ns("2024-13-01T00:00:00Z") is None
    assert parse_timestamp_ns("2023-02-29T00:00:00Z") is None
    assert parse_timestamp_ns("2024-02-29T24:00:00Z") is None
    assert parse_timestamp_ns("not a time") is None
    assert parse_timestamp_ns(12) is None


# LogQuery.to_filter(): every parameter combination against an independent reference.

START = datetime(2024, 5, 14, 9, tzinfo=UTC)
END = START + timedelta(hours=2)
SEVERITIES = (None, "WARNING", "ERROR")


def _population() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    kinds = ["requests", "stdout", "stderr", "varlog%2Fsystem", "activity"]
    times = [
        "2024-05-14T08:59:59.999999999Z",
        "2024-05-14T09:00:00Z",
        "2024-05-14T12:30:00+02:00",
        "2024-05-14T10:59:59.999Z",
        "2024-05-14T11:00:00Z",
    ]
    severities = [None, "INFO", "WARNING", "ERROR", "CRITICAL"]
    combos = itertools.product(
        ("acme-prod", "other-proj"),
        ("ws-gateway", "api"),
        ("00001-a", "00002-b"),
        ("europe-west1", "us-central1"),
    )
    for i, (project, service, rev, region) in enumerate(combos):
        for j, kind in enumerate(kinds):
            entry: dict[str, Any] = {
                "insertId": f"{i}-{j}",
                "logName": f"projects/{project}/logs/run.googleapis.com%2F{kind}",
                "resource": {
                    "type": "cloud_run_revision" if (i + j) % 7 else "cloud_run_job",
                    "labels": {
                        "service_name": service,
                        "revision_name": f"{service}-{rev}",
                        "location": region,
                    },
                },
                "timestamp": times[(i + j) % len(times)],
            }
            severity = severities[(i * 3 + j) % len(severities)]
            if severity:
                entry["severity"] = severity
            if (i + 2 * j) % 3 == 0:
                entry["jsonPayload"] = {"close_code": 1011 if j % 2 else 1000}
            out.append(entry)
    return out


POPULATION = _population()
ALL_KINDS = DEFAULT_LOG_KINDS


def _reference(q: LogQuery, e: dict[str, Any]) -> bool:
    labels = e["resource"]["labels"]
    if e["resource"]["type"] != "cloud_run_revision":
        return False
    if q.service and labels["service_name"] != q.service:
        return False
    if q.revision and labels["revision_name"] != q.revision:
        return False
    if q.region and labels["location"] != q.region:
        return False
    when = datetime.fromisoformat(e["timestamp"].replace("999999999Z", "999999Z"))
    if not q.start <= when < q.end:
        return False
    if set(q.log_kinds) != set(ALL_KINDS) and (
        not e["logName"].startswith(f"projects/{q.project}/logs/")
        or log_kind_of(e["logName"]) not in q.log_kinds
    ):
        return False
    if q.severity and SCHEMA_RANK[e.get("severity", "DEFAULT")] < SCHEMA_RANK[q.severity]:
        return False
    return not q.extra_filter or e.get("jsonPayload", {}).get("close_code") == 1011


KIND_SETS = [kinds for n in range(1, 5) for kinds in itertools.combinations(ALL_KINDS, n)]


@pytest.mark.parametrize("kinds", KIND_SETS, ids=["+".join(k) for k in KIND_SETS])
def test_logquery_filters_select_what_the_query_means(kinds: tuple[str, ...]) -> None:
    """Every LogQuery.to_filter() combination selects exactly what its parameters describe."""
    selected_any = False
    for service, revision, region, severity, extra in itertools.product(
        (None, "ws-gateway"),
        (None, "ws-gateway-00002-b"),
        (None, "europe-west1"),
        SEVERITIES,
        (None, "jsonPayload.close_code=1011"),
    ):
        q = LogQuery(
            project="acme-prod",
            start=START,
            end=END,
            service=service,
            revision=revision,
            region=region,
            severity=severity,
            log_kinds=kinds,
            extra_filter=extra,
        )
        predicate = compile_filter(q.to_filter())
        got = [e["insertId"] for e in POPULATION if predicate(e)]
        want = [e["insertId"] for e in POPULATION if _reference(q, e)]
        assert got == want, q.to_filter()
        selected_any = selected_any or bool(want)
    assert selected_any
