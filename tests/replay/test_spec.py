"""Tests for HandshakeSpec, templates, HAR import and log-row import."""

from __future__ import annotations

import json

import pytest

from uvs_analysis.errors import UsageError
from uvs_analysis.replay.spec import (
    HandshakeSpec,
    MessageStep,
    RetryPolicy,
    render,
)


def test_render_expands_templates_in_memory() -> None:
    """{token}, {token_b64url} and {thread_id} are expanded; the spec itself holds no token."""
    spec = HandshakeSpec(url="ws://h/ws?x={user}",
                         subprotocols=("jwt.{token}", "bearer.{token_b64url}"),
                         headers=(("Authorization", "Bearer {token}"),),
                         messages=(MessageStep('{"thread_id": "{thread_id}"}'),), token_env="T")
    r = render(spec, token="tok-123456", attempt=3, user=1)
    assert r.subprotocols == ("jwt.tok-123456", "bearer.dG9rLTEyMzQ1Ng")
    assert r.headers == (("Authorization", "Bearer tok-123456"),)
    assert r.thread_id == "replay-u1-a3"
    assert json.loads(r.messages[0].text)["thread_id"] == "replay-u1-a3"
    assert r.url == "ws://h/ws?x=1"
    assert "tok-123456" not in repr(spec)


def test_render_without_token_is_a_usage_error() -> None:
    """A {token} template with no token says which variable to set."""
    spec = HandshakeSpec(url="ws://h/ws", subprotocols=("jwt.{token}",), token_env="UVS_TOKEN")
    with pytest.raises(UsageError, match="token"):
        render(spec, token=None, attempt=0, user=0)


@pytest.mark.parametrize("field,value", [
    ("subprotocols", ("jwt.eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",)),
    ("headers", (("Authorization", "Bearer " + "aB3xY9" * 7),)),
    ("url", "ws://h/ws?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"),
])
def test_literal_tokens_are_refused(field: str, value: object) -> None:
    """A literal that looks like a token in params is refused with a hint."""
    kwargs = {"url": "ws://h/ws", field: value}
    with pytest.raises(UsageError, match="looks like a token") as info:
        HandshakeSpec(**kwargs)  # type: ignore[arg-type]
    assert "environment variable" in info.value.message


def test_non_websocket_scheme_is_refused() -> None:
    """http:// URLs are refused, naming the expected scheme."""
    with pytest.raises(UsageError, match="ws:// or wss://"):
        HandshakeSpec(url="http://h/ws")


def test_retry_delay_backs_off_and_honours_retry_after() -> None:
    """Backoff doubles up to the cap; Retry-After raises it; jitter scales it."""
    p = RetryPolicy(initial_delay_s=0.5, factor=2, max_delay_s=3, jitter=0.5)
    assert [p.delay(n) for n in range(4)] == [0.5, 1.0, 2.0, 3.0]
    assert p.delay(0, retry_after="2") == 2.0
    assert p.delay(0, rnd=1.0) == 0.75
