"""Secret redaction: the one place that knows how tokens travel and how to mask them.

Two layers: the known secrets (the tokens in use) in every form they can take on the wire
(raw, base64url with or without padding, standard base64, URL-encoded, JSON-escaped), and
patterns that catch credentials whatever their value (``Authorization``/``Cookie`` headers,
``Sec-WebSocket-Protocol`` token parts, ``?token=``/``?ticket=`` query values, JWTs).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterable, MutableMapping, Sequence
from typing import Any, Final
from urllib.parse import quote, quote_plus

__all__ = [
    "JWT_PATTERN",
    "MASK",
    "SECRET_HEADERS",
    "SECRET_QUERY_KEYS",
    "TOKEN_PREFIXES",
    "RedactingLogger",
    "Redactor",
    "looks_like_token",
    "secret_forms",
]

MASK: Final = "[REDACTED]"
#: Headers whose value is a credential.
SECRET_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
#: Query parameters whose value is a credential (the backend's auth fallbacks).
SECRET_QUERY_KEYS: Final = (
    "token", "jwt", "auth_token", "access_token", "ticket", "auth_ticket", "ticket_id",
)
#: Subprotocol prefixes that carry a token (``jwt.<token>``).
TOKEN_PREFIXES: Final = ("jwt-auth.", "jwt.", "bearer.", "staging-auth.")

_QUERY_RE: Final = re.compile(
    r"(?i)((?:[?&;]|\b)(?:" + "|".join(SECRET_QUERY_KEYS) + r")=)[^&#\s\"'<>;,]+"
)
_BEARER_RE: Final = re.compile(r"(?i)\b(bearer|basic)(\s+)(?!\[REDACTED\])[^\s\"',;]+")
_PREFIX_RE: Final = re.compile(
    r"(?i)\b((?:jwt-auth|jwt|bearer|staging-auth)\.)(?!\[REDACTED\])[A-Za-z0-9\-_=.+/%]{8,}"
)
JWT_PATTERN: Final = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_HEADER_LINE_RE: Final = re.compile(
    r"(?im)^((?:> |< )?(?:authorization|proxy-authorization|cookie|set-cookie)\s*:\s*).*$"
)
_FRAGMENT_RE: Final = re.compile(r"[A-Za-z0-9_\-.+/=%]{12,}")
_MIN_SECRET = 6


def secret_forms(secret: str) -> tuple[str, ...]:
    """Every form of ``secret`` that can appear on the wire, longest first."""
    raw = secret.encode()
    b64u = base64.urlsafe_b64encode(raw).decode()
    b64 = base64.b64encode(raw).decode()
    forms = {
        secret,
        b64u,
        b64u.rstrip("="),
        b64,
        b64.rstrip("="),
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        quote(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(json.dumps(secret)[1:-1], safe=""),
    }
    return tuple(sorted((f for f in forms if len(f) >= _MIN_SECRET), key=len, reverse=True))


def looks_like_token(value: str) -> bool:
    """Whether a literal looks like a credential (a JWT or a long opaque string)."""
    if JWT_PATTERN.search(value):
        return True
    for part in re.split(r"[\s,;:&?/.]", value):
        part = part.rstrip("=")
        if len(part) < 32 or re.fullmatch(r"[A-Za-z0-9_\-+=]+", part) is None:
            continue
        mixed = (re.search(r"[a-z]", part) and re.search(r"[A-Z]", part)
                 and re.search(r"[0-9]", part))
        if mixed or (len(part) >= 40 and re.fullmatch(r"[0-9a-fA-F]+", part)):
            return True
    return False


class Redactor:
    """Masks secrets in text, headers and URLs.

    Args:
        secrets: the tokens (and tickets) in use; each is masked in every wire form.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= _MIN_SECRET:
                forms.update(secret_forms(secret))
        self._forms = tuple(sorted(forms, key=len, reverse=True))
        self._secret_re = (
            re.compile("|".join(re.escape(f) for f in self._forms)) if self._forms else None
        )

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        """A redactor that also masks ``secrets``."""
        return Redactor((*self._forms, *secrets))

    def text(self, value: str) -> str:
        """Mask every known secret and every credential pattern in ``value``."""
        if self._secret_re is not None:
            value = self._secret_re.sub(MASK, value)
        if "=" in value:
            value = _QUERY_RE.sub(r"\1" + MASK, value)
        value = _BEARER_RE.sub(r"\1\2" + MASK, value)
        value = _PREFIX_RE.sub(r"\1" + MASK, value)
        if "eyJ" in value:
            value = JWT_PATTERN.sub(MASK, value)
        if ":" in value:
            value = _HEADER_LINE_RE.sub(r"\1" + MASK, value)
        return value

    def fragments(self, value: str) -> str:
        """``text`` plus masking of any 12+ character piece of a known secret (for elided
        log lines that show only part of a token)."""
        value = self.text(value)
        if not self._forms:
            return value

        def mask(match: re.Match[str]) -> str:
            word = match.group(0)
            pieces = {word[i:i + 12] for i in range(len(word) - 11)}
            leaked = any(piece in form for piece in pieces for form in self._forms)
            return MASK if leaked else word

        return _FRAGMENT_RE.sub(mask, value)

    def header(self, name: str, value: str) -> str:
        """Mask one header value (credential headers entirely, the scheme kept)."""
        lower = name.lower()
        if lower in SECRET_HEADERS:
            scheme, _, rest = value.partition(" ")
            if lower.endswith("authorization") and rest:
                return f"{scheme} {MASK}"
            return MASK
        if lower == "sec-websocket-protocol":
            return ", ".join(self.subprotocol(p.strip()) for p in value.split(","))
        return self.text(value)

    def headers(self, pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        """Mask a list of header pairs."""
        return tuple((name, self.header(name, value)) for name, value in pairs)

    def subprotocol(self, value: str) -> str:
        """Mask the token part of a subprotocol such as ``jwt.<token>``."""
        for prefix in TOKEN_PREFIXES:
            if value.lower().startswith(prefix) and len(value) > len(prefix):
                return value[: len(prefix)] + MASK
        return self.text(value)

    def subprotocols(self, values: Sequence[str]) -> tuple[str, ...]:
        """Mask a list of subprotocols."""
        return tuple(self.subprotocol(v) for v in values)

    def url(self, value: str) -> str:
        """Mask credential query values, userinfo and known secrets in a URL."""
        value = re.sub(r"(//[^/@\s:]*:)[^/@\s]*@", r"\1" + MASK + "@", value)
        return self.text(value)


class RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger adapter that formats each record and masks it before it is emitted.

    websockets logs request headers verbatim at DEBUG; give it this adapter as ``logger=``.
    """

    def __init__(self, logger: logging.Logger, redactor: Redactor) -> None:
        super().__init__(logger, {})
        self.redactor = redactor

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        kwargs.pop("extra", None)
        self.logger.log(level, "%s", self.redactor.fragments(text), **kwargs)
