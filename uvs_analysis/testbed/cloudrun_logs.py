"""Write logs the way Cloud Run captures them: one LogEntry JSON object per line (NDJSON).

Cloud Run turns a stdout line holding one JSON object into a ``jsonPayload`` entry (moving the
special ``logging.googleapis.com/*``, ``severity`` and ``httpRequest`` keys onto the entry), any
other stdout/stderr line into a ``textPayload`` entry without severity, writes one request-log
entry per request when it ends (``timestamp`` = start, ``latency`` = duration, status 101 for a
WebSocket session) and adds system entries. Every string written is scrubbed of credentials.
"""

from __future__ import annotations

import base64
import contextvars
import json
import logging
import random
import re
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TextIO
from urllib.parse import quote

__all__ = [
    "CURRENT_INSTANCE",
    "CloudRunTextHandler",
    "Instance",
    "LogEntryWriter",
    "capture_json_line",
    "redact",
    "rfc3339",
]

SPECIAL_FIELDS: Final = {
    "severity": "severity",
    "httpRequest": "httpRequest",
    "logging.googleapis.com/insertId": "insertId",
    "logging.googleapis.com/labels": "labels",
    "logging.googleapis.com/operation": "operation",
    "logging.googleapis.com/sourceLocation": "sourceLocation",
    "logging.googleapis.com/spanId": "spanId",
    "logging.googleapis.com/trace": "trace",
    "logging.googleapis.com/trace_sampled": "traceSampled",
}
_QUERY_SECRET = re.compile(
    r"(?i)\b(token|jwt|auth_token|access_token|ticket|auth_ticket|ticket_id)=([^&\s\"'\\]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_B64_JWT = re.compile(r"ZXlK[A-Za-z0-9_-]{16,}={0,2}")
_SUBPROTOCOL = re.compile(
    r"\b(jwt-auth|jwt|bearer|staging-auth)\.[A-Za-z0-9_=-]{20,}[A-Za-z0-9_.=-]*"
)
REDACTED: Final = "[REDACTED]"

#: The instance (revision) the code running now belongs to; None means the writer's default.
CURRENT_INSTANCE: contextvars.ContextVar[Instance | None] = contextvars.ContextVar(
    "testbed_instance", default=None
)


def rfc3339(ts: float) -> str:
    """RFC 3339 UTC timestamp with microseconds and ``Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def secret_forms(secret: str) -> set[str]:
    """The raw, base64url (padded or not), URL-encoded and JSON-escaped forms of a secret."""
    b64 = base64.urlsafe_b64encode(secret.encode()).decode()
    forms = {secret, b64, b64.rstrip("="), quote(secret, safe=""), json.dumps(secret)[1:-1]}
    return {f for f in forms if len(f) >= 8}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove credentials from ``text``: known secrets in any form, then JWT-like patterns."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _SUBPROTOCOL.sub(lambda m: f"{m.group(1)}.{REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    return _B64_JWT.sub(REDACTED, text)


def _scrub(value: Any, secrets: Iterable[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, secrets) for v in value]
    return value


def capture_json_line(obj: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a structured stdout line into ``(jsonPayload, entry fields)`` as Cloud Run does."""
    payload: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for key, value in obj.items():
        target = SPECIAL_FIELDS.get(key)
        if target is None:
            payload[key] = value
        else:
            fields[target] = value
    return payload, fields


@dataclass(frozen=True)
class Instance:
    """One Cloud Run instance of one revision."""

    revision: str
    instance_id: str

    @classmethod
    def create(cls, revision: str, *, seed: int) -> Instance:
        """A new instance with a long seeded hex id, as Cloud Run shows them."""
        rng = random.Random(f"{seed}:instance:{revision}")
        return cls(revision, "00" + "".join(rng.choices("0123456789abcdef", k=126)))


class LogEntryWriter:
    """Append Cloud Run LogEntry objects to a text stream, one per line, flushed each time.

    Args:
        stream: where NDJSON lines go (None: count only).
        project, service, location: the resource labels.
        default: the instance entries belong to unless ``CURRENT_INSTANCE`` says otherwise.
        clock: returns the current time as epoch seconds.
        seed: makes insert ids reproducible.
    """

    def __init__(self, stream: TextIO | None, *, project: str, service: str, location: str,
                 default: Instance, clock: Callable[[], float], seed: int = 0) -> None:
        self._stream = stream
        self.project = project
        self.service = service
        self.location = location
        self.default = default
        self.clock = clock
        self._lock = threading.Lock()
        self._count = 0
        self._suffix = "".join(random.Random(f"{seed}:insert").choices("0123456789abcdef", k=8))
        self._secrets: set[str] = set()

    @property
    def entries_written(self) -> int:
        """How many entries were produced so far."""
        return self._count

    def add_secret(self, secret: str) -> None:
        """Register a credential so that it is scrubbed (in every encoding) from all entries."""
        self._secrets |= secret_forms(secret)

    def instance(self) -> Instance:
        """The instance of the code running now."""
        return CURRENT_INSTANCE.get() or self.default

    def log_name(self, log_id: str) -> str:
        """``projects/P/logs/<URL-encoded log id>``."""
        return f"projects/{self.project}/logs/{quote(log_id, safe='')}"

    def trace_name(self, trace_id: str) -> str:
        """``projects/P/traces/<id>``."""
        return f"projects/{self.project}/traces/{trace_id}"

    def write(self, log_id: str, fields: Mapping[str, Any], *, instance: Instance | None = None,
              timestamp: float | None = None, labels: Mapping[str, str] | None = None) -> None:
        """Write one entry for ``log_id`` with the given payload and entry fields."""
        inst = instance or self.instance()
        now = self.clock()
        ts = now if timestamp is None else timestamp
        with self._lock:
            self._count += 1
            entry: dict[str, Any] = {
                "insertId": f"{int(now):08x}{self._count:08x}{self._suffix}",
                "logName": self.log_name(log_id),
                "resource": {
                    "type": "cloud_run_revision",
                    "labels": {
                        "service_name": self.service,
                        "revision_name": inst.revision,
                        "location": self.location,
                        "configuration_name": self.service,
                        "project_id": self.project,
                    },
                },
                "timestamp": rfc3339(ts),
                "receiveTimestamp": rfc3339(max(now, ts)),
            }
            entry.update(fields)
            entry["labels"] = {**dict(labels or {}), **dict(entry.get("labels") or {}),
                               "instanceId": inst.instance_id}
            if self._stream is not None:
                line = json.dumps(_scrub(entry, self._secrets), ensure_ascii=False,
                                  separators=(",", ":"))
                self._stream.write(line + "\n")
                self._stream.flush()

    def stdout_json(self, obj: Mapping[str, Any]) -> None:
        """A structured line the app printed on stdout."""
        payload, fields = capture_json_line(obj)
        self.write("run.googleapis.com/stdout", {**fields, "jsonPayload": payload})

    def text(self, log_id: str, text: str, *, instance: Instance | None = None) -> None:
        """Plain text lines on stdout or stderr: one entry per line, no severity."""
        for line in text.splitlines():
            if line.strip():
                self.write(log_id, {"textPayload": line}, instance=instance)

    def system(self, text: str, *, severity: str = "INFO", instance: Instance | None = None,
               container: str | None = None) -> None:
        """A ``varlog/system`` entry from the platform."""
        inst = instance or self.instance()
        self.write("run.googleapis.com/varlog/system", {"textPayload": text, "severity": severity},
                   instance=inst, labels={"container_name": container or f"{self.service}-1"})

    def request(self, *, method: str, url: str, status: int, start: float, end: float,
                user_agent: str | None, remote_ip: str | None, request_size: int,
                response_size: int, trace_id: str, span_id: str,
                instance: Instance | None = None) -> None:
        """The request-log entry written when a request (or WebSocket session) ends."""
        http: dict[str, Any] = {
            "requestMethod": method,
            "requestUrl": url,
            "requestSize": str(request_size),
            "status": status,
            "responseSize": str(response_size),
            "latency": f"{max(0.0, end - start):.9f}s",
            "protocol": "HTTP/1.1",
        }
        if user_agent:
            http["userAgent"] = user_agent
        if remote_ip:
            http["remoteIp"] = remote_ip
        severity = "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"
        self.write("run.googleapis.com/requests", {
            "httpRequest": http, "severity": severity, "trace": self.trace_name(trace_id),
            "spanId": span_id, "traceSampled": True,
        }, instance=instance, timestamp=start)


_UVICORN_LEVELS: Final = {"WARNING": "WARNING:  ", "CRITICAL": "CRITICAL: "}


class CloudRunTextHandler(logging.Handler):
    """Route library log records (uvicorn, asyncio) to plain-text stdout/stderr entries.

    uvicorn's access log goes to stdout and everything else to stderr, in uvicorn's default
    ``LEVEL:    message`` layout; a traceback becomes one entry per line, as Cloud Run splits it.
    """

    def __init__(self, writer: LogEntryWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            prefix = _UVICORN_LEVELS.get(record.levelname, f"{record.levelname}:".ljust(10))
            if record.name.startswith("uvicorn"):
                text = prefix + record.getMessage()
            else:
                text = f"{record.levelname}:{record.name}:{record.getMessage()}"
            if record.exc_info:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            log_id = ("run.googleapis.com/stdout" if record.name == "uvicorn.access"
                      else "run.googleapis.com/stderr")
            self.writer.text(log_id, text)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)
