"""Masking, error events (with split tracebacks) and error signatures."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.logs.frames import (
    INSTANCE_A,
    INSTANCE_B,
    REV_1,
    REV_2,
    app_row,
    at,
    frame,
    request_row,
    stderr_row,
    traceback_rows,
)
from uvs_analysis.errors import BadInputError, UsageError
from uvs_analysis.logs.schema import empty_frame
from uvs_analysis.logs.signatures import (
    EVENT_COLUMNS,
    MASK_RULES,
    SIGNATURE_COLUMNS,
    Masker,
    MaskRule,
    error_events,
    error_signatures,
    mask,
    signature_text,
)

RACE = (
    "{e} RACE CONDITION DETECTED: Startup phase 'no_app_state' did not reach 'services' "
    "within {t} - this would cause WebSocket 1011 errors"
)
AUTH = (
    "{e} AUTH VALIDATION TIMEOUT: Task was cancelled during authentication for user_id: {u}, "
    "connection: {c}, elapsed: {t}, task_id: None"
)

# Masking


def test_race_condition_variants_collapse_into_one_template() -> None:
    """Durations and every stored form of the emoji give the same template."""
    variants = [
        RACE.format(e="[🔴]", t="2.1s"),
        RACE.format(e="🔴", t="1.2s"),
        RACE.format(e="?", t="2.8s"),
        RACE.format(e="[U+1F534]", t="12s"),
    ]
    assert len({mask(v) for v in variants}) == 1
    queued = variants[0].replace(
        "this would cause WebSocket 1011 errors",
        "WebSocket connections will be queued to prevent 1011 errors",
    )
    assert mask(queued) != mask(variants[0])


def test_auth_timeout_variants_collapse_and_hide_ids() -> None:
    """User ids, connection ids and elapsed times are masked out of the auth-timeout warning."""
    a = AUTH.format(e="🔍", u="demo-user-001", c="main_5b14bc0d", t="0.1011s")
    b = AUTH.format(e="[🔍]", u="alice", c="main_e1999c70", t="2s")
    assert mask(a) == mask(b)
    for raw in ("demo-user-001", "main_5b14bc0d", "0.1011s", "alice"):
        assert raw not in mask(a) + mask(b)


def test_invented_messages_group_by_shape_and_stay_apart_by_text() -> None:
    """Messages never seen before group when only variable parts differ, and not otherwise."""
    same = [
        "Payment 4411 for order ord_9f8e7d failed after 350ms (upstream 10.1.2.3:8443)",
        "Payment 17 for order ord_000001 failed after 2.5s (upstream 192.168.0.20:443)",
        "Payment 9 for order ORD-77x failed after 80ms (upstream [2001:db8::7]:443)",
    ]
    assert len({mask(m) for m in same}) == 1
    other = "Refund 4411 for order ord_9f8e7d failed after 350ms (upstream 10.1.2.3:8443)"
    assert mask(other) != mask(same[0])
    assert mask("Cache miss for key k17") != mask("Cache hit for key k17")


@pytest.mark.parametrize(
    ("text", "secret", "placeholder"),
    [
        ("auth header Bearer abcDEF123456789xyz ok", "abcDEF123456789xyz", "<TOKEN>"),
        ('{"api_key": "AIzaSyA-1234567890abcdef"}', "AIzaSyA-1234567890abcdef", "<TOKEN>"),
        ("login failed password=hunter2!", "hunter2!", "<TOKEN>"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-PART_x", "eyJhbGciOiJIUzI1NiJ9", "<JWT>"),
        (
            "mail to ops.team+alerts@example.co.uk bounced",
            "ops.team+alerts@example.co.uk",
            "<EMAIL>",
        ),
        ("req 123e4567-e89b-12d3-a456-426614174000 done", "123e4567-e89b", "<UUID>"),
        ("from 203.0.113.24:51234 closed", "203.0.113.24", "<IP>"),
        ("peer fe80::1ff:fe23:4567:890a gone", "fe80::1ff:fe23:4567:890a", "<IP>"),
        ("GET wss://h.run.app/ws?room=7&t=abc upgraded", "room=7&t=abc", "<QUERY>"),
        (
            "trace projects/acme/traces/4bf92f3577b34da6a3ce929d0e0e4736 linked",
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "<TRACE>",
        ),
        ("crc 0x1f2e3d4c mismatch", "0x1f2e3d4c", "<HEX>"),
        ("at 2025-09-15T01:50:26.680191+00:00 retry", "2025-09-15", "<TIME>"),
        ("closing conn_42af9 now", "conn_42af9", "<ID>"),
        ("user_id=u_alice joined", "u_alice", "<USER>"),
        ("[🚫] Rejecting WebSocket connection", "🚫", "<EMOJI>"),
    ],
)
def test_each_kind_of_variable_part_is_masked(text: str, secret: str, placeholder: str) -> None:
    """Each rule family replaces its kind of value by its placeholder."""
    masked = mask(text)
    assert secret not in masked
    assert placeholder in masked


def test_question_marks_in_prose_are_kept() -> None:
    """A '?' ending a question is text, not an emoji stored as '?'."""
    assert mask("why did it fail?") == "why did it fail?"
    assert mask("? starting") == "<EMOJI> starting"


def test_custom_masker_applies_its_own_rules_in_order() -> None:
    """A Masker built from other rules uses only those, in the given order."""
    masker = Masker([MaskRule("room", r"room-[a-z]+", "<ROOM>"), MaskRule("r", r"<ROOM>", "X")])
    assert masker.mask("join room-lobby 42") == "join X 42"


def test_patterns_use_no_syntax_re2_lacks() -> None:
    """No lookaround and no backreference appears in any pattern (RE2 accepts neither)."""
    for rule in MASK_RULES:
        assert not re.search(r"\(\?<?[=!]|\(\?<[A-Za-z]|\(\?P=|\\[1-9]", rule.pattern), rule.name
        re.compile(rule.pattern)


def test_re2_masks_exactly_like_python() -> None:
    """Applied with RE2 (through DuckDB's regexp_replace), the table gives the same text."""
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    samples = [
        RACE.format(e="[🔴]", t="2.1s"),
        AUTH.format(e="?", u="demo-user-001", c="main_5b14bc0d", t="0.1011s"),
        "Authorization: Bearer eyJa.eyJb.c from 10.0.0.1:443, 2001:db8::1 and bob@example.com",
        "GET https://x.run.app/ws?token=abc&x=1 took 12ms trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "[U+1F511] at 2025-09-15T01:50:26Z x86_64 0xdeadbeef  spaced  5µs\n? next line",
    ]
    for text in samples:
        via_re2 = text
        for rule in MASK_RULES:
            row = con.execute(
                "select regexp_replace(?, ?, ?, 'g')", [via_re2, rule.pattern, rule.replacement]
            ).fetchone()
            assert row is not None
            via_re2 = row[0]
        assert via_re2 == mask(text)


_STRESS_CHARS = list("ab01fe9:.-_ ?<>@=/[]\n\t'\"&;,)xJUT+%é")
_STRESS_WORDS = ["🔴", "eyJ", "::", "token=", "Bearer ", "user_id: ", "connection: "]
_STRESS = st.sampled_from(
    [*_STRESS_CHARS, *_STRESS_WORDS, "https://h/p?", "<NUM>", "1.2.3.4", "2.1s", "U+1F511"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.text(), st.lists(_STRESS, max_size=25).map("".join)))
def test_mask_is_idempotent(text: str) -> None:
    """Masking a masked text changes nothing."""
    once = mask(text)
    assert mask(once) == once


_WORDS = st.lists(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Z"]), max_size=8),
    max_size=3,
).map(" ".join)
_BEFORE = st.sampled_from([" ", ": ", " (", " '", '"', "\n", "[", ", ", "\t", "="])
_AFTER = st.sampled_from(["", " ", ")", "'", '"', ".", ",", "\n", "]", ";"])
_B64 = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=8)
_SECRETS = st.one_of(
    st.emails(),
    st.ip_addresses().map(str).filter(lambda ip: ip != "::"),
    st.tuples(_B64, _B64, _B64).map(lambda parts: "eyJ" + ".".join(parts)),
    _B64.map(lambda t: f"Bearer {t}Z9"),
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_WORDS, _BEFORE, _SECRETS, _AFTER, _WORDS)
def test_mask_lets_no_email_ip_or_token_through(
    head: str, before: str, secret: str, after: str, tail: str
) -> None:
    """An email, IP address, JWT or bearer token inside any text does not survive masking."""
    text = head + before + secret + after + tail
    assert mask(text).count(secret) < text.count(secret)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["token", "api_key", "password", "access_token", "X-Api-Key", "client_secret"]),
    st.sampled_from(["=", ": ", '": "', " = "]),
    _B64,
)
def test_mask_hides_values_of_secret_keys(key: str, sep: str, value: str) -> None:
    """The value of a secret-looking key (token=..., "api_key": "...") is masked."""
    masked = mask(f"sending {key}{sep}{value} upstream")
    assert value not in masked
    assert key in masked


