"""Error signatures: mask the variable parts of log messages and group errors by template.

Masking follows Drain3's shape: one ordered table of regex rules (``MASK_RULES``), each replacing
what it matches with a placeholder such as ``<UUID>``. Every pattern stays inside the syntax that
both Python ``re`` and RE2 accept (no lookaround, no backreferences in patterns; replacements use
``\\1``), so a BigQuery ``REGEXP_REPLACE`` chain can apply the same table. Patterns are compiled
with ``re.ASCII`` so that ``\\b`` means what it means in RE2.

Error events are log rows at or above a severity floor, except that consecutive stderr lines of
one Python traceback (same instance, at most ``gap_s`` apart) become one event whose signature is
the final exception line.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import pandas as pd

from uvs_analysis.errors import BadInputError, UsageError
from uvs_analysis.logs.schema import COLUMNS, SEVERITIES, SEVERITY_RANK, LogAggregates, LogLoad

__all__ = [
    "EVENT_COLUMNS",
    "MASK_RULES",
    "MAX_SIGNATURE_CHARS",
    "SIGNATURE_COLUMNS",
    "MaskRule",
    "Masker",
    "error_events",
    "error_signatures",
    "mask",
    "require_columns",
    "severity_floor",
    "severity_rank",
    "signature_text",
    "split_load",
]

# Public: the masking table


@dataclass(frozen=True)
class MaskRule:
    """One masking instruction.

    Attributes:
        name: a short label for the rule.
        pattern: a regex valid in Python ``re`` and in RE2.
        replacement: the text put in place of each match; may use ``\\1``-style groups.
    """

    name: str
    pattern: str
    replacement: str


_HEX = "[0-9A-Fa-f]"
_H16 = f"{_HEX}{{1,4}}"
_V4 = r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}"
_V6 = (
    rf"(?:\b{_H16}(?::{_H16})*)?::(?:{_H16}:)*{_V4}\b"
    rf"|\b(?:{_H16}:){{6}}{_V4}\b"
    rf"|\b(?:{_H16}:){{7}}{_H16}\b"
    rf"|\b{_H16}(?::{_H16})*::(?:{_H16}(?::{_H16})*)?"
    rf"|::{_H16}(?::{_H16})*"
)
_WS = r"[ \t\r\n]"
# Emoji and pictographs (with variation selector, ZWJ and keycap), as literal characters.
_EMOJI = (
    "[\U0001f000-\U0001faff\u2190-\u21ff\u2300-\u23ff\u25a0-\u27bf\u2900-\u297f"
    "\u2b00-\u2bff\u3030\u303d\u3297\u3299\ufe0f\u200d\u20e3\U000e0020-\U000e007f]"
)
_SECRET_KEYS = (
    r"[A-Za-z0-9_-]*(?:token|secret|password|passwd|pwd|api[_-]?key|apikey|authorization"
    r"|cookie|credentials?|jwt)"
)
_SEP = r"([\"']?[ \t]*[:=][ \t]*[\"']?)"
_VALUE = r"[^ \t\r\n\"'&,;)\]}<>]+"

#: The masking table, applied in order. Later rules only see what earlier rules left.
MASK_RULES: Final[tuple[MaskRule, ...]] = (
    MaskRule(
        "emoji",
        rf"\[U\+{_HEX}{{4,6}}\]|\bU\+{_HEX}{{4,6}}|\[?{_EMOJI}+\]?|\[\?+\]",
        "<EMOJI>",
    ),
    # An emoji stored as "?" stands alone between blanks (or at either end of the text).
    MaskRule("emoji_qmark", rf"(^|{_WS})\?+(?:{_WS}+\?+)*({_WS}|$)", r"\1<EMOJI>\2"),
    MaskRule(
        "url_query",
        r"((?:https?|wss?)://[^ \t\r\n?#\"'<>]+)\?[^ \t\r\n#\"'<>]+",
        r"\1?<QUERY>",
    ),
    MaskRule(
        "secret_value",
        rf"(?i)\b({_SECRET_KEYS}){_SEP}(?:bearer[ \t]+)?{_VALUE}",
        r"\1\2<TOKEN>",
    ),
    MaskRule("jwt", r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", "<JWT>"),
    MaskRule("bearer", r"(?i)\b(bearer|basic)([ \t]+)[A-Za-z0-9._~+/=-]{8,}", r"\1\2<TOKEN>"),
    MaskRule(
        "email",
        r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+",
        "<EMAIL>",
    ),
    MaskRule(
        "uuid",
        f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}",
        "<UUID>",
    ),
    MaskRule(
        "trace",
        rf"\b(?:projects/[A-Za-z0-9_.:-]+/traces/)?{_HEX}{{32}}\b(?:/[0-9]+(?:;o=[0-9])?)?",
        "<TRACE>",
    ),
    MaskRule("ipv6", rf"\[(?:{_V6})\](?::[0-9]{{1,5}}\b)?|{_V6}", "<IP>"),
    MaskRule("ipv4", rf"\b{_V4}\b(?::[0-9]{{1,5}}\b)?", "<IP>"),
    MaskRule(
        "user_id",
        rf"(?i)\b(user[_-]?id|userid|uid|user[_-]?name|username){_SEP}{_VALUE}",
        r"\1\2<USER>",
    ),
    MaskRule(
        "keyed_id",
        rf"\b((?:[A-Za-z]+[_-])?(?:id|ID|Id)|[a-z]+(?:Id|ID)|connection|conn){_SEP}{_VALUE}",
        r"\1\2<ID>",
    ),
    MaskRule(
        "datetime",
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?"
        r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?"
        r"|\b[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?",
        "<TIME>",
    ),
    MaskRule(
        "duration",
        r"\b[0-9]+(?:\.[0-9]+)?(?:ms|us|µs|ns|seconds|secs|sec|s|minutes|mins|min|m|hours|h)\b",
        "<DURATION>",
    ),
    MaskRule("number", r"\b[0-9]+(?:\.[0-9]+)?\b", "<NUM>"),
    MaskRule("hex", rf"\b(?:0[xX]{_HEX}+|{_HEX}{{8,}})\b", "<HEX>"),
    # A word that mixes digits with letters, "_" or "-": ids such as main_5b14bc0d.
    MaskRule("id", r"\b[A-Za-z_-]*[0-9][A-Za-z0-9_-]*", "<ID>"),
    MaskRule("digits", "[0-9]+", "<NUM>"),
    MaskRule("blanks", "[ \t]{2,}", " "),
)


class Masker:
    """Applies an ordered table of masking rules (Drain3-style).

    Args:
        rules: the rules, applied in order; the default is ``MASK_RULES``.
    """

    def __init__(self, rules: Sequence[MaskRule] = MASK_RULES) -> None:
        self.rules = tuple(rules)
        self._compiled = tuple(
            (re.compile(rule.pattern, re.ASCII), _python_replacement(rule.replacement))
            for rule in self.rules
        )

    def mask(self, text: str) -> str:
        """Replace every variable part of ``text`` by its placeholder."""
        for pattern, replacement in self._compiled:
            text = pattern.sub(replacement, text)
        return text


def _python_replacement(replacement: str) -> str:
    # RE2 writes groups as \1; Python reads "\1<" fine but "\g<1>" is unambiguous.
    return re.sub(r"\\([0-9])", r"\\g<\1>", replacement)


_DEFAULT_MASKER: Final = Masker()


def mask(text: str) -> str:
    """Mask ``text`` with the default rules; ``mask(mask(t)) == mask(t)``."""
    return _DEFAULT_MASKER.mask(text)


# Public: frame helpers


def require_columns(frame: pd.DataFrame, columns: Iterable[str], *, name: str = "frame") -> None:
    """Raise ``BadInputError`` when ``frame`` lacks any of ``columns``."""
    if not isinstance(frame, pd.DataFrame):
        raise BadInputError(
            f"{name} is a {type(frame).__name__}, not a DataFrame",
            expected="a pandas DataFrame",
        )
    wanted = list(columns)
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise BadInputError(
            f"{name} lacks the columns {', '.join(missing)}",
            expected="a frame with the columns " + ", ".join(wanted),
            hint="Pass the frame the normalizer (or the function named in the docs) returned",
        )


def severity_floor(min_severity: str, *, name: str = "min_severity") -> int:
    """The LogSeverity number of ``min_severity``; ``UsageError`` if it is not a severity."""
    key = str(min_severity).strip().upper()
    if key not in SEVERITY_RANK:
        raise UsageError(
            f"{name} {min_severity!r} is not a log severity",
            expected="one of " + ", ".join(SEVERITIES),
        )
    return SEVERITY_RANK[key]


def severity_rank(severity: pd.Series) -> pd.Series:
    """LogSeverity numbers for a severity column (NA or unknown counts as DEFAULT, 0)."""
    names = severity.astype("string").str.upper()
    return names.map(dict(SEVERITY_RANK)).fillna(0).astype("int64")


# Public: events and signatures

#: Columns of ``error_events``.
EVENT_COLUMNS: Final = (
    "timestamp",  # first line's time (UTC)
    "severity",  # highest severity among the event's lines
    "log_kind",
    "service",
    "revision",
    "instance_id",
    "trace",
    "insert_id",  # first line's insertId
    "lines",  # how many log entries the event spans (>1 for a grouped traceback)
    "message",  # the raw text (lines joined with newlines for a grouped traceback)
    "signature_text",  # the text the template is taken from
    "template",  # the masked signature text
    "http_status",
    "ws_close_code",
    "connection_id",
    "user_id",
)

#: Columns of ``error_signatures``.
SIGNATURE_COLUMNS: Final = (
    "template",  # masked signature text
    "count",  # error events with this template
    "first_seen",
    "last_seen",
    "revisions",  # comma-separated revision names, sorted
    "instances",  # distinct instance ids
    "severity",  # highest severity seen
    "example",  # one raw message (the earliest; the signature text if it had none)
    "insert_ids",  # comma-separated insertIds of up to ``max_examples`` events
)

_TB_HEADER = "Traceback (most recent call last):"
_TB_CHAIN = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_EXC_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*(?::(?:\s.*)?)?$")


def error_events(
    frame: pd.DataFrame | LogLoad, *, min_severity: str = "ERROR", gap_s: float = 1.0
) -> pd.DataFrame:
    """Error events: rows at or above ``min_severity``, with split tracebacks joined.

    A stderr line ``Traceback (most recent call last):`` starts an event that takes the following
    stderr lines of the same instance (each at most ``gap_s`` after the one before) while they
    are indented frames, blank lines, chained-exception notices or the exception line itself. The
    event's severity is at least ERROR, its message is the joined text and its signature text is
    the final exception line. Request logs keep their status in the template (``HTTP 502 ...``).

    Args:
        frame: a normalized log frame (``uvs_analysis.logs.schema.COLUMNS``), or a LogLoad
            (its frame: for a load pushed down to BigQuery, the rows fetched near failures).
        min_severity: the severity floor (a name from ``SEVERITIES``).
        gap_s: the longest pause between two lines of one traceback, in seconds.

    Returns:
        One row per event with the columns ``EVENT_COLUMNS``, sorted by time.
    """
    frame = split_load(frame)[0]
    require_columns(frame, COLUMNS)
    floor = severity_floor(min_severity)
    if not gap_s >= 0:
        raise UsageError(f"gap_s {gap_s!r} is negative", expected="a pause of 0 seconds or more")
    rows = frame.reset_index(drop=True)
    rank = severity_rank(rows["severity"])
    groups = _traceback_groups(rows, gap_s)
    grouped = [i for group in groups for i in group]
    single = rows.loc[(rank >= floor) & ~rows.index.isin(grouped)].copy()
    single["lines"] = 1
    single["severity_rank"] = rank[single.index]
    parts = [single]
    if groups:
        parts.append(_joined_events(rows, rank, groups, floor))
    events = pd.concat(parts, ignore_index=True) if len(parts) > 1 else single
    events = events.sort_values("timestamp", kind="stable", na_position="last")
    events = events.reset_index(drop=True)
    masker = functools.lru_cache(maxsize=4096)(mask)
    texts = [
        _signature_of_row(masker, kind, msg, payload, status, method, path)
        for kind, msg, payload, status, method, path in zip(
            events["log_kind"],
            events["message"],
            events["payload"],
            events["http_status"],
            events["http_method"],
            events["http_path"],
            strict=True,
        )
    ]
    events["signature_text"] = pd.array([t for t, _ in texts], dtype="string[pyarrow]")
    events["template"] = pd.array([t for _, t in texts], dtype="string[pyarrow]")
    events["severity"] = events["severity_rank"].map(_SEVERITY_NAME).astype("string[pyarrow]")
    events["lines"] = events["lines"].astype("int64")
    return events.loc[:, list(EVENT_COLUMNS)]


def split_load(data: pd.DataFrame | LogLoad) -> tuple[pd.DataFrame, LogAggregates | None]:
    """The frame of ``data`` and, for a load pushed down to BigQuery, its aggregates."""
    if isinstance(data, LogLoad):
        return data.frame, data.aggregates
    return data, None


def error_signatures(
    frame: pd.DataFrame | LogLoad,
    *,
    min_severity: str = "ERROR",
    gap_s: float = 1.0,
    max_examples: int = 3,
) -> pd.DataFrame:
    """Group error events by template.

    Args:
        frame: a normalized log frame, or a LogLoad (one pushed down to BigQuery gives the
            signatures BigQuery computed over every entry, not only the rows fetched).
        min_severity: the severity floor.
        gap_s: see ``error_events``.
        max_examples: how many insertIds to keep per template.

    Returns:
        One row per template with the columns ``SIGNATURE_COLUMNS``, most frequent first (ties:
        earliest first, then by template).
    """
    if max_examples < 1:
        raise UsageError(f"max_examples {max_examples!r} is below 1", expected="1 or more")
    frame, aggregates = split_load(frame)
    if aggregates is not None:
        return _pushed_signatures(aggregates, min_severity, gap_s, max_examples)
    events = error_events(frame, min_severity=min_severity, gap_s=gap_s)
    if events.empty:
        return _empty_signatures()
    events["severity_rank"] = severity_rank(events["severity"])
    events["example"] = events["message"].fillna(events["signature_text"])
    grouped = events.groupby("template", sort=False, dropna=False)
    table = pd.DataFrame(
        {
            "count": grouped.size(),
            "first_seen": grouped["timestamp"].min(),
            "last_seen": grouped["timestamp"].max(),
            "revisions": grouped["revision"].agg(_join_unique),
            "instances": grouped["instance_id"].nunique(),
            "severity": grouped["severity_rank"].max().map(_SEVERITY_NAME),
            "example": grouped["example"].first(),
            "insert_ids": grouped["insert_id"].agg(lambda s: _join(s.dropna()[:max_examples])),
        }
    )
    table = table.rename_axis("template").reset_index()
    table = table.sort_values(
        ["count", "first_seen", "template"], ascending=[False, True, True], kind="stable"
    )
    return _typed_signatures(table.reset_index(drop=True))


def _pushed_signatures(
    aggregates: LogAggregates, min_severity: str, gap_s: float, max_examples: int
) -> pd.DataFrame:
    wanted = (severity_floor(min_severity), float(gap_s))
    have = (severity_floor(aggregates.min_severity), float(aggregates.gap_s))
    if wanted != have or max_examples > aggregates.max_examples:
        raise UsageError(
            f"error_signatures(min_severity={min_severity!r}, gap_s={gap_s!r}, "
            f"max_examples={max_examples!r}) differs from what BigQuery computed "
            f"(min_severity={aggregates.min_severity!r}, gap_s={aggregates.gap_s!r}, "
            f"max_examples={aggregates.max_examples!r})",
            expected="the settings the load was pushed down with",
            hint="call it with those settings, or load again with other PushdownSettings",
        )
    table = aggregates.signatures.copy()
    if max_examples < aggregates.max_examples:
        table["insert_ids"] = table["insert_ids"].map(
            lambda ids: ",".join(str(ids).split(",")[:max_examples]) if ids else ids
        ).astype("string[pyarrow]")
    return table


def signature_text(message: str) -> str:
    """The part of a message its template is taken from.

    For text holding a Python traceback this is the final exception line, prefixed with the
    message's own first line when that line is not the traceback header (``logger.exception``
    style). Otherwise it is the first non-blank line. At most ``MAX_SIGNATURE_CHARS``
    characters are kept (a 10 MB message must not become a 10 MB template).
    """
    lines = [line.rstrip() for line in message.splitlines()]
    nonblank = [line for line in lines if line.strip()]
    if not nonblank:
        return ""
    first = nonblank[0].strip()
    if not any(line.strip() == _TB_HEADER for line in lines):
        return _cap(first)
    exc = _final_exception_line(lines)
    if exc is None:
        exc = nonblank[-1].strip()
    if first != _TB_HEADER and first != exc:
        return _cap(f"{first} | {exc}")
    return _cap(exc)


#: The longest signature text (the rest of a long message is cut, marked with an ellipsis).
MAX_SIGNATURE_CHARS: Final = 500


def _cap(text: str) -> str:
    return text if len(text) <= MAX_SIGNATURE_CHARS else text[: MAX_SIGNATURE_CHARS - 1] + "…"


# Private


_SEVERITY_NAME: Final = {rank: name for name, rank in SEVERITY_RANK.items()}


def _final_exception_line(lines: Sequence[str]) -> str | None:
    found: str | None = None
    in_tb = False
    for line in lines:
        stripped = line.strip()
        if stripped == _TB_HEADER:
            in_tb = True
        elif in_tb and stripped and not line[:1].isspace() and stripped not in _TB_CHAIN:
            if _EXC_LINE.match(stripped):
                found = stripped
            in_tb = False
    return found


def _signature_of_row(
    masker: Callable[[str], str],
    kind: object,
    message: object,
    payload: object,
    status: object,
    method: object,
    path: object,
) -> tuple[str, str]:
    text = signature_text(str(message)) if _present(message) else ""
    if not text and _present(payload):
        text = str(payload)[:500]
    if kind == "request" and _present(status):
        where = " ".join(str(v) for v in (method, path) if _present(v))
        rest = f"{where}: {text}" if text else where
        return f"HTTP {status} {rest}".strip(), f"HTTP {status} {masker(rest)}".strip()
    text = text or "(empty message)"
    return text, masker(text)


def _present(value: object) -> bool:
    if value is None or value is pd.NA:
        return False
    return not (isinstance(value, float) and value != value)


def _traceback_groups(rows: pd.DataFrame, gap_s: float) -> list[list[int]]:
    """Row positions of each split traceback (two or more stderr lines), in row order."""
    is_stderr = (rows["log_kind"] == "stderr").fillna(False).to_numpy(dtype=bool)
    messages = rows["message"].fillna("")
    starts = is_stderr & messages.str.strip().eq(_TB_HEADER).to_numpy(dtype=bool)
    if not starts.any():
        return []
    texts = messages.astype(object).tolist()
    stderr = rows.loc[is_stderr, ["instance_id", "timestamp"]].copy()
    stderr["instance_id"] = stderr["instance_id"].fillna("\x00")
    stderr = stderr.sort_values(["instance_id", "timestamp"], kind="stable")
    groups: list[list[int]] = []
    for _, lines in stderr.groupby("instance_id", sort=False):
        positions = lines.index.to_list()
        times = lines["timestamp"].to_list()
        groups.extend(_scan_instance(positions, times, texts, gap_s))
    return sorted(groups)


def _scan_instance(
    positions: list[int], times: list[pd.Timestamp], texts: list[str], gap_s: float
) -> list[list[int]]:
    groups: list[list[int]] = []
    k = 0
    while k < len(positions):
        if texts[positions[k]].strip() != _TB_HEADER:
            k += 1
            continue
        group = [positions[k]]
        state = "frames"
        k += 1
        while k < len(positions) and _close(times[k - 1], times[k], gap_s):
            line = texts[positions[k]]
            state = _next_state(state, line)
            if state == "end":
                break
            group.append(positions[k])
            k += 1
        if len(group) > 1:
            groups.append(group)
    return groups


def _next_state(state: str, line: str) -> str:
    stripped = line.strip()
    if state == "frames":
        if not stripped or line[:1].isspace():
            return "frames"
        if stripped in _TB_CHAIN:
            return "chain"
        return "exception" if _EXC_LINE.match(stripped) else "end"
    if not stripped or stripped in _TB_CHAIN:
        return "chain"
    if stripped == _TB_HEADER and state == "chain":
        return "frames"
    return "end"


def _close(before: pd.Timestamp, after: pd.Timestamp, gap_s: float) -> bool:
    if pd.isna(before) or pd.isna(after):
        return False
    return bool((after - before).total_seconds() <= gap_s)


def _joined_events(
    rows: pd.DataFrame, rank: pd.Series, groups: list[list[int]], floor: int
) -> pd.DataFrame:
    members = [i for group in groups for i in group]
    number = pd.Series(
        [n for n, group in enumerate(groups) for _ in group], index=members, dtype="int64"
    )
    lines = rows.loc[members]
    by_group = lines.groupby(number.to_numpy(), sort=True)
    joined = rows.loc[[group[0] for group in groups]].reset_index(drop=True)
    texts = lines["message"].fillna("").tolist()
    starts = itertools.accumulate((len(group) for group in groups), initial=0)
    joined["message"] = pd.Series(
        ["\n".join(texts[a : a + len(g)]) for a, g in zip(starts, groups, strict=False)],
        dtype="string[pyarrow]",
    )
    joined["lines"] = by_group.size().to_numpy()
    joined["severity_rank"] = (
        rank.loc[members].groupby(number.to_numpy()).max().clip(lower=SEVERITY_RANK["ERROR"])
    ).to_numpy()
    present = by_group[["trace", "http_status", "ws_close_code", "connection_id", "user_id"]]
    for column, values in present.first().items():
        joined[column] = values.to_numpy()
    joined = joined.astype({c: rows[c].dtype for c in rows.columns})
    return joined.loc[joined["severity_rank"] >= floor]


def _join(values: Iterable[object]) -> str:
    return ",".join(str(v) for v in values)


def _join_unique(values: pd.Series) -> str:
    return _join(sorted({str(v) for v in values.dropna()}))


def _empty_signatures() -> pd.DataFrame:
    return _typed_signatures(pd.DataFrame({c: [] for c in SIGNATURE_COLUMNS}))


def _typed_signatures(table: pd.DataFrame) -> pd.DataFrame:
    ts = COLUMNS["timestamp"][0]
    dtypes = {
        "template": "string[pyarrow]",
        "count": "int64",
        "first_seen": ts,
        "last_seen": ts,
        "revisions": "string[pyarrow]",
        "instances": "int64",
        "severity": "string[pyarrow]",
        "example": "string[pyarrow]",
        "insert_ids": "string[pyarrow]",
    }
    return table.loc[:, list(SIGNATURE_COLUMNS)].astype(dtypes)
