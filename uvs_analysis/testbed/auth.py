"""Handshake authentication as the backend does it: subprotocol, header, query, ticket.

The order is the backend's: a token-bearing subprotocol (``jwt.``, ``jwt-auth.``, ``bearer.``,
``staging-auth.``; the token raw or base64url), then ``Authorization: Bearer``, then the query
parameters ``token``/``jwt``/``auth_token``/``access_token``, then a single-use ticket
(``ticket``/``auth_ticket``/``ticket_id``). Tokens are HS256 JWTs checked against one secret.
Nothing here logs or returns a token.
"""

from __future__ import annotations

import base64
import binascii
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import jwt

__all__ = [
    "BARE_SUBPROTOCOLS",
    "SECRET_ENV",
    "TOKEN_PREFIXES",
    "AuthFailure",
    "Credentials",
    "Identity",
    "TicketStore",
    "decode_subprotocol_token",
    "extract_credentials",
    "mint_token",
    "negotiate_subprotocol",
    "verify_token",
]

TOKEN_PREFIXES: Final = ("jwt-auth.", "jwt.", "bearer.", "staging-auth.")
BARE_SUBPROTOCOLS: Final = ("jwt-auth", "jwt", "bearer", "e2e-testing", "staging-auth",
                            "agent_chat")
QUERY_TOKEN_KEYS: Final = ("token", "jwt", "auth_token", "access_token")
QUERY_TICKET_KEYS: Final = ("ticket", "auth_ticket", "ticket_id")
#: The environment variable that carries the JWT signing secret to the testbed process.
SECRET_ENV: Final = "UVS_TESTBED_JWT_SECRET"
ALGORITHM: Final = "HS256"


class AuthFailure(Exception):
    """Authentication failed; ``kind`` is a short category, ``detail`` a safe message."""

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}")


@dataclass(frozen=True)
class Identity:
    """An authenticated user."""

    user_id: str
    method: str
    expires_at: float | None = None


@dataclass(frozen=True)
class Credentials:
    """What the handshake carried; ``token``/``ticket`` never leave this module's callers."""

    method: str
    token: str | None = None
    ticket: str | None = None
    subprotocol_prefix: str | None = None
    header_present: bool = False

    def __repr__(self) -> str:  # keep secrets out of reprs and tracebacks
        return f"Credentials(method={self.method!r}, header_present={self.header_present})"


def mint_token(secret: str, user_id: str, *, now: float, ttl_s: float = 3600.0) -> str:
    """Mint an HS256 JWT for ``user_id`` valid from ``now`` for ``ttl_s`` seconds."""
    claims = {"sub": user_id, "iat": int(now), "exp": int(now + ttl_s), "iss": "netra-auth-service",
              "token_type": "access"}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: str, *, now: float) -> Identity:
    """Check a JWT's signature and expiry at ``now``; return its user.

    Raises:
        AuthFailure: the token is malformed, badly signed, expired or has no subject.
    """
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM],
                            options={"verify_exp": False, "verify_iat": False})
    except jwt.InvalidSignatureError:
        raise AuthFailure("JWT_VALIDATION", "signature verification failed") from None
    except jwt.PyJWTError as exc:
        raise AuthFailure("JWT_VALIDATION", f"invalid token ({type(exc).__name__})") from None
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp <= now:
        raise AuthFailure("JWT_EXPIRY", "token expired")
    sub = claims.get("sub") or claims.get("user_id")
    if not isinstance(sub, str) or not sub:
        raise AuthFailure("JWT_VALIDATION", "token has no subject")
    return Identity(user_id=sub, method="jwt", expires_at=float(exp) if exp else None)


def _looks_like_jwt(value: str) -> bool:
    parts = value.split(".")
    return len(parts) == 3 and all(parts[:2]) and value.startswith("eyJ")


def decode_subprotocol_token(value: str) -> str | None:
    """The JWT inside a subprotocol value (raw, or base64url with optional padding), or None."""
    if _looks_like_jwt(value):
        return value
    try:
        decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded if _looks_like_jwt(decoded) else None


def negotiate_subprotocol(offered: Sequence[str]) -> tuple[bool, str | None]:
    """Pick the subprotocol to accept with: ``(acceptable, chosen)``.

    A token-bearing entry wins and is echoed whole; otherwise a known bare name; no offer means
    accept without one; an offer with nothing supported is not acceptable.
    """
    if not offered:
        return True, None
    for entry in offered:
        if entry.startswith(TOKEN_PREFIXES) and len(entry) > entry.index(".") + 1:
            return True, entry
    for entry in offered:
        if entry in BARE_SUBPROTOCOLS:
            return True, entry
    return False, None


def extract_credentials(
    subprotocols: Sequence[str], headers: Mapping[str, str], query: Mapping[str, str]
) -> Credentials:
    """Find credentials in the backend's order. ``headers`` keys are lower-case."""
    authorization = headers.get("authorization", "")
    header_present = bool(authorization.strip())
    for entry in subprotocols:
        for prefix in TOKEN_PREFIXES:
            if entry.startswith(prefix):
                token = decode_subprotocol_token(entry[len(prefix):])
                return Credentials("jwt-auth-subprotocol", token=token or "",
                                   subprotocol_prefix=prefix, header_present=header_present)
    if authorization.lower().startswith("bearer "):
        return Credentials("authorization-header", token=authorization[7:].strip(),
                           header_present=True)
    for key in QUERY_TOKEN_KEYS:
        if query.get(key):
            return Credentials("query-param-fallback", token=query[key],
                               header_present=header_present)
    for key in QUERY_TICKET_KEYS:
        if query.get(key):
            return Credentials("ticket-auth", ticket=query[key], header_present=header_present)
    return Credentials("none", header_present=header_present)


class TicketStore:
    """Single-use WebSocket tickets (the backend keeps them in Redis under ``auth:ticket:``)."""

    def __init__(self, *, seed: int, ttl_s: float) -> None:
        self._rng = random.Random(f"{seed}:tickets")
        self._ttl_s = ttl_s
        self._tickets: dict[str, tuple[str, float]] = {}

    @property
    def ttl_s(self) -> float:
        """Lifetime of a new ticket in seconds."""
        return self._ttl_s

    def issue(self, user_id: str, *, now: float) -> str:
        """Create a ticket for ``user_id``; it expires ``ttl_s`` after ``now``."""
        ticket = "tkt_" + "".join(self._rng.choices("0123456789abcdef", k=32))
        self._tickets[ticket] = (user_id, now + self._ttl_s)
        return ticket

    def redeem(self, ticket: str, *, now: float) -> Identity:
        """Consume a ticket once.

        Raises:
            AuthFailure: unknown, already used or expired.
        """
        entry = self._tickets.pop(ticket, None)
        if entry is None:
            raise AuthFailure("TICKET", "ticket not found or already used")
        user_id, expires_at = entry
        if expires_at <= now:
            raise AuthFailure("TICKET", "ticket expired")
        return Identity(user_id=user_id, method="ticket-auth", expires_at=expires_at)