# Error events


def test_severity_floor_selects_the_rows() -> None:
    """INFO and WARNING rows are not errors by default; a lower floor takes WARNING in."""
    data = frame(
        app_row(1, "fine"),
        app_row(2, "Cannot wait for startup phase - no app_state available", "WARNING"),
        app_row(3, "WebSocket error: boom", "ERROR"),
        app_row(4, "database down", "CRITICAL"),
    )
    assert list(error_events(data)["message"]) == ["WebSocket error: boom", "database down"]
    assert len(error_events(data, min_severity="warning")) == 3
    with pytest.raises(UsageError, match="min_severity 'LOUD'"):
        error_events(data, min_severity="LOUD")


def test_split_traceback_becomes_one_error_event() -> None:
    """Stderr lines of one traceback (severity DEFAULT) are one ERROR event named by its end."""
    lines = traceback_rows(10, "RuntimeError: Need to call 'accept' first (conn 5b14bc0d)")
    data = frame(app_row(9, "before", "ERROR"), lines, stderr_row(20, "INFO: shutting down"))
    events = error_events(data)
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert len(events) == 2
    tb = events.iloc[1]
    assert tb["lines"] == len(lines)
    assert tb["severity"] == "ERROR"
    assert tb["message"] == "\n".join(r["message"] for r in lines)
    assert tb["signature_text"] == lines[-1]["message"]
    assert tb["template"] == "RuntimeError: Need to call 'accept' first (conn <HEX>)"
    assert tb["insert_id"] == lines[0]["insert_id"]
    assert tb["timestamp"] == at(10)


