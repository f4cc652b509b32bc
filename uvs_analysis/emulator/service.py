"""``entries:list`` as a pure request -> reply function over an EntryStore, with accounting.

The HTTP layer (``server.py``) only moves bytes; everything the API decides (validation, page
tokens, ordering, quota, injected faults, error shapes) happens here, under one lock.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

import orjson

from uvs_analysis.emulator.faults import Fault, FaultConfig, ReadQuota
from uvs_analysis.emulator.store import EntryStore
from uvs_analysis.errors import FilterSyntaxError
from uvs_analysis.logs.filter_lang import compile_filter

__all__ = [
    "QUOTA_MESSAGE",
    "EmulatorStats",
    "LoggingService",
    "Reply",
    "RequestRecord",
    "error_body",
]

QUOTA_MESSAGE: Final = (
    "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' "
    "of service 'logging.googleapis.com'"
)
TOKEN_MISMATCH: Final = "page_token doesn't match arguments from the request"
DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 1000
MAX_RESOURCE_NAMES: Final = 100
_CACHE_SIZE: Final = 64
_STATUS: Final = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_FAULT_REPLIES: Final = {
    Fault.RATE_LIMIT: (429, QUOTA_MESSAGE),
    Fault.UNAVAILABLE: (503, "The service is currently unavailable."),
    Fault.INTERNAL: (500, "Internal error encountered."),
    Fault.DEADLINE: (504, "Deadline expired before operation could complete."),
}


def error_body(code: int, message: str) -> bytes:
    """Google's JSON error shape."""
    status = _STATUS.get(code, "UNKNOWN")
    return orjson.dumps({"error": {"code": code, "message": message, "status": status}})


@dataclass(frozen=True)
class Reply:
    """What to send back: status and body, after ``delay`` seconds; ``disconnect`` means break
    the connection half-way through the body."""

    status: int
    body: bytes
    delay: float = 0.0
    disconnect: bool = False


@dataclass(frozen=True)
class RequestRecord:
    """One ``entries:list`` request and what became of it.

    ``outcome`` is one of: ok, slow, empty, denied, invalid, quota, and for injected faults
    429, 503, 500, 504, disconnect.
    """

    number: int
    at: float
    outcome: str
    status: int
    project: str | None = None
    filter: str | None = None
    order_by: str | None = None
    page_size: int | None = None
    page_token: str | None = None
    query_key: str | None = None
    offset: int | None = None
    entries: int = 0
    message: str | None = None


@dataclass(frozen=True)
class EmulatorStats:
    """A snapshot of the accounting.

    Attributes:
        requests: every ``entries:list`` request, in arrival order.
        served_pages: ``(query_key, offset)`` of every page served successfully, in order
            (a query key binds resourceNames, filter, orderBy and pageSize).
        store: how the entries were loaded (see ``EntryStore.describe``).
    """

    requests: tuple[RequestRecord, ...]
    served_pages: tuple[tuple[str, int], ...]
    store: Mapping[str, object]

    @property
    def duplicate_pages(self) -> tuple[tuple[str, int], ...]:
        """Pages served more than once (empty when no page was fetched twice)."""
        counts = Counter(self.served_pages)
        return tuple(page for page, n in counts.items() if n > 1)

    @property
    def outcomes(self) -> dict[str, int]:
        """How many requests ended in each outcome."""
        return dict(Counter(r.outcome for r in self.requests))

    @property
    def entries_served(self) -> int:
        """Entries delivered in successful pages."""
        return sum(r.entries for r in self.requests if r.outcome in ("ok", "slow"))

    def to_json(self) -> dict[str, Any]:
        """The snapshot as JSON-able values (what ``GET /emulator/stats`` returns)."""
        return {
            "requests": [asdict(r) for r in self.requests],
            "served_pages": [list(p) for p in self.served_pages],
            "duplicate_pages": [list(p) for p in self.duplicate_pages],
            "outcomes": self.outcomes,
            "entries_served": self.entries_served,
            "store": dict(self.store),
        }


@dataclass(frozen=True)
class _Args:
    projects: tuple[str, ...] | None
    filter: str | None
    descending: bool
    order_by: str | None
    page_size: int
    token: str | None
    key: str


class _BadRequest(Exception):
    pass


