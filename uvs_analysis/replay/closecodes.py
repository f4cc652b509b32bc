"""The one close-code table: RFC 6455 §7.4, the IANA registry, and what the Python stack does.

Every module that names, describes or judges a WebSocket close code reads it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = [
    "ABNORMAL",
    "CLOSE_CODES",
    "NO_STATUS",
    "RESERVED_ON_WIRE",
    "CloseCodeInfo",
    "accepted_by_websockets",
    "code_range",
    "describe",
    "wire_problem",
]

NO_STATUS: Final = 1005
ABNORMAL: Final = 1006
#: Codes RFC 6455 reserves for local reporting or leaves undefined; never valid in a Close frame.
RESERVED_ON_WIRE: Final = frozenset({1004, 1005, 1006, 1015})


@dataclass(frozen=True)
class CloseCodeInfo:
    """One registered close code.

    Attributes:
        code: the numeric code.
        name: the registry name.
        meaning: what it means, in one line.
        on_wire: "yes", "no" (reserved, MUST NOT be sent) or "client" (only a client sends it).
        source: "RFC 6455" or "IANA".
        stack: what uvicorn / websockets do with it (how it reaches a client in practice).
    """

    code: int
    name: str
    meaning: str
    on_wire: str
    source: str
    stack: str


_ROWS = (
    (1000, "Normal Closure", "the purpose of the connection was fulfilled", "yes", "RFC 6455",
     "app close(1000); a clean end"),
    (1001, "Going Away", "server going down or browser navigating away", "yes", "RFC 6455",
     "uvicorn does not send it on shutdown (it sends 1012)"),
    (1002, "Protocol Error", "an endpoint hit a protocol error", "yes", "RFC 6455",
     "websockets answers an invalid Close frame (1004-1006, 1015, out of range) with 1002"),
    (1003, "Unsupported Data", "received a data type it cannot accept", "yes", "RFC 6455",
     "app close(1003) after accept; before accept uvicorn answers HTTP 403"),
    (1004, "Reserved", "reserved; meaning may be defined later", "no", "RFC 6455",
     "websockets and uvicorn refuse to send it (ProtocolError)"),
    (1005, "No Status Rcvd", "placeholder: a Close frame carried no status code", "no",
     "RFC 6455", "websockets reports an empty Close frame as 1005; refuses to send it"),
    (1006, "Abnormal Closure", "placeholder: the connection closed without a Close frame",
     "no", "RFC 6455",
     "uvicorn: exception after accept, crash or kill; Cloud Run request timeout (inferred)"),
    (1007, "Invalid Payload Data", "message data inconsistent with its type (e.g. bad UTF-8)",
     "yes", "RFC 6455", "websockets sends it for a Close reason that is not UTF-8"),
    (1008, "Policy Violation", "a generic policy error (auth, rate limit)", "yes", "RFC 6455",
     "app close(1008) after accept; before accept uvicorn answers HTTP 403"),
    (1009, "Message Too Big", "a message too big to process", "yes", "RFC 6455",
     "websockets client sends it when a frame exceeds max_size"),
    (1010, "Mandatory Extension", "the client expected an extension the server did not "
     "negotiate", "client", "RFC 6455", "a server should not send it"),
    (1011, "Internal Error", "the server hit an unexpected condition", "yes", "RFC 6455",
     "app close(1011), or uvicorn/websockets keepalive 'keepalive ping timeout'"),
    (1012, "Service Restart", "the server is restarting", "yes", "IANA",
     "uvicorn sends it to every open socket on SIGTERM/SIGINT"),
    (1013, "Try Again Later", "temporary overload", "yes", "IANA", "app close(1013)"),
    (1014, "Bad Gateway", "a gateway or proxy got an invalid upstream response", "yes", "IANA",
     "proxies"),
    (1015, "TLS Handshake", "placeholder: the TLS handshake failed", "no", "RFC 6455",
     "websockets refuses to send or accept it"),
)

#: code -> CloseCodeInfo for every registered code 1000-1015.
CLOSE_CODES: Final = MappingProxyType({row[0]: CloseCodeInfo(*row) for row in _ROWS})


def code_range(code: int) -> str:
    """Name the RFC 6455 §7.4.2 range a code falls in."""
    if code < 1000:
        return "unused (0-999)"
    if code <= 1015:
        return "registered (1000-1015)"
    if code <= 2999:
        return "unassigned protocol range (1016-2999)"
    if code <= 3999:
        return "library/framework (3000-3999)"
    if code <= 4999:
        return "private use (4000-4999)"
    return "outside every range (>= 5000)"


def describe(code: int | None) -> str:
    """A one-line human description, e.g. ``1011 Internal Error``."""
    if code is None:
        return "no code"
    info = CLOSE_CODES.get(code)
    if info is not None:
        return f"{code} {info.name}"
    return f"{code} ({code_range(code)})"


def accepted_by_websockets(code: int) -> bool:
    """Whether websockets accepts this code in a received Close frame (1000-1003, 1007-1014,
    3000-4999)."""
    return code in {1000, 1001, 1002, 1003} or 1007 <= code <= 1014 or 3000 <= code <= 4999


def wire_problem(code: int, *, sender: str = "server") -> str | None:
    """What RFC 6455 says is wrong with ``code`` appearing in a Close frame sent by ``sender``.

    Returns None when the code may legitimately be sent.
    """
    if code in RESERVED_ON_WIRE:
        return f"{describe(code)} is reserved and MUST NOT be sent in a Close frame"
    if code < 1000 or 1016 <= code <= 2999 or code >= 5000:
        return f"{code} is outside the allowed ranges: {code_range(code)}"
    if code == 1010 and sender == "server":
        return "1010 Mandatory Extension is a client's code; a server should not send it"
    return None