def test_interleaved_tracebacks_of_two_instances_stay_apart() -> None:
    """Two instances writing tracebacks at the same moments give two events with their own lines."""
    a = traceback_rows(5, "KeyError: 'user'", instance_id=INSTANCE_A)
    b = traceback_rows(5.0005, "TimeoutError: redis", instance_id=INSTANCE_B, revision=REV_2)
    events = error_events(frame(*sorted(a + b, key=lambda r: r["timestamp"])))
    assert sorted(events["signature_text"]) == ["KeyError: 'user'", "TimeoutError: redis"]
    by_instance = events.set_index("instance_id")
    assert by_instance.loc[INSTANCE_B, "revision"] == REV_2
    assert "redis" not in str(by_instance.loc[INSTANCE_A, "message"])


def test_a_late_line_is_not_joined_to_a_traceback() -> None:
    """A line more than gap_s after the previous one starts afresh."""
    lines = traceback_rows(5, "ValueError: late")
    lines[-1]["timestamp"] = at(9)
    events = error_events(frame(lines))
    assert len(events) == 1
    assert events.iloc[0]["lines"] == len(lines) - 1
    assert "late" not in events.iloc[0]["message"]
    assert len(error_events(frame(lines), gap_s=5.0).iloc[0]["message"].splitlines()) == len(lines)


