"""The Cloud Logging query language, evaluated over raw LogEntry dicts (camelCase API JSON).

Pure: no I/O. ``compile_filter(text)`` parses once and returns a predicate. What it covers:

- comparisons ``= != < <= > >= : =~ !~`` on field paths (``resource.labels.service_name``,
  ``jsonPayload.x.y``, ``labels."run.googleapis.com/execution_name"``); snake_case names of
  LogEntry fields (``http_request.status``) are accepted as the API does;
- ``AND``, ``OR``, ``NOT`` and ``-``; adjacent terms are ANDed; ``NOT`` binds tightest, then
  ``OR``, then ``AND`` (``a OR NOT b AND c OR d`` is ``(a OR (NOT b)) AND (c OR d)``);
- parentheses, value lists (``logName=("a" OR "b")``), quoted and unquoted values;
- ``log_id("run.googleapis.com/requests")``; bare words and quoted strings search every value;
- strings compare case-insensitively; ``=~``/``!~`` use Python ``re`` in place of RE2 (case
  sensitive, ``re.search``); ``severity`` compares by rank (a missing severity is DEFAULT);
  ``timestamp``/``receiveTimestamp`` compare as instants (any RFC 3339 form); numbers compare
  as numbers, durations (``"12.5s"``) as seconds; ``field:*`` tests presence;
- a missing field never satisfies a comparison (``NOT`` of it does).

Anything else (other functions, ``SEARCH``, comparing a field against another) raises
``FilterSyntaxError`` naming the position and the token.
"""

from __future__ import annotations

import calendar
import operator
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from urllib.parse import quote

from uvs_analysis.errors import FilterSyntaxError
from uvs_analysis.logs.schema import SEVERITY_RANK

__all__ = [
    "SEVERITY_RANK",
    "Predicate",
    "compile_filter",
    "format_timestamp_ns",
    "parse_timestamp_ns",
]

Predicate = Callable[[Mapping[str, Any]], bool]
_T = TypeVar("_T")

MAX_FILTER_LENGTH: Final = 20_000
_TIME_FIELDS: Final = frozenset({"timestamp", "receiveTimestamp"})
_OPS: Final = ("!=", "<=", ">=", "=~", "!~", "=", "<", ">", ":")
_WORD_STOP: Final = frozenset(' \t\r\n()"=<>!:~')
_VALUE_STOP: Final = frozenset(' \t\r\n()"')
_KEYWORDS: Final = frozenset({"AND", "OR", "NOT"})
_SNAKE_TOP: Final = {
    "log_name": "logName",
    "insert_id": "insertId",
    "http_request": "httpRequest",
    "json_payload": "jsonPayload",
    "text_payload": "textPayload",
    "proto_payload": "protoPayload",
    "receive_timestamp": "receiveTimestamp",
    "span_id": "spanId",
    "trace_sampled": "traceSampled",
    "source_location": "sourceLocation",
}
_HTTP_SNAKE: Final = re.compile(r"_([a-z])")
_NUMBER: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DURATION: Final = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))s")
_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9})\d*)?)?)?"
    r"\s*([Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
_SYNTAX_HINT: Final = (
    "See https://cloud.google.com/logging/docs/view/logging-query-language; quote values that "
    'contain spaces or operators, e.g. textPayload:"keepalive ping timeout"'
)


# Public API.


def compile_filter(text: str | None) -> Predicate:
    """Parse a Logging-query-language filter into a predicate over raw LogEntry dicts.

    Args:
        text: the filter; empty or None matches every entry.

    Returns:
        A function ``entry -> bool``.

    Raises:
        FilterSyntaxError: the filter cannot be parsed or uses an unsupported construct.
    """
    if text is None or not text.strip():
        return _always
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterSyntaxError(
            f"the filter is {len(text)} characters long",
            expected=f"at most {MAX_FILTER_LENGTH} characters (the Cloud Logging limit)",
            hint="split the query into several smaller ones",
        )
    return _Parser(text).parse()


def parse_timestamp_ns(value: object) -> int | None:
    """Nanoseconds since the epoch for an RFC 3339 time (any offset; none means UTC), else None."""
    if not isinstance(value, str):
        return None
    m = _RFC3339.fullmatch(value.strip())
    if m is None:
        return None
    year, month, day, hour, minute, sec, frac, zone = m.groups()
    fields = (int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(sec or 0))
    try:
        datetime(*fields, tzinfo=UTC)  # validates the calendar date and the clock time
    except ValueError:
        return None
    seconds = calendar.timegm(fields)
    if zone and zone not in "Zz":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60
        seconds -= sign * offset
    nanos = int((frac or "").ljust(9, "0")[:9] or 0)
    return seconds * 1_000_000_000 + nanos


