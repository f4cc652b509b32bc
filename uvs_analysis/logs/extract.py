"""Where fields hide in Cloud Run log entries: the one place for key aliases and text patterns.

The normalizer reads these tables; nothing else in the package should hard-code a field alias or
a close-code pattern. The text patterns are written in the common subset of Python ``re`` and
RE2 (pyarrow's regex engine), so they run per string here and per column in the normalizer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "CLOSE_TEXT_PATTERNS",
    "FIELD_ALIASES",
    "PAYLOAD_CONTAINERS",
    "URL_PATH_PATTERN",
    "close_code_of",
    "close_from_text",
    "infer_severity",
    "latency_seconds",
    "status_code",
]

#: payload key -> normalized column. Looked up at the payload's top level, in the containers
#: below, and in the entry's own ``labels`` (where Cloud Logging merges
#: ``logging.googleapis.com/labels``).
FIELD_ALIASES: Final = MappingProxyType(
    {
        "close_code": "ws_close_code",
        "ws_close_code": "ws_close_code",
        "closeCode": "ws_close_code",
        "code": "ws_close_code",
        "close_reason": "ws_close_reason",
        "ws_close_reason": "ws_close_reason",
        "closeReason": "ws_close_reason",
        "reason": "ws_close_reason",
        "connection_id": "connection_id",
        "conn_id": "connection_id",
        "connection": "connection_id",
        "connectionId": "connection_id",
        "user_id": "user_id",
        "userId": "user_id",
        "run_id": "run_id",
        "runId": "run_id",
        "thread_id": "thread_id",
        "threadId": "thread_id",
        "trace": "trace",
        "trace_id": "trace",
        "logging.googleapis.com/trace": "trace",
    }
)

#: Nested payload objects searched for the aliases, lowest priority first (later ones win,
#: and the payload's top level wins over all of them).
PAYLOAD_CONTAINERS: Final = ("error", "context", "labels")

#: Close code and reason in free text, most specific first. Group ``code`` is the close code;
#: ``reason`` (or else ``name``) is the reason.
CLOSE_TEXT_PATTERNS: Final = (
    # close(1011, "Service initialization failed") / websocket.close(code=1011, reason="...")
    r"""close\(\s*(?:code\s*=\s*)?(?P<code>[1-4]\d{3})\s*,\s*(?:reason\s*=\s*)?["'](?P<reason>[^"'\n]*)["']""",
    # WebSocket closed with code 1008: Authentication failed
    r"(?i:closed?\s+with\s+(?:close\s+)?code)\s*[=:]?\s*(?P<code>[1-4]\d{3})"
    r"(?:\s*(?:[:,;-]|reason[=:])\s*(?P<reason>[^\n;]+))?",
    # received 1011 (internal error) keepalive ping timeout / close 1000 (OK)
    r"(?i:received|sent|close|closed|closing|code)\s+(?P<code>[1-4]\d{3})\s*"
    r"\((?P<name>[^)\n]*)\)(?:[ \t]+(?P<reason>[^;\n]+))?",
    # code=1011 reason=... / close_code: 1011
    r"(?i:code)\s*[=:]\s*['\"]?(?P<code>[1-4]\d{3})\b"
    r"(?:['\"]?[,;]?\s*(?i:reason)\s*[=:]\s*['\"]?(?P<reason>[^'\"\n,;]*))?",
)

_CLOSE_TEXT_RES: Final = tuple(re.compile(p) for p in CLOSE_TEXT_PATTERNS)

#: The path part of an absolute or relative URL (group ``path``).
URL_PATH_PATTERN: Final = r"^(?:[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)?(?P<path>[^?#]*)"

_LEVEL_PREFIX: Final = re.compile(
    r"^\s*\[?(?P<level>DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\]?[:\s]"
)
_ERROR_WORDS: Final = re.compile(r"Traceback|Error|Exception|ERROR|CRITICAL|FATAL|Fatal|panic:")
_WARNING_WORDS: Final = re.compile(r"WARNING|Warning|WARN\b")
_LEVEL_NAMES: Final = MappingProxyType(
    {
        "DEBUG": "DEBUG",
        "INFO": "INFO",
        "WARNING": "WARNING",
        "WARN": "WARNING",
        "ERROR": "ERROR",
        "CRITICAL": "CRITICAL",
        "FATAL": "CRITICAL",
    }
)


def infer_severity(text: str) -> str | None:
    """Guess the severity of a plain-text stderr line, or None when nothing points to one.

    A leading level word (``INFO:``, ``[WARNING]``) wins; otherwise a traceback, an
    ``...Error``/``...Exception`` or CRITICAL/FATAL means ERROR, and WARNING means WARNING.
    """
    match = _LEVEL_PREFIX.match(text)
    if match:
        return _LEVEL_NAMES[match["level"]]
    if _ERROR_WORDS.search(text):
        return "ERROR"
    if _WARNING_WORDS.search(text):
        return "WARNING"
    return None


def close_code_of(value: object) -> int | None:
    """A WebSocket close code (1000-4999) from an int, an integral float or a digit string."""
    if type(value) is int:
        code = value
    elif type(value) is float:
        if not math.isfinite(value) or not value.is_integer():
            return None
        code = int(value)
    elif type(value) is str and value.strip().isdigit():
        code = int(value)
    else:
        return None
    return code if 1000 <= code <= 4999 else None


def close_from_text(text: str) -> tuple[int | None, str | None]:
    """The close code and reason in a message, e.g. ``received 1011 (internal error)``."""
    for pattern in _CLOSE_TEXT_RES:
        match = pattern.search(text)
        if match:
            groups = match.groupdict()
            reason = groups.get("reason") or groups.get("name")
            return int(match["code"]), reason.strip() if reason else None
    return None, None


def latency_seconds(value: object) -> float | None:
    """Seconds from a Duration (``"3599.871254s"``), a ``{seconds, nanos}`` dict or a number."""
    if type(value) is str:
        text = value[:-1] if value.endswith("s") else value
        try:
            result = float(text)
        except ValueError:
            return None
    elif type(value) is int or type(value) is float:
        result = float(value)
    elif isinstance(value, Mapping):
        seconds, nanos = value.get("seconds", 0), value.get("nanos", 0)
        try:
            result = float(seconds or 0) + float(nanos or 0) / 1e9
        except (TypeError, ValueError):
            return None
    else:
        return None
    return result if math.isfinite(result) and result >= 0 else None


def status_code(value: object) -> int | None:
    """An HTTP status from an int, an integral float or a digit string (100-999), else None."""
    if type(value) is int:
        status = value
    elif type(value) is float and math.isfinite(value) and value.is_integer():
        status = int(value)
    elif type(value) is str and value.strip().isdigit():
        status = int(value)
    else:
        return None
    return status if 100 <= status <= 999 else None
