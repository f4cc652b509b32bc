"""Column-wide steps of normalization, on Arrow arrays of one chunk (or all chunks).

Pure functions over pyarrow arrays: timestamp parsing, URL paths, close codes found in message
text, the query filter and duplicate removal. The normalizer calls them per chunk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from uvs_analysis.logs.extract import CLOSE_TEXT_PATTERNS
from uvs_analysis.logs.schema import SEVERITY_RANK

if TYPE_CHECKING:
    from uvs_analysis.logs.query import LogQuery

__all__ = [
    "close_codes_from_text",
    "drop_duplicates",
    "parse_timestamps",
    "query_mask",
    "to_array",
    "url_paths",
]


def to_array(values: Iterable[Any], type_: pa.DataType) -> pa.Array:
    """An Arrow array; strings Arrow refuses (lone surrogates) are repaired, not fatal."""
    try:
        return pa.array(values, type=type_)
    except (pa.ArrowException, UnicodeError, OverflowError):
        return pa.array([_repair(v, type_) for v in values], type=type_)


def _repair(value: object, type_: pa.DataType) -> object:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if type_ == pa.int64() and isinstance(value, int) and not -(2**63) <= value < 2**63:
        return None
    return value


def parse_timestamps(text: pa.Array) -> pa.Array:
    """RFC 3339 strings (any offset, or none meaning UTC) -> timestamp[ns, UTC]; bad ones null."""
    try:
        return pc.cast(text, pa.timestamp("ns", tz="UTC"))
    except pa.ArrowException:
        pass
    series = pd.to_datetime(
        pd.Series(text, dtype=pd.StringDtype("pyarrow")),
        format="ISO8601",
        utc=True,
        errors="coerce",
    )
    # pandas may parse at a coarser unit: a time nanoseconds cannot hold becomes null (bad).
    series = series.where((series >= _NS_MIN) & (series <= _NS_MAX))
    return pa.array(series.astype("datetime64[ns, UTC]"), type=pa.timestamp("ns", tz="UTC"))


_NS_MIN = pd.Timestamp.min.tz_localize("UTC")
_NS_MAX = pd.Timestamp.max.tz_localize("UTC")


def url_paths(urls: pa.Array) -> pa.Array:
    """The path of each URL (``URL_PATH_PATTERN``); '/' for an empty one."""
    paths = pc.replace_substring_regex(urls, _NOT_PATH, "")
    return pc.if_else(pc.equal(paths, ""), pa.scalar("/", paths.type), paths)


#: What URL_PATH_PATTERN leaves out of a URL: scheme and host, query and fragment. Removing it
#: is about twice as fast as extracting the path.
_NOT_PATH: Final = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*|[?#](?s:.*)"


def close_codes_from_text(arrays: dict[str, pa.Array]) -> None:
    """Fill ws_close_code/reason from the message where the payload had no code."""
    codes, reasons, messages = (
        arrays["ws_close_code"],
        arrays["ws_close_reason"],
        arrays["message"],
    )
    # One pass of all the patterns (no groups) picks the few messages the extraction reads.
    todo = pc.and_(pc.is_null(codes), pc.match_substring_regex(messages, _ANY_CLOSE_TEXT))
    mask = pc.fill_null(todo, False)
    rows = pc.indices_nonzero(mask)
    if not len(rows):
        return
    found_codes, found_reasons = _codes_in(
        pc.take(codes, rows), pc.take(reasons, rows), pc.take(messages, rows)
    )
    arrays["ws_close_code"] = pc.replace_with_mask(codes, mask, found_codes)
    arrays["ws_close_reason"] = pc.replace_with_mask(reasons, mask, found_reasons)


def _codes_in(
    codes: pa.Array, reasons: pa.Array, messages: pa.Array
) -> tuple[pa.Array, pa.Array]:
    """The first of CLOSE_TEXT_PATTERNS that gives a code, for messages without one."""
    for pattern in CLOSE_TEXT_PATTERNS:
        todo = pc.is_null(codes)
        if not pc.any(todo).as_py():
            break
        found = pc.extract_regex(pc.if_else(todo, messages, pa.scalar(None, pa.string())), pattern)
        if found.null_count == len(found):
            continue
        names = [found.type.field(i).name for i in range(found.type.num_fields)]
        code = pc.cast(pc.struct_field(found, "code"), pa.int64())
        reason = pc.struct_field(found, "reason") if "reason" in names else None
        if "name" in names:
            name = pc.struct_field(found, "name")
            reason = name if reason is None else pc.if_else(pc.equal(reason, ""), name, reason)
        if reason is not None:
            reason = pc.utf8_trim_whitespace(reason)
            reason = pc.if_else(pc.equal(reason, ""), pa.scalar(None, pa.string()), reason)
            reasons = pc.if_else(pc.is_valid(code), reason, reasons)
        codes = pc.coalesce(codes, code)
    return codes, reasons


#: Any of CLOSE_TEXT_PATTERNS, without their groups.
_ANY_CLOSE_TEXT: Final = "|".join(re.sub(r"\(\?P<\w+>", "(?:", p) for p in CLOSE_TEXT_PATTERNS)


def drop_duplicates(tables: list[pa.Table]) -> int:
    """Drop, in place, rows whose insertId, timestamp and logName an earlier row has.

    Only rows that share their timestamp with another row can be duplicates, so the text
    columns are compared for those rows alone.
    """
    if not tables:
        return 0
    stamps = np.concatenate(
        [pc.cast(table["timestamp"], pa.int64()).to_numpy() for table in tables]
    )
    if len(stamps) < 2:
        return 0
    if stamps.dtype.kind == "i":
        order = np.argsort(stamps, kind="stable")
        ordered = stamps[order]
        same = ordered[1:] == ordered[:-1]
        shared = np.zeros(len(stamps), dtype=bool)
        shared[1:] |= same
        shared[:-1] |= same
        rows = np.sort(order[shared])
    else:  # null timestamps (float with NaN): compare every row
        rows = np.arange(len(stamps))
    if not len(rows):
        return 0

    def codes(column: str, fill: str | None = None) -> np.ndarray:
        chunks = [chunk for table in tables for chunk in table[column].chunks]
        values = _take_rows(chunks, rows, tables[0].schema.field(column).type)
        if fill is not None:
            values = pc.fill_null(values, fill)
        indices = values.dictionary_encode().indices
        codes_: np.ndarray = pc.fill_null(indices, -1).to_numpy().astype(np.int64)
        return codes_

    ids = codes("insert_id")
    if ids.max() < 0:
        return 0
    keys = pd.DataFrame({"id": ids, "name": codes("log_name", ""), "ts": stamps[rows]})
    dup = np.zeros(len(stamps), dtype=bool)
    dup[rows[keys.duplicated(keep="first").to_numpy() & (ids >= 0)]] = True
    if not dup.any():
        return 0
    start = 0
    for i, table in enumerate(tables):
        mask = dup[start : start + table.num_rows]
        start += table.num_rows
        if mask.any():
            tables[i] = _without(table, np.flatnonzero(mask))
    return int(dup.sum())


def _take_rows(chunks: list[pa.Array], rows: np.ndarray, type_: pa.DataType) -> pa.Array:
    """``rows`` (sorted) of the chunks taken as one array, touching only the chunks they are in
    (a take over a whole chunked array first joins every chunk)."""
    starts = np.cumsum([0, *(len(chunk) for chunk in chunks)])
    cuts = np.searchsorted(rows, starts).tolist()
    pieces = [
        chunk.take(pa.array(rows[a:b] - start))
        for chunk, start, a, b in zip(chunks, starts.tolist(), cuts, cuts[1:], strict=False)
        if b > a
    ]
    return pa.concat_arrays(pieces) if pieces else pa.array([], type_)


def _without(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """The table without ``rows`` (sorted), as zero-copy slices of the rows between them."""
    bounds = [-1, *rows.tolist(), table.num_rows]
    pieces = [table.slice(a + 1, b - a - 1) for a, b in pairwise(bounds) if b - a > 1]
    return pa.concat_tables(pieces) if pieces else table.slice(0, 0)


def query_mask(table: pa.Table, query: LogQuery) -> pa.ChunkedArray:
    ts = table["timestamp"]
    start = pa.scalar(query.start, pa.timestamp("ns", tz="UTC"))
    end = pa.scalar(query.end, pa.timestamp("ns", tz="UTC"))
    mask = pc.and_(pc.greater_equal(ts, start), pc.less(ts, end))
    for column, wanted in (
        ("service", query.service),
        ("revision", query.revision),
        ("location", query.region),
    ):
        if wanted:
            mask = pc.and_(mask, pc.equal(table[column], wanted))
    if query.severity:
        floor = SEVERITY_RANK[query.severity]
        allowed = pa.array([s for s, rank in SEVERITY_RANK.items() if rank >= floor])
        mask = pc.and_(mask, pc.is_in(table["severity"], value_set=allowed))
    kinds = pa.array(list(query.log_kinds))
    mask = pc.and_(mask, pc.is_in(table["log_kind"], value_set=kinds))
    return pc.fill_null(mask, False)