def format_timestamp_ns(ns: int) -> str:
    """The Z-normalized RFC 3339 form of an instant (fraction trimmed to 3, 6 or 9 digits)."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if nanos == 0:
        return base + "Z"
    frac = f"{nanos:09d}"
    for width in (3, 6):
        if frac[width:] == "0" * (9 - width):
            return f"{base}.{frac[:width]}Z"
    return f"{base}.{frac}Z"


# Private: evaluation helpers.


def _always(entry: Mapping[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class _Literal:
    """A value in a comparison, pre-parsed for every way it may be compared."""

    text: str
    quoted: bool
    lower: str
    number: float | None
    duration: float | None
    time_ns: int | None
    regex: re.Pattern[str] | None


def _literal(text: str, *, quoted: bool, regex: re.Pattern[str] | None = None) -> _Literal:
    number = float(text) if _NUMBER.fullmatch(text) else None
    dm = _DURATION.fullmatch(text)
    return _Literal(
        text=text,
        quoted=quoted,
        lower=text.lower(),
        number=number,
        duration=float(dm.group(1)) if dm else None,
        time_ns=parse_timestamp_ns(text),
        regex=regex,
    )


def _canonical_path(parts: list[str]) -> tuple[str, ...]:
    if parts and parts[0] in _SNAKE_TOP:
        parts = [_SNAKE_TOP[parts[0]], *parts[1:]]
    if len(parts) == 2 and parts[0] == "httpRequest":
        parts = [parts[0], _HTTP_SNAKE.sub(lambda m: m.group(1).upper(), parts[1])]
    return tuple(parts)


def _resolve(entry: Mapping[str, Any], path: tuple[str, ...]) -> list[Any]:
    """Every value at ``path`` (lists fan out, as repeated fields do); empty when missing."""
    current: list[Any] = [entry]
    for key in path:
        found: list[Any] = []
        for node in current:
            for item in node if isinstance(node, list) else [node]:
                if isinstance(item, Mapping) and key in item and item[key] is not None:
                    found.append(item[key])
        if not found:
            return []
        current = found
    flat: list[Any] = []
    for node in current:
        flat.extend(node if isinstance(node, list) else [node])
    return flat


def _leaves(node: Any) -> Iterator[Any]:
    if isinstance(node, Mapping):
        for value in node.values():
            yield from _leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value)
    elif node is not None:
        yield node


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_COMPARE: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _order(op: str, left: Any, right: Any) -> bool:
    return bool(_COMPARE[op](left, right))


def _match_value(value: Any, op: str, lit: _Literal, kind: str) -> bool:
    """One present field value against one literal (``!=``/``!~`` are handled by the caller)."""
    if op == ":":
        if lit.text == "*" and not lit.quoted:
            return True
        if isinstance(value, Mapping | list):
            return any(lit.lower in _as_text(v).lower() for v in _leaves(value))
        return lit.lower in _as_text(value).lower()
    if isinstance(value, Mapping | list):
        return False
    if op == "=~":
        assert lit.regex is not None
        return lit.regex.search(_as_text(value)) is not None
    if kind == "severity":
        rank = value if type(value) is int else SEVERITY_RANK.get(str(value).upper())
        target = _severity_rank(lit)
        return rank is not None and target is not None and _order(op, rank, target)
    if kind == "time":
        ns = parse_timestamp_ns(value)
        return ns is not None and lit.time_ns is not None and _order(op, ns, lit.time_ns)
    if isinstance(value, bool):
        return op == "=" and lit.lower == _as_text(value)
    if isinstance(value, int | float):
        return lit.number is not None and _order(op, float(value), lit.number)
    text = str(value)
    if op not in ("=", "!="):
        if lit.number is not None and _NUMBER.fullmatch(text):
            return _order(op, float(text), lit.number)
        dm = _DURATION.fullmatch(text)
        if lit.duration is not None and dm:
            return _order(op, float(dm.group(1)), lit.duration)
    return _order(op, text.lower(), lit.lower)


def _severity_rank(lit: _Literal) -> int | None:
    if lit.number is not None:
        return int(lit.number)
    return SEVERITY_RANK.get(lit.text.upper())


# Private: value expressions (the right-hand side of a comparison).


def _value_leaf(lit: _Literal, op: str, kind: str) -> Callable[[list[Any]], bool]:
    if op in ("!=", "!~"):
        positive = "=" if op == "!=" else "=~"
        return lambda values: (
            bool(values) and not any(_match_value(v, positive, lit, kind) for v in values)
        )
    return lambda values: any(_match_value(v, op, lit, kind) for v in values)


# Private: the parser.


class _Parser:
    """Recursive descent over the filter text; builds closures as it goes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # -- errors and scanning

    def _error(self, what: str, expected: str, *, at: int | None = None) -> FilterSyntaxError:
        pos = self.pos if at is None else at
        line = self.text.count("\n", 0, pos) + 1
        column = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        token = self._token_at(pos)
        shown = f"token {token!r}" if token else "the end of the filter"
        return FilterSyntaxError(
            f"at line {line}, column {column} (offset {pos}), {shown}: the filter {what}",
            expected=expected,
            hint=_SYNTAX_HINT,
        )

    def _token_at(self, pos: int) -> str:
        rest = self.text[pos:]
        m = re.match(r'"(?:[^"\\]|\\.)*"?|[^\s()"]+|[()]', rest)
        return m.group(0)[:40] if m else ""

    def _skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _keyword(self, word: str) -> bool:
        """Consume ``word`` if it is the next token as a whole keyword."""
        self._skip_ws()
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and (
            end >= len(self.text) or self.text[end].isspace() or self.text[end] in '()"'
        ):
            self.pos = end
            return True
        return False

    def _at_term_start(self) -> bool:
        self._skip_ws()
        ch = self._peek()
        if not ch or ch == ")":
            return False
        return not any(self._lookahead_keyword(k) for k in ("AND", "OR"))

    def _lookahead_keyword(self, word: str) -> bool:
        saved = self.pos
        found = self._keyword(word)
        self.pos = saved
        return found

    def _quoted(self) -> str:
        start = self.pos
        self.pos += 1
        out: list[str] = []
        escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "\\" and self.pos + 1 < len(self.text):
                nxt = self.text[self.pos + 1]
                out.append(escapes.get(nxt, nxt))
                self.pos += 2
                continue
            out.append(ch)
            self.pos += 1
        raise self._error("has an unterminated string", 'a closing double quote (")', at=start)

    def _run(self, stop: frozenset[str]) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in stop:
            self.pos += 1
        return self.text[start : self.pos]

    # -- grammar: boolean structure (shared by whole filters and by value lists)

    def parse(self) -> Predicate:
        pred = self._and_expr(self._term, dash_negates=True)
        self._skip_ws()
        if self.pos < len(self.text):
            raise self._error("has an unexpected token", "AND, OR, a comparison or end of filter")
        return pred

    def _and_expr(
        self, atom: Callable[[], Callable[[_T], bool]], *, dash_negates: bool
    ) -> Callable[[_T], bool]:
        parts = [self._or_expr(atom, dash_negates)]
        while self._keyword("AND") or self._at_term_start():
            parts.append(self._or_expr(atom, dash_negates))
        if len(parts) == 1:
            return parts[0]
        return lambda x: all(p(x) for p in parts)

    def _or_expr(
        self, atom: Callable[[], Callable[[_T], bool]], dash_negates: bool
    ) -> Callable[[_T], bool]:
        parts = [self._not_expr(atom, dash_negates)]
        while self._keyword("OR"):
            parts.append(self._not_expr(atom, dash_negates))
        if len(parts) == 1:
            return parts[0]
        return lambda x: any(p(x) for p in parts)

    def _not_expr(
        self, atom: Callable[[], Callable[[_T], bool]], dash_negates: bool
    ) -> Callable[[_T], bool]:
        self._skip_ws()
        negate = self._keyword("NOT")
        if not negate and dash_negates and self._peek() == "-":
            negate = bool(self.text[self.pos + 1 : self.pos + 2].strip())
            self.pos += negate
        if negate:
            inner = self._not_expr(atom, dash_negates)
            return lambda x: not inner(x)
        self._skip_ws()
        if self._peek() != "(":
            return atom()
        open_at = self.pos
        self.pos += 1
        grouped = self._and_expr(atom, dash_negates=dash_negates)
        self._skip_ws()
        if self._peek() != ")":
            raise self._error(f"has an unclosed parenthesis (opened at offset {open_at})", "')'")
        self.pos += 1
        return grouped

    # -- grammar: terms

    def _term(self) -> Predicate:
        self._skip_ws()
        start = self.pos
        ch = self._peek()
        if not ch:
            raise self._error("ends early", "a comparison, a value or '('")
        if ch == ")":
            raise self._error("has an unexpected ')'", "a comparison, a value or '('")
        if ch == '"':
            return _global_search(self._quoted())
        if ch in "=<>!:~":
            raise self._error("has an operator without a field", "a field name before it")
        path, path_start = self._path()
        if self._peek() == "(":
            return self._function(path, path_start)
        op = self._operator()
        if op is None:
            word = self.text[start : self.pos].strip()
            if word in _KEYWORDS:
                raise self._error(f"has a misplaced {word}", "a comparison or a value", at=start)
            return _global_search(word)
        return self._comparison(path, op)

    def _path(self) -> tuple[list[str], int]:
        start = self.pos
        parts: list[str] = []
        while True:
            if self._peek() == '"':
                parts.append(self._quoted())
            else:
                segment = self._run(_WORD_STOP | {"."})
                if not segment:
                    raise self._error("has an empty field name segment", "a field name", at=start)
                parts.append(segment)
            if self._peek() == ".":
                self.pos += 1
                continue
            return parts, start

    def _operator(self) -> str | None:
        saved = self.pos
        self._skip_ws()
        for op in _OPS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        self.pos = saved
        return None

    def _function(self, path: list[str], start: int) -> Predicate:
        name = ".".join(path)
        if name != "log_id":
            raise self._error(
                f"calls the function {name}(), which this evaluator does not support",
                'log_id("LOG_ID") or a field comparison',
                at=start,
            )
        self.pos += 1
        self._skip_ws()
        if self._peek() != '"':
            raise self._error(
                "has log_id() without a quoted log id", 'log_id("run.googleapis.com/requests")'
            )
        log_id = self._quoted()
        self._skip_ws()
        if self._peek() != ")":
            raise self._error("has an unclosed log_id(", "')'")
        self.pos += 1
        suffix = ("/logs/" + quote(log_id, safe="")).lower()

        def has_log_id(entry: Mapping[str, Any]) -> bool:
            name = entry.get("logName")
            return isinstance(name, str) and name.lower().endswith(suffix)

        return has_log_id

    def _comparison(self, path_parts: list[str], op: str) -> Predicate:
        path = _canonical_path(path_parts)
        kind = (
            "severity"
            if path == ("severity",)
            else "time"
            if (len(path) == 1 and path[0] in _TIME_FIELDS)
            else "plain"
        )
        test = self._not_expr(lambda: self._value_leaf(op, kind), dash_negates=False)
        if path == ("severity",):

            def on_severity(entry: Mapping[str, Any]) -> bool:
                return test(_resolve(entry, path) or ["DEFAULT"])

            return on_severity

        def on_field(entry: Mapping[str, Any]) -> bool:
            return test(_resolve(entry, path))

        return on_field

    def _value_leaf(self, op: str, kind: str) -> Callable[[list[Any]], bool]:
        self._skip_ws()
        start = self.pos
        ch = self._peek()
        if ch == '"':
            text, quoted = self._quoted(), True
        else:
            text, quoted = self._run(_VALUE_STOP), False
            if not text or text in _KEYWORDS:
                raise self._error(
                    f"has no value after {op!r}", "a value (quote it if in doubt)", at=start
                )
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re.compile(text)
            except re.error as exc:
                raise self._error(
                    f"has an invalid regular expression ({exc})", "a valid RE2 pattern", at=start
                ) from exc
        lit = _literal(text, quoted=quoted, regex=regex)
        if kind == "severity" and op not in (":", "=~", "!~") and _severity_rank(lit) is None:
            raise self._error(
                f"compares severity with {text!r}, which is not a severity",
                "one of " + ", ".join(SEVERITY_RANK) + " or a number",
                at=start,
            )
        if kind == "time" and op not in (":", "=~", "!~") and lit.time_ns is None:
            raise self._error(
                f"compares a timestamp with {text!r}, which is not a time",
                'an RFC 3339 time such as "2024-05-14T09:00:00Z"',
                at=start,
            )
        return _value_leaf(lit, op, kind)


def _global_search(text: str) -> Predicate:
    needle = text.lower()

    def search(entry: Mapping[str, Any]) -> bool:
        return any(needle in _as_text(v).lower() for v in _leaves(entry))

    return search