class LoggingService:
    """The ``entries:list`` method over a store.

    Args:
        store: the entries to serve.
        quota_per_minute: read requests per minute per project; None or 0 for no quota.
        faults: fault injection knobs.
        seed: seeds fault draws (with the request number).
        clock: seconds from a fixed origin, for the quota and the request log.
    """

    def __init__(
        self,
        store: EntryStore,
        *,
        quota_per_minute: int | None = 60,
        faults: FaultConfig | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.seed = seed
        self._faults = faults or FaultConfig()
        self._clock = clock
        self._quota = ReadQuota(quota_per_minute, clock)
        self._lock = threading.Lock()
        self._number = 0
        self._requests: list[RequestRecord] = []
        self._served: list[tuple[str, int]] = []
        self._cache: OrderedDict[tuple[object, ...], tuple[int, ...]] = OrderedDict()

    # Public: control.

    @property
    def faults(self) -> FaultConfig:
        """The fault knobs in force."""
        return self._faults

    def set_faults(self, faults: FaultConfig) -> None:
        """Replace the fault knobs (request numbering continues)."""
        with self._lock:
            self._faults = faults

    def reset(self) -> None:
        """Forget requests, served pages and quota use; request numbers restart at 1."""
        with self._lock:
            self._number = 0
            self._requests.clear()
            self._served.clear()
            self._quota.reset()

    def stats(self) -> EmulatorStats:
        """A consistent snapshot of the accounting."""
        with self._lock:
            return EmulatorStats(
                requests=tuple(self._requests),
                served_pages=tuple(self._served),
                store=self.store.describe(),
            )

    # Public: the API method.

    def list_entries(self, body: bytes) -> Reply:
        """Answer one ``POST /v2/entries:list`` whose JSON body is ``body``."""
        with self._lock:
            self._number += 1
            number, faults, at = self._number, self._faults, self._clock()
        if faults.deny:
            msg = "The caller does not have permission"
            return self._finish(RequestRecord(number, at, "denied", 403, message=msg), None)
        try:
            args = _parse_args(body)
        except _BadRequest as exc:
            record = RequestRecord(number, at, "invalid", 400, message=str(exc))
            return self._finish(record, None)
        base = RequestRecord(
            number,
            at,
            "ok",
            200,
            project=args.projects[0] if args.projects else None,
            filter=args.filter,
            order_by=args.order_by,
            page_size=args.page_size,
            page_token=args.token,
            query_key=args.key,
        )
        try:
            offset = _token_offset(args)
            matches = self._matches(args)
        except _BadRequest as exc:
            return self._finish(_with(base, outcome="invalid", status=400, message=str(exc)), None)
        base = _with(base, offset=offset)
        with self._lock:
            allowed = self._quota.try_acquire(",".join(args.projects or ("-",)))
        if not allowed:
            consumer = base.project or "-"
            message = f"{QUOTA_MESSAGE} for consumer 'projects/{consumer}'."
            return self._finish(_with(base, outcome="quota", status=429, message=message), None)
        fault = faults.draw(self.seed, number)
        error = _FAULT_REPLIES.get(fault) if fault is not None else None
        if error is not None:
            code, message = error
            return self._finish(_with(base, outcome=str(fault), status=code, message=message), None)
        if fault is Fault.EMPTY:
            page = b'{"nextPageToken":"' + _token(args.key, offset).encode() + b'"}'
            return self._finish(_with(base, outcome="empty"), Reply(200, page))
        chosen = matches[offset : offset + args.page_size]
        parts = [b'{"entries":[', b",".join(self.store.entries[i].blob for i in chosen), b"]"]
        if offset + args.page_size < len(matches):
            parts.append(b',"nextPageToken":"' + _token(args.key, offset + len(chosen)).encode())
            parts.append(b'"')
        parts.append(b"}")
        reply = Reply(200, b"".join(parts))
        record = _with(base, entries=len(chosen))
        if fault is Fault.SLOW:
            reply = Reply(200, reply.body, delay=faults.slow_seconds)
            record = _with(record, outcome="slow")
        elif fault is Fault.DISCONNECT:
            reply = Reply(200, reply.body, disconnect=True)
            record = _with(record, outcome="disconnect", status=0)
        return self._finish(record, reply)

    # Private.

    def _finish(self, record: RequestRecord, reply: Reply | None) -> Reply:
        with self._lock:
            self._requests.append(record)
            if record.outcome in ("ok", "slow") and record.query_key is not None:
                self._served.append((record.query_key, record.offset or 0))
        if reply is None:
            reply = Reply(record.status, error_body(record.status, record.message or ""))
        return reply

    def _matches(self, args: _Args) -> tuple[int, ...]:
        """Indices of matching entries in the requested order (cached per query)."""
        cache_key: tuple[object, ...] = (args.projects, args.filter, args.descending)
        with self._lock:
            hit = self._cache.get(cache_key)
            if hit is not None:
                self._cache.move_to_end(cache_key)
                return hit
        try:
            predicate = compile_filter(args.filter)
        except FilterSyntaxError as exc:
            raise _BadRequest(f"Invalid filter: {exc.message}") from exc
        prefixes = tuple(f"projects/{p}/" for p in args.projects) if args.projects else None
        found = [
            i
            for i, stored in enumerate(self.store.entries)
            if (prefixes is None or stored.log_name.startswith(prefixes))
            and predicate(stored.entry)
        ]
        result = tuple(reversed(found)) if args.descending else tuple(found)
        with self._lock:
            self._cache[cache_key] = result
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return result


def _with(record: RequestRecord, **changes: Any) -> RequestRecord:
    return RequestRecord(**{**asdict(record), **changes})


def _parse_args(body: bytes) -> _Args:
    try:
        data = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise _BadRequest(f"Invalid JSON payload received. {exc}") from exc
    if not isinstance(data, dict):
        raise _BadRequest("Invalid JSON payload received. Expected a JSON object.")
    unknown = sorted(set(data) - {"resourceNames", "filter", "orderBy", "pageSize", "pageToken"})
    if unknown:
        names = ", ".join(f'"{n}"' for n in unknown)
        raise _BadRequest(
            f"Invalid JSON payload received. Unknown name {names}: Cannot find field."
        )
    projects = _projects(data.get("resourceNames"))
    flt = data.get("filter")
    if flt is not None and not isinstance(flt, str):
        raise _BadRequest("filter must be a string")
    order_by = data.get("orderBy")
    descending = False
    if order_by is not None:
        normalized = " ".join(str(order_by).lower().split())
        if normalized not in ("timestamp", "timestamp asc", "timestamp desc"):
            raise _BadRequest(
                f"Invalid orderBy {order_by!r}: only 'timestamp asc' and 'timestamp desc' are "
                "supported"
            )
        descending = normalized == "timestamp desc"
    size = data.get("pageSize")
    try:
        page_size = int(size) if size is not None else 0
    except (TypeError, ValueError) as exc:
        raise _BadRequest(f"pageSize {size!r} is not an integer") from exc
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        raise _BadRequest(
            f"pageSize {page_size} is invalid: it must be between 0 and {MAX_PAGE_SIZE}"
        )
    page_size = page_size or DEFAULT_PAGE_SIZE
    token = data.get("pageToken") or None
    if token is not None and not isinstance(token, str):
        raise _BadRequest("pageToken must be a string")
    key_blob = orjson.dumps(
        [list(projects) if projects else None, flt or "", descending, page_size]
    )
    return _Args(
        projects=projects,
        filter=flt,
        descending=descending,
        order_by=order_by if isinstance(order_by, str) else None,
        page_size=page_size,
        token=token,
        key=hashlib.sha256(key_blob).hexdigest()[:16],
    )


def _projects(names: object) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _BadRequest("resourceNames must be a list of strings such as 'projects/my-project'")
    if len(names) > MAX_RESOURCE_NAMES:
        raise _BadRequest(f"resourceNames has {len(names)} items; at most 100 are allowed")
    projects: list[str] = []
    for name in names:
        parts = name.split("/")
        is_project = len(parts) == 2 and parts[0] == "projects" and parts[1]
        is_view = (
            len(parts) == 8
            and parts[0] == "projects"
            and (parts[2], parts[4], parts[6]) == ("locations", "buckets", "views")
        )
        if not (is_project or is_view):
            raise _BadRequest(
                f"resourceNames item {name!r} is not supported by the emulator: use "
                "'projects/PROJECT_ID' or 'projects/P/locations/L/buckets/B/views/V'"
            )
        projects.append(parts[1])
    return tuple(projects)


def _token(key: str, offset: int) -> str:
    raw = orjson.dumps({"q": key, "o": offset})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _token_offset(args: _Args) -> int:
    if args.token is None:
        return 0
    try:
        padded = args.token + "=" * (-len(args.token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        key, offset = data["q"], data["o"]
        if not isinstance(key, str) or not isinstance(offset, int) or offset < 0:
            raise ValueError(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise _BadRequest(f"Invalid page token {args.token[:40]!r}") from exc
    if key != args.key:
        raise _BadRequest(TOKEN_MISMATCH)
    return offset
