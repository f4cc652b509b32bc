"""Tests for secret redaction."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uvs_analysis.replay.redact import (
    MASK,
    RedactingLogger,
    Redactor,
    looks_like_token,
    secret_forms,
)

CANARY = 'canary/Tok+en"=q\\é?&x'


def _forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [
        secret,
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
        quote(secret, safe=""),
        json.dumps(secret)[1:-1],
    ]


@pytest.mark.parametrize("form", _forms(CANARY))
def test_every_wire_form_of_the_canary_is_masked(form: str) -> None:
    """Raw, base64url, URL-encoded and JSON-escaped canaries vanish from text."""
    text = f'{{"note": "before {form} after"}}'
    out = Redactor([CANARY]).text(text)
    assert form not in out
    assert MASK in out


def test_secret_forms_include_each_encoding() -> None:
    """secret_forms lists every encoding, longest first."""
    forms = secret_forms(CANARY)
    for form in _forms(CANARY):
        assert form in forms
    assert list(forms) == sorted(forms, key=len, reverse=True)


def test_headers_mask_credentials_and_subprotocol_tokens() -> None:
    """Authorization keeps its scheme, Cookie is masked, subprotocol tokens lose their value."""
    r = Redactor()
    out = dict(r.headers([
        ("Authorization", "Bearer abc.def.ghi"),
        ("Cookie", "session=s3cr3t"),
        ("Sec-WebSocket-Protocol", "jwt.abcdefghijklmnop, agent_chat"),
        ("X-Other", "plain"),
    ]))
    assert out["Authorization"] == f"Bearer {MASK}"
    assert out["Cookie"] == MASK
    assert out["Sec-WebSocket-Protocol"] == f"jwt.{MASK}, agent_chat"
    assert out["X-Other"] == "plain"


def test_url_query_credentials_are_masked() -> None:
    """token, ticket and jwt query values are masked; other values stay."""
    out = Redactor().url("wss://h/ws?mode=main&token=abc123&ticket=tk_9&jwt=x")
    assert "abc123" not in out and "tk_9" not in out
    assert "mode=main" in out
    assert out.count(MASK) == 3


def test_patterns_catch_unknown_jwts_and_header_lines() -> None:
    """A JWT nobody registered and an Authorization header line are masked anyway."""
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    out = Redactor().text(f"> Authorization: Bearer {jwt}\nsaw {jwt}")
    assert jwt not in out


def test_logger_adapter_masks_formatted_records(caplog: pytest.LogCaptureFixture) -> None:
    """websockets-style %-formatted DEBUG lines reach handlers redacted."""
    logger = logging.getLogger("uvs_test_redact")
    adapter = RedactingLogger(logger, Redactor([CANARY]))
    with caplog.at_level(logging.DEBUG, logger="uvs_test_redact"):
        adapter.debug("> %s: %s", "Sec-WebSocket-Protocol", f"jwt.{CANARY}")
    assert caplog.records
    assert CANARY not in caplog.text


def test_looks_like_token() -> None:
    """JWTs and long opaque strings look like tokens; short words do not."""
    assert looks_like_token("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig")
    assert looks_like_token("aB3" * 12)
    assert looks_like_token("0123456789abcdef" * 3)
    assert not looks_like_token("wss://netra-backend-staging-701982941522.us-central1.run.app/ws")
    assert not looks_like_token("jwt.{token}")
    assert not looks_like_token("Bearer {token}")


@given(st.text(min_size=8, max_size=40), st.text(max_size=60), st.text(max_size=60))
def test_redaction_never_lets_the_secret_through(secret: str, before: str, after: str) -> None:
    """Whatever surrounds it, a registered secret never survives redaction."""
    out = Redactor([secret]).text(before + secret + after)
    assert secret not in out


@given(st.text(max_size=200))
def test_redaction_is_idempotent(text: str) -> None:
    """Redacting twice gives the same text as redacting once."""
    r = Redactor(["s3cret-value"])
    once = r.text(text)
    assert r.text(once) == once
