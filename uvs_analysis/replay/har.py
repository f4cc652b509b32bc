"""Build a HandshakeSpec from a capture: a Chrome DevTools HAR export or a Cloud Run request log.

Credentials found in a capture are never copied: they become ``{token}`` templates (tickets a
ticket step), and the token must come from the environment variable ``token_env``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from uvs_analysis.errors import BadInputError, UsageError
from uvs_analysis.replay.redact import (
    JWT_PATTERN,
    SECRET_QUERY_KEYS,
    TOKEN_PREFIXES,
    looks_like_token,
)
from uvs_analysis.replay.spec import HandshakeSpec, MessageStep, ticket_url_for

__all__ = ["spec_from_har", "spec_from_log_row"]

_SKIP_HEADERS: Final = frozenset(
    {
        "host", "connection", "upgrade", "sec-websocket-key", "sec-websocket-version",
        "sec-websocket-extensions", "sec-websocket-protocol", "origin", "user-agent",
        "accept-encoding", "accept-language", "cache-control", "pragma", "cookie",
        "content-length",
    }
)


def _templated_query(url: str) -> tuple[str, bool]:
    """Replace credential query values by ``{token}``; drop tickets. Returns (url, had_ticket)."""
    parts = urlsplit(url)
    had_ticket = False
    query: list[str] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        lower = key.lower()
        if lower in ("ticket", "auth_ticket", "ticket_id"):
            had_ticket = True
            continue
        if lower in SECRET_QUERY_KEYS or looks_like_token(value):
            query.append(f"{key}={{token}}")
        else:
            query.append(urlencode([(key, value)]))
    return urlunsplit(parts._replace(query="&".join(query))), had_ticket


def _templated_subprotocol(value: str) -> str:
    for prefix in TOKEN_PREFIXES:
        if value.lower().startswith(prefix) and len(value) > len(prefix):
            return value[: len(prefix)] + "{token}"
    return value


def _load_har(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputError(
            f"HAR file {path} cannot be read: {exc.strerror or exc}",
            expected="a readable Chrome DevTools HAR export",
        ) from exc
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"HAR file {path} is not UTF-8 text (byte {exc.start})",
            expected="a JSON HAR export",
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputError(
            f"HAR file {path} is not valid JSON: {exc.msg}: line {exc.lineno}, "
            f"column {exc.colno}",
            expected="a JSON HAR export (DevTools > Network > Export HAR)",
            hint="export the HAR again; the file may be truncated",
        ) from exc
    entries = data.get("log", {}).get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise BadInputError(
            f"HAR file {path} has no log.entries list",
            expected='a HAR object {"log": {"entries": [...]}}',
        )
    return cast(dict[str, Any], data)


def spec_from_har(
    path: str | Path,
    *,
    entry: int = 0,
    token_env: str | None = None,
    keep_timing: bool = False,
    **overrides: Any,
) -> HandshakeSpec:
    """Build a spec from a Chrome DevTools HAR export.

    The WebSocket entry (``_resourceType == "websocket"`` or one with ``_webSocketMessages``)
    gives the URL, Origin, User-Agent, subprotocols, compression and extra headers; its
    ``send`` messages become the messages to send, its ``receive`` messages the expected types.
    Credentials found in the capture are replaced by ``{token}`` templates (tickets by a ticket
    step): the token must come from ``token_env``.

    Args:
        path: the HAR file.
        entry: which WebSocket entry (0-based, among WebSocket entries only).
        token_env: environment variable holding the token.
        keep_timing: keep the capture's gaps between sent messages (else send at once).
        **overrides: any other HandshakeSpec field.

    Raises:
        BadInputError: unreadable or malformed HAR, no WebSocket entry, entry out of range.
    """
    path = Path(path)
    har = _load_har(path)
    ws_entries = [
        e
        for e in har["log"]["entries"]
        if isinstance(e, dict)
        and (e.get("_resourceType") == "websocket" or "_webSocketMessages" in e)
    ]
    if not ws_entries:
        raise BadInputError(
            f"HAR file {path} has no WebSocket entry among its {len(har['log']['entries'])} "
            "entries",
            expected='an entry with "_resourceType": "websocket" and "_webSocketMessages"',
            hint="record the session with DevTools open on the Network tab (WS filter) "
            "before connecting",
        )
    if not 0 <= entry < len(ws_entries):
        raise UsageError(
            f"HAR entry {entry} does not exist in {path}",
            expected=f"an index from 0 to {len(ws_entries) - 1}",
        )
    chosen = ws_entries[entry]
    request: dict[str, Any] = chosen["request"] if isinstance(chosen.get("request"), dict) else {}
    url = str(request.get("url", ""))
    if url.startswith("https://"):
        url = "wss://" + url[len("https://"):]
    elif url.startswith("http://"):
        url = "ws://" + url[len("http://"):]
    url, had_ticket = _templated_query(url)

    headers: list[tuple[str, str]] = []
    subprotocols: tuple[str, ...] = ()
    origin = user_agent = None
    compression = False
    for header in request.get("headers", []) or []:
        if not isinstance(header, dict):
            continue
        name, value = str(header.get("name", "")), str(header.get("value", ""))
        lower = name.lower()
        if lower == "sec-websocket-protocol":
            subprotocols = tuple(_templated_subprotocol(p.strip()) for p in value.split(","))
        elif lower == "origin":
            origin = value
        elif lower == "user-agent":
            user_agent = value
        elif lower == "sec-websocket-extensions":
            compression = "permessage-deflate" in value
        elif lower in ("authorization", "proxy-authorization"):
            headers.append((name, value.split(" ", 1)[0] + " {token}"))
        elif lower not in _SKIP_HEADERS and not lower.startswith(":"):
            headers.append((name, value))

    messages: list[MessageStep] = []
    expected: list[str] = []
    last_time: float | None = None
    for number, msg in enumerate(chosen.get("_webSocketMessages", []) or [], start=1):
        if not isinstance(msg, dict):
            continue
        kind, data = msg.get("type"), msg.get("data")
        opcode = msg.get("opcode", 1)
        when = msg.get("time")
        if kind == "receive" and isinstance(when, (int, float)) and last_time is None:
            last_time = float(when)  # gaps count from the first server message (the open)
        if kind == "send" and isinstance(data, str):
            delay = 0.0
            if keep_timing and isinstance(when, (int, float)) and last_time is not None:
                delay = max(0.0, float(when) - last_time)
            if isinstance(when, (int, float)):
                last_time = float(when)
            if opcode != 1:
                _check_base64(path, entry, number, data)
            text = data if opcode != 1 else _template_secrets(data)
            messages.append(MessageStep(text=text, delay_s=delay, binary=opcode != 1))
        elif kind == "receive" and opcode == 1 and isinstance(data, str):
            try:
                obj = json.loads(data)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("type"), str):
                expected.append(obj["type"])

    fields: dict[str, Any] = {
        "url": url,
        "headers": tuple(headers),
        "subprotocols": subprotocols,
        "origin": origin,
        "compression": compression,
        "token_env": token_env,
        "messages": tuple(messages),
        "expected_types": tuple(expected),
        "user_agent": user_agent,
        "ticket_url": ticket_url_for(url) if had_ticket else None,
    }
    fields.update(overrides)
    return HandshakeSpec(**fields)


def _check_base64(path: Path, entry: int, number: int, data: str) -> None:
    """Refuse a binary message whose data is not base64 (it could not be sent)."""
    try:
        base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise BadInputError(
            f"HAR file {path}: WebSocket entry {entry}, message {number} is a binary frame "
            f"whose data is not base64 ({exc})",
            expected="binary frame data base64-encoded, as DevTools exports it",
            hint="export the HAR again from DevTools, or remove that message",
        ) from exc


def _template_secrets(text: str) -> str:
    """Replace token-looking literals in a captured message by ``{token}``."""
    return JWT_PATTERN.sub("{token}", text)


def spec_from_log_row(row: Mapping[str, Any], *, token_env: str | None = None,
                      **overrides: Any) -> HandshakeSpec:
    """Build a spec from a Cloud Run request-log row (the normalized log schema).

    Uses ``http_url`` (https becomes wss) and ``http_user_agent``. Credential query values are
    replaced by ``{token}`` templates; a ``ticket`` becomes a ticket step.

    Raises:
        BadInputError: the row has no usable URL.
    """
    raw_url = row.get("http_url")
    if not isinstance(raw_url, str) or "://" not in raw_url:
        raise BadInputError(
            f"the log row has no usable http_url (got {raw_url!r})",
            expected="a request-log row with an absolute httpRequest.requestUrl",
            hint="pick a row whose log_kind is 'request'",
        )
    url = raw_url
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if url.startswith(http):
            url = ws + url[len(http):]
    url, had_ticket = _templated_query(url)
    agent = row.get("http_user_agent")
    fields: dict[str, Any] = {
        "url": url,
        "user_agent": agent if isinstance(agent, str) and agent else None,
        "token_env": token_env,
        "ticket_url": ticket_url_for(url) if had_ticket else None,
    }
    fields.update(overrides)
    return HandshakeSpec(**fields)
