"""What to replay: HandshakeSpec, built by hand, from a Chrome DevTools HAR, or from a log row.

Templates may use ``{token}``, ``{token_b64url}``, ``{ticket}``, ``{thread_id}``, ``{user_id}``,
``{user}`` and ``{attempt}``. The token itself never appears in a spec: it is read from the
environment variable ``token_env`` at run time and expanded in memory only (``render``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from uvs_analysis.errors import UsageError
from uvs_analysis.replay.redact import (
    looks_like_token,
)

__all__ = [
    "DEFAULT_MESSAGE",
    "HandshakeSpec",
    "MessageStep",
    "Rendered",
    "RetryPolicy",
    "render",
    "ticket_url_for",
]

#: The message a replay sends by default: start an agent run on the try's own thread.
DEFAULT_MESSAGE: Final = (
    '{"type": "start_agent", "payload": {"user_request": "Analyse my costs", '
    '"thread_id": "{thread_id}"}, "thread_id": "{thread_id}"}'
)


@dataclass(frozen=True)
class MessageStep:
    """One client message.

    Attributes:
        text: the message template (for binary messages: base64 of the bytes).
        delay_s: seconds to wait after the previous step (or after open) before sending.
        after_type: if set, wait until a message of this type has been received first.
        binary: send ``base64.b64decode(text)`` as a binary message.
    """

    text: str
    delay_s: float = 0.0
    after_type: str | None = None
    binary: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """A real client's reconnect policy: exponential backoff, honouring Retry-After.

    Attributes:
        max_retries: retries after the first try (0 disables retrying).
        initial_delay_s, factor, max_delay_s: backoff ``min(initial * factor**n, max)``.
        jitter: fraction of the delay added at random (seeded by the runner).
        retry_statuses: handshake HTTP statuses that are retried.
        retry_close_codes: close codes retried when the server closed before the first event.
        retry_outcomes: outcomes retried whatever their code.
    """

    max_retries: int = 2
    initial_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 8.0
    jitter: float = 0.0
    retry_statuses: tuple[int, ...] = (429, 500, 502, 503, 504)
    retry_close_codes: tuple[int, ...] = (1006, 1011, 1012, 1013)
    retry_outcomes: tuple[str, ...] = ("connect_failed", "handshake_timeout", "dns_failure")

    def delay(self, retry: int, *, retry_after: str | None = None, rnd: float = 0.0) -> float:
        """Seconds to wait before retry number ``retry`` (0-based); ``rnd`` in [0, 1)."""
        base = min(self.initial_delay_s * self.factor**retry, self.max_delay_s)
        if retry_after is not None and retry_after.strip().isdigit():
            base = max(base, min(float(retry_after.strip()), self.max_delay_s))
        return base * (1.0 + self.jitter * rnd)


@dataclass(frozen=True)
class HandshakeSpec:
    """A WebSocket handshake and agent run to replay.

    Attributes:
        url: ``ws://`` or ``wss://`` URL template (query values may be templates).
        headers: extra request headers as (name, value template) pairs.
        subprotocols: offered subprotocol templates, e.g. ``("jwt.{token}",)``.
        origin: the Origin header, or None for none.
        compression: negotiate permessage-deflate.
        token_env: name of the environment variable holding the token (never the token).
        ticket_url: if set, POST there (Authorization: Bearer token) for a single-use ticket
            and connect with ``?ticket=``.
        health_urls: HTTP URLs probed before, during and after the attempts.
        messages: what the client sends after open.
        expected_types: server message types a capture saw (from a HAR), in order.
        final_types: the stop rule: the run is complete at a message whose type (or
            ``type:agent_name``) is listed here.
        hold_s: with no messages, how long to listen after open before closing.
        linger_s: after the stop rule, how long to keep reading (late events still count).
        open_timeout_s: ticket + DNS + TCP + TLS + HTTP upgrade.
        run_timeout_s: from open to completion.
        close_timeout_s: how long the client waits for the closing handshake.
        ping_interval_s, ping_timeout_s: client keepalive (None disables).
        max_size: largest message accepted (bytes).
        max_text_chars: payload characters kept per recorded message.
        max_frames_kept: messages kept per try (the rest are counted).
        user_agent: the User-Agent header (None: the library's default).
        retry: the reconnect policy.
        thread_prefix: thread ids are ``{thread_prefix}-u{user}-a{attempt}``.
    """

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    subprotocols: tuple[str, ...] = ()
    origin: str | None = None
    compression: bool = True
    token_env: str | None = None
    ticket_url: str | None = None
    health_urls: tuple[str, ...] = ()
    messages: tuple[MessageStep, ...] = ()
    expected_types: tuple[str, ...] = ()
    final_types: tuple[str, ...] = ("agent_completed:reporting", "final_report")
    hold_s: float = 0.5
    linger_s: float = 0.1
    open_timeout_s: float = 10.0
    run_timeout_s: float = 60.0
    close_timeout_s: float = 5.0
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    max_size: int = 2**20
    max_text_chars: int = 65536
    max_frames_kept: int = 1_000_000
    user_agent: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    thread_prefix: str = "replay"

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme
        if scheme not in ("ws", "wss"):
            raise UsageError(
                f"WebSocket URL {self._safe_url()!r} has scheme {scheme or 'none'!r}",
                expected="a ws:// or wss:// URL",
                hint="write the URL as ws://host:port/path or wss://host/path",
            )
        for where, value in self._templates():
            stripped = value
            for name in _PLACEHOLDERS:
                stripped = stripped.replace("{" + name + "}", "")
            if looks_like_token(stripped):
                raise UsageError(
                    f"{where} holds a literal that looks like a token",
                    expected="a template such as 'jwt.{token}' with the token in an "
                    "environment variable",
                    hint="put the token in an environment variable and pass its name "
                    "(--token-env / token_env)",
                )

    def _safe_url(self) -> str:
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    def _templates(self) -> list[tuple[str, str]]:
        found = [("url", self.url)]
        found += [(f"header {name}", value) for name, value in self.headers]
        found += [("subprotocol", value) for value in self.subprotocols]
        if self.ticket_url:
            found.append(("ticket_url", self.ticket_url))
        return found

    @property
    def needs_token(self) -> bool:
        """Whether any template uses the token (or the ticket step needs it)."""
        return self.ticket_url is not None or any(
            "{token" in value for _, value in self._templates()
        ) or any("{token" in m.text for m in self.messages)

    def with_changes(self, **changes: Any) -> HandshakeSpec:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)


_PLACEHOLDERS: Final = (
    "token", "token_b64url", "ticket", "thread_id", "user_id", "user", "attempt",
)


@dataclass(frozen=True)
class Rendered:
    """A spec expanded for one try, secrets included: keep in memory only, never record."""

    url: str
    headers: tuple[tuple[str, str], ...]
    subprotocols: tuple[str, ...]
    messages: tuple[MessageStep, ...]
    thread_id: str


def render(
    spec: HandshakeSpec,
    *,
    token: str | None,
    attempt: int,
    user: int,
    user_id: str | None = None,
    ticket: str | None = None,
) -> Rendered:
    """Expand every template of ``spec`` for one try."""
    thread_id = f"{spec.thread_prefix}-u{user}-a{attempt}"
    values = {
        "thread_id": thread_id,
        "user_id": user_id or f"user-{user}",
        "user": str(user),
        "attempt": str(attempt),
        "ticket": ticket or "",
    }
    if token is not None:
        values["token"] = token
        values["token_b64url"] = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")

    def expand(template: str) -> str:
        if "{" not in template:
            return template
        for name, value in values.items():
            template = template.replace("{" + name + "}", value)
        if "{token" in template:
            raise UsageError(
                "a template uses {token} but no token is available",
                expected="the environment variable named by token_env to hold the token",
                hint="export the token (e.g. export UVS_TOKEN=...) and pass --token-env UVS_TOKEN",
            )
        return template

    url = expand(spec.url)
    if ticket is not None:
        url = _with_query(url, "ticket", ticket)
    return Rendered(
        url=url,
        headers=tuple((name, expand(value)) for name, value in spec.headers),
        subprotocols=tuple(expand(p) for p in spec.subprotocols),
        messages=tuple(replace(m, text=expand(m.text)) for m in spec.messages),
        thread_id=thread_id,
    )


def _with_query(url: str, key: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != key]
    query.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(query)))


def ticket_url_for(ws_url: str) -> str:
    """The backend's ticket endpoint for a WebSocket URL (same host, /api/websocket/ticket)."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "/api/websocket/ticket", "", ""))
