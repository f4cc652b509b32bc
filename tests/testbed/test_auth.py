"""Handshake authentication: token forms, negotiation, credential order, tickets."""

from __future__ import annotations

import base64

import pytest

from uvs_analysis.testbed.auth import (
    AuthFailure,
    TicketStore,
    decode_subprotocol_token,
    extract_credentials,
    mint_token,
    negotiate_subprotocol,
    verify_token,
)

SECRET = "s3cret-for-tests-only-0123456789abcdef"
NOW = 1_760_000_000.0


def test_minted_token_verifies_until_it_expires() -> None:
    """A minted token gives its user back, and is refused once expired."""
    token = mint_token(SECRET, "user-42", now=NOW, ttl_s=60)
    assert verify_token(token, SECRET, now=NOW + 30).user_id == "user-42"
    with pytest.raises(AuthFailure) as info:
        verify_token(token, SECRET, now=NOW + 61)
    assert info.value.kind == "JWT_EXPIRY"


@pytest.mark.parametrize("secret, token", [("other-secret-0123456789abcdefghij", None),
                                           (SECRET, "eyJhbGciOiJIUzI1NiJ9.e30.xxx"),
                                           (SECRET, "not a jwt")])
def test_bad_tokens_are_refused(secret: str, token: str | None) -> None:
    """Wrong signature, no subject and garbage all raise AuthFailure, never a library error."""
    token = token or mint_token(SECRET, "u", now=NOW)
    with pytest.raises(AuthFailure):
        verify_token(token, secret, now=NOW)


def test_subprotocol_token_raw_and_base64url() -> None:
    """A subprotocol value is the JWT itself or its base64url form (padding optional)."""
    token = mint_token(SECRET, "u", now=NOW)
    padded = base64.urlsafe_b64encode(token.encode()).decode()
    assert decode_subprotocol_token(token) == token
    assert decode_subprotocol_token(padded) == token
    assert decode_subprotocol_token(padded.rstrip("=")) == token
    assert decode_subprotocol_token("not-a-token") is None


@pytest.mark.parametrize("offered, expected", [
    ([], (True, None)),
    (["agent_chat", "jwt-auth.abc"], (True, "jwt-auth.abc")),
    (["jwt-auth"], (True, "jwt-auth")),
    (["graphql-ws"], (False, None)),
    (["jwt."], (False, None)),
])
def test_negotiation_prefers_token_bearing_entries(offered: list[str],
                                                   expected: tuple[bool, str | None]) -> None:
    """Token-bearing entries are echoed whole; bare names next; anything else is refused."""
    assert negotiate_subprotocol(offered) == expected


def test_credentials_follow_the_backend_order() -> None:
    """Subprotocol beats header beats query token beats ticket; nothing found is 'none'."""
    token = mint_token(SECRET, "u", now=NOW)
    both = extract_credentials([f"bearer.{token}"], {"authorization": "Bearer other"},
                               {"token": "q"})
    assert (both.method, both.token, both.header_present) == (
        "jwt-auth-subprotocol", token, True)
    assert extract_credentials([], {"authorization": "Bearer h"}, {"token": "q"}).token == "h"
    assert extract_credentials([], {}, {"access_token": "q"}).method == "query-param-fallback"
    assert extract_credentials([], {}, {"ticket": "t"}).ticket == "t"
    assert extract_credentials(["agent_chat"], {}, {}).method == "none"
    assert token not in repr(both)


def test_tickets_are_single_use_and_expire() -> None:
    """A ticket redeems once; reuse and expiry are refused."""
    store = TicketStore(seed=1, ttl_s=10)
    ticket = store.issue("u1", now=NOW)
    assert store.redeem(ticket, now=NOW + 1).user_id == "u1"
    with pytest.raises(AuthFailure):
        store.redeem(ticket, now=NOW + 2)
    late = store.issue("u2", now=NOW)
    with pytest.raises(AuthFailure, match="expired"):
        store.redeem(late, now=NOW + 11)