def test_chained_exceptions_are_one_event_named_by_the_final_exception() -> None:
    """A traceback with 'During handling ...' and a second traceback is one event."""
    first = traceback_rows(1, "KeyError: 'x'")
    chain = [
        stderr_row(1.01, ""),
        stderr_row(1.011, "During handling of the above exception, another exception occurred:"),
        stderr_row(1.012, ""),
    ]
    second = traceback_rows(1.013, "RuntimeError: handler failed")
    events = error_events(frame(first, chain, second, stderr_row(1.5, "next request")))
    assert len(events) == 1
    assert events.iloc[0]["signature_text"] == "RuntimeError: handler failed"
    assert events.iloc[0]["lines"] == len(first) + len(chain) + len(second)


def test_a_traceback_inside_one_message_is_signed_by_lead_and_exception() -> None:
    """A logger.exception message keeps its own first line and the final exception line."""
    text = (
        "WebSocket error: handler crashed\nTraceback (most recent call last):\n"
        '  File "a.py", line 3, in f\n    g()\nValueError: bad frame 17'
    )
    assert signature_text(text) == "WebSocket error: handler crashed | ValueError: bad frame 17"
    assert signature_text("one\ntwo") == "one"


def test_request_errors_keep_their_status_in_the_template() -> None:
    """A 502 and a 504 on the same path are two templates; the path's ids are masked."""
    data = frame(
        request_row(1, 502, path="/api/threads/th_81f2"),
        request_row(2, 502, path="/api/threads/th_0a99"),
        request_row(3, 504, path="/api/threads/th_81f2", message="The request has been terminated"),
    )
    sigs = error_signatures(data)
    assert dict(zip(sigs["template"], sigs["count"], strict=True)) == {
        "HTTP 502 GET /api/threads/<ID>": 2,
        "HTTP 504 GET /api/threads/<ID>: The request has been terminated": 1,
    }


# Error signatures


def test_signatures_count_and_describe_each_template() -> None:
    """Counts, first/last seen, revisions, instances, max severity, example and insertIds."""
    rows = [
        app_row(1, RACE.format(e="[🔴]", t="2.1s"), "ERROR"),
        app_row(
            5, RACE.format(e="?", t="1.2s"), "CRITICAL", revision=REV_2, instance_id=INSTANCE_B
        ),
        app_row(9, RACE.format(e="🔴", t="2.8s"), "ERROR", revision=REV_2),
        app_row(
            3, "WebSocket error: Object of type WebSocketState is not JSON serializable", "ERROR"
        ),
    ]
    sigs = error_signatures(frame(rows), max_examples=2)
    assert list(sigs.columns) == list(SIGNATURE_COLUMNS)
    assert list(sigs["count"]) == [3, 1]
    race = sigs.iloc[0]
    assert race["first_seen"] == at(1) and race["last_seen"] == at(9)
    assert race["revisions"] == f"{REV_1},{REV_2}"
    assert race["instances"] == 2
    assert race["severity"] == "CRITICAL"
    assert race["example"] == rows[0]["message"]
    assert race["insert_ids"] == f"{rows[0]['insert_id']},{rows[1]['insert_id']}"


def test_signatures_of_a_frame_without_errors_is_empty_with_the_columns() -> None:
    """No errors gives an empty table with the documented columns."""
    for data in (empty_frame(), frame(app_row(1, "ok"))):
        sigs = error_signatures(data)
        assert sigs.empty and list(sigs.columns) == list(SIGNATURE_COLUMNS)


def test_a_frame_without_the_schema_columns_is_refused() -> None:
    """A frame that is not normalized gets a BadInputError naming the missing columns."""
    with pytest.raises(BadInputError, match=r"lacks the columns .*severity"):
        error_signatures(pd.DataFrame({"timestamp": [at(0)], "message": ["x"]}))
    with pytest.raises(UsageError, match="max_examples"):
        error_signatures(empty_frame(), max_examples=0)


def test_a_huge_message_gives_a_bounded_template() -> None:
    """A 10 MB error message is signed by its first 500 characters, not by all of it."""
    from uvs_analysis.logs.signatures import MAX_SIGNATURE_CHARS, signature_text

    text = signature_text("Database unavailable " + "x" * 10_000_000)
    assert len(text) == MAX_SIGNATURE_CHARS and text.endswith("…")
    assert text.startswith("Database unavailable")
