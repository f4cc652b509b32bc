"""Raw LogEntry dicts -> the normalized frame of ``schema.COLUMNS``, with full accounting.

Pure: no file, socket or clock. Records are turned into row tuples one by one (the only
per-record Python), and every ``chunk_rows`` rows the chunk becomes Arrow columns where the
column-wide work happens in C: timestamp parsing, URL paths, close codes found in message
text and the query's window/resource/severity/log-kind filter. Duplicates (same insertId,
timestamp and logName) are dropped once at the end. Every input record ends up either in the
frame or in one of the counters of :class:`~uvs_analysis.logs.schema.LogLoad`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from uvs_analysis.logs.columns import (
    close_codes_from_text,
    drop_duplicates,
    parse_timestamps,
    query_mask,
    to_array,
    url_paths,
)
from uvs_analysis.logs.extract import (
    FIELD_ALIASES,
    PAYLOAD_CONTAINERS,
    close_code_of,
    infer_severity,
    latency_seconds,
    status_code,
)
from uvs_analysis.logs.schema import (
    COLUMNS,
    SEVERITIES,
    SEVERITY_RANK,
    BadRecord,
    LogLoad,
    empty_frame,
    log_kind_of,
)

if TYPE_CHECKING:
    from uvs_analysis.logs.query import LogQuery

__all__ = ["MAX_BAD_DETAILS", "Normalizer", "normalize_records"]

#: How many BadRecord details a load keeps (all bad records are counted in ``bad_total``).
MAX_BAD_DETAILS: Final = 1000
_CHUNK_ROWS: Final = 50_000
_LINE: Final = "__line"

_ARROW_TYPES: Final = {
    "string[pyarrow]": pa.string(),
    "bool": pa.bool_(),
    "Int64": pa.int64(),
    "Float64": pa.float64(),
}
_PANDAS_TYPES: Final = {
    pa.string(): pd.StringDtype("pyarrow"),
    pa.large_string(): pd.StringDtype("pyarrow"),
    pa.int64(): pd.Int64Dtype(),
    pa.float64(): pd.Float64Dtype(),
}
_CHUNK_SCHEMA: Final = pa.schema(
    [
        *(
            (
                name,
                pa.large_string()
                if dtype == "string[pyarrow]"
                else _ARROW_TYPES.get(dtype, pa.timestamp("ns", tz="UTC")),
            )
            for name, (dtype, _) in COLUMNS.items()
        ),
        (_LINE, pa.int64()),
    ]
)
#: Order of the row tuples built per record: the schema's columns minus http_path (derived
#: from http_url per chunk), plus the source line first.
_ROW_FIELDS: Final = ("line", *(name for name in COLUMNS if name != "http_path"))
_SEVERITY_SET: Final = frozenset(SEVERITIES)
_SEVERITY_BY_RANK: Final = {rank: name for name, rank in SEVERITY_RANK.items()}
_ALIAS_KEYS: Final = frozenset(FIELD_ALIASES)
_ALIAS_RANK: Final = {key: rank for rank, key in enumerate(reversed(tuple(FIELD_ALIASES)))}
_ID_FIELDS: Final = ("connection_id", "user_id", "run_id", "thread_id")
_STRING_FIELDS: Final = ("logName", "severity", "insertId", "trace", "spanId", "textPayload")
_OBJECT_FIELDS: Final = ("resource", "labels", "httpRequest", "jsonPayload")
_MAX_NAME_CACHE: Final = 4096


def normalize_records(
    records: Iterable[object],
    *,
    source: str = "<records>",
    query: LogQuery | None = None,
) -> LogLoad:
    """Normalize raw LogEntry dicts (camelCase API JSON) into a :class:`LogLoad`.

    Never raises on a record: anything that is not a usable LogEntry is counted as bad with
    its 1-based position and the reason.

    Args:
        records: LogEntry mappings, as the Cloud Logging API or an export file gives them.
        source: where they came from, named in bad-record reports.
        query: when given, rows outside its window, service, revision, region, severity floor
            or log kinds (and its ``extra_filter``) are dropped and counted in ``filtered_out``.
    """
    normalizer = Normalizer(source, query=query)
    for line, record in enumerate(records, start=1):
        normalizer.add(record, line)
    return normalizer.finish()


class Normalizer:
    """Accumulates records into normalized Arrow chunks; ``finish()`` returns the LogLoad.

    Args:
        source: the file or source named in bad-record reports.
        query: optional filter applied to every row (see :func:`normalize_records`).
        chunk_rows: rows per Arrow chunk (memory/speed trade-off).
        max_bad_details: how many BadRecord details to keep.
    """

    def __init__(
        self,
        source: str,
        *,
        query: LogQuery | None = None,
        chunk_rows: int = _CHUNK_ROWS,
        max_bad_details: int = MAX_BAD_DETAILS,
    ) -> None:
        self.source = source
        self.query = query
        self.read = 0
        self.bad_total = 0
        self.filtered_out = 0
        self._bad: list[BadRecord] = []
        self._bad_order: dict[BadRecord, tuple[int, int, int]] = {}
        self._max_bad = max_bad_details
        self._chunk_rows = chunk_rows
        self._rows: list[tuple[Any, ...]] = []
        self._tables: list[pa.Table] = []
        self._names: dict[str, tuple[str, str | None]] = {}
        self._extra: Callable[[Mapping[str, Any]], bool] | None = None
        self._part = 0
        if query is not None and query.extra_filter and query.extra_filter.strip():
            from uvs_analysis.logs.filter_lang import compile_filter

            self._extra = compile_filter(query.extra_filter)

    # Public

    @property
    def bad_records(self) -> tuple[BadRecord, ...]:
        """The bad records kept so far (at most ``max_bad_details``)."""
        return tuple(self._bad)

    def add(self, record: object, line: int) -> None:
        """Add one raw record found at ``line`` (1-based) of the source."""
        row = self._accept(record, line)
        if row is not None:
            self._rows.append(row)
            if len(self._rows) >= self._chunk_rows:
                self._flush()

    def _accept(self, record: object, line: int) -> tuple[Any, ...] | None:
        """Count one record; its row tuple, or None when it was bad or filtered out."""
        self.read += 1
        try:
            row = self._row(record, line)
        except Exception as exc:  # a record must never stop the load
            row = f"the record could not be read ({type(exc).__name__}: {exc})"
        if type(row) is str:
            self._record_bad(line, row)
            return None
        if self._extra is not None:
            try:
                keep = self._extra(record)  # type: ignore[arg-type]
            except Exception as exc:
                self._record_bad(line, f"the extra filter failed on it ({exc})")
                return None
            if not keep:
                self.filtered_out += 1
                return None
        return row  # type: ignore[return-value]

    def new_part(self) -> None:
        """Start the next part of the source (a new file): its lines are numbered from 1 again."""
        self._part += 1

    def bad(self, line: int, reason: str) -> None:
        """Count a record the reader could not even parse (e.g. malformed JSON)."""
        self.read += 1
        self._record_bad(line, reason)

    def finish(self, meta: Mapping[str, object] | None = None) -> LogLoad:
        """Build the frame (dropping duplicates) and the LogLoad; the normalizer is spent."""
        self._flush()
        self._in_line_order()
        duplicates = drop_duplicates(self._tables)
        if self._tables:
            table = pa.concat_tables(self._tables).drop_columns([_LINE])
            self._tables = []
            frame = table.to_pandas(types_mapper=_PANDAS_TYPES.get, self_destruct=True)
            del table
        else:
            frame = empty_frame()
        return LogLoad(
            frame=frame,
            source=self.source,
            read=self.read,
            bad_records=tuple(sorted(self._bad, key=self._bad_order.__getitem__)),
            bad_total=self.bad_total,
            duplicates=duplicates,
            filtered_out=self.filtered_out,
            meta=dict(meta or {}),
        )

    def _in_line_order(self) -> None:
        """Put the rows in source-line order (a parallel engine hands them out in any order)."""
        if not self._tables:
            return
        order = np.concatenate([table[_LINE].to_numpy() for table in self._tables])
        if len(order) < 2 or (order[1:] > order[:-1]).all():
            return
        table = pa.concat_tables(self._tables)
        self._tables = []
        perm = np.argsort(order, kind="stable")
        # The engine's output is a few long runs of consecutive rows: reorder them as slices.
        cuts = np.flatnonzero(np.diff(perm) != 1) + 1
        if len(cuts) > len(perm) // 256:
            self._tables = [table.take(pa.array(perm))]
            return
        starts = [0, *cuts.tolist()]
        ends = [*cuts.tolist(), len(perm)]
        self._tables = [table.slice(int(perm[a]), b - a) for a, b in zip(starts, ends, strict=True)]

    # Private: one record

    def _record_bad(self, line: int, reason: str) -> None:
        self.bad_total += 1
        if len(self._bad) < self._max_bad:
            record = BadRecord(self.source, line, reason)
            self._bad_order.setdefault(record, (self._part, line, len(self._bad)))
            self._bad.append(record)

    def _row(self, rec: object, line: int) -> tuple[Any, ...] | str:
        """The row tuple (``_ROW_FIELDS`` order) for one record, or why it is bad."""
        if type(rec) is not dict:
            if not isinstance(rec, Mapping):
                return f"it is a JSON {_json_type(rec)}, expected a LogEntry object"
            rec = dict(rec)
        get = rec.get
        for key in _STRING_FIELDS:
            value = get(key)
            if value is not None and type(value) is not str:
                if key == "severity" and type(value) is int and value in _SEVERITY_BY_RANK:
                    continue
                return f"field {key!r} is a JSON {_json_type(value)}, expected a string"
        for key in _OBJECT_FIELDS:
            value = get(key)
            if value is not None and type(value) is not dict:
                return f"field {key!r} is a JSON {_json_type(value)}, expected an object"
        jp: dict[str, Any] | None = get("jsonPayload")
        ts = get("timestamp")
        if ts is None and jp is not None:
            ts = jp.get("timestamp")
            if ts is None:
                ts = jp.get("time")
        if type(ts) is not str:
            if ts is None:
                if not rec:
                    return "it is an empty object, expected a LogEntry"
                return "it has no timestamp (LogEntry.timestamp or the payload's own)"
            ts = _epoch_text(ts)
            if ts is None:
                return "field 'timestamp' is not a time, expected an RFC 3339 string"
        rts = get("receiveTimestamp")
        if type(rts) is not str:
            rts = None

        raw_name: str | None = get("logName")
        names = self._names.get(raw_name) if raw_name is not None else ("other", None)
        if names is None and raw_name is not None:
            names = (log_kind_of(raw_name), unquote(raw_name))
            if len(self._names) < _MAX_NAME_CACHE:
                self._names[raw_name] = names
        kind, log_name = names or ("other", None)

        resource = get("resource")
        rlabels = resource.get("labels") if resource is not None else None
        if type(rlabels) is dict:
            service = _text(rlabels.get("service_name"))
            revision = _text(rlabels.get("revision_name"))
            location = _text(rlabels.get("location"))
        else:
            service = revision = location = None
        labels = get("labels")

        found: dict[str, Any] = {}
        if labels:
            instance_id = _text(labels.get("instanceId"))
            _scan(labels, found)
        else:
            instance_id = None
        text = get("textPayload")
        payload = None
        if jp is not None:
            _scan_payload(jp, found)
            message = jp.get("message")
            if message is not None and type(message) is not str:
                message = _dumps(message).decode()
            payload = _dumps(jp)
        else:
            proto = get("protoPayload")
            if type(proto) is dict:
                payload = _dumps(proto)
            message = None
        if text is not None:
            message = text

        severity = get("severity")
        inferred = False
        if severity is None:
            psev = jp.get("severity") if jp is not None else None
            if type(psev) is str and psev.upper() in _SEVERITY_SET:
                severity = psev.upper()
            elif kind == "stderr" and text:
                severity = infer_severity(text)
                inferred = severity is not None
            if severity is None:
                severity = "DEFAULT"
        elif type(severity) is not str:
            severity = _SEVERITY_BY_RANK[severity]
        elif severity not in _SEVERITY_SET:
            severity = severity.upper()

        trace = get("trace")
        if trace is None:
            trace = found.get("trace")

        http = get("httpRequest")
        if http is not None:
            method = _text(http.get("requestMethod"))
            url = _text(http.get("requestUrl"))
            status = status_code(http.get("status"))
            latency = latency_seconds(http.get("latency"))
            agent = _text(http.get("userAgent"))
            remote = _text(http.get("remoteIp"))
        else:
            method = url = status = latency = agent = remote = None

        fget = found.get
        return (
            line,
            ts,
            rts,
            severity,
            inferred,
            kind,
            log_name,
            service,
            revision,
            location,
            instance_id,
            trace,
            get("spanId"),
            get("insertId"),
            message,
            payload,
            method,
            url,
            status,
            latency,
            agent,
            remote,
            fget("ws_close_code"),
            fget("ws_close_reason"),
            fget("connection_id"),
            fget("user_id"),
            fget("run_id"),
            fget("thread_id"),
        )

    # Private: one chunk

    def _flush(self) -> None:
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        arrays, lines = _row_arrays(rows)
        self._add_chunk(arrays, lines)

    @property
    def takes_blocks(self) -> bool:
        """Whether :meth:`add_block` may be used (not with a query's ``extra_filter``)."""
        return self._extra is None

    def add_block(self, lines: Sequence[bytes], table: pa.Table, first_line: int) -> None:
        """Add NDJSON lines already parsed by ``arrowblock.read_block`` (the fast path)."""
        from uvs_analysis.logs.arrowblock import block_columns

        self._flush()
        arrays, bad = block_columns(table, lines, _scan_payload, _dumps, _epoch_text)
        self.read += len(lines)
        line_numbers = pa.array(range(first_line, first_line + len(lines)), pa.int64())
        if bad:
            for index, reason in bad:
                self._record_bad(first_line + index, reason)
            keep = pa.array(np.isin(np.arange(len(lines)), [i for i, _ in bad], invert=True))
            arrays = {name: pc.filter(values, keep) for name, values in arrays.items()}
            line_numbers = pc.filter(line_numbers, keep)
        self._add_chunk(arrays, line_numbers)

    def add_columns(
        self,
        arrays: dict[str, pa.Array],
        lines: pa.Array,
        flagged: Sequence[tuple[int, bytes]],
        read_line: Callable[..., None],
    ) -> None:
        """Add rows whose columns were derived elsewhere (the DuckDB fast path), in line order.

        Args:
            arrays: the ``_add_chunk`` columns of the good rows (timestamps still text).
            lines: their 1-based line numbers.
            flagged: (line number, raw line) of the lines to read record by record instead.
            read_line: ``read_line(raw, number, add, bad)`` parses one line and calls
                ``add(record, number)`` or ``bad(number, reason)`` (the reader's own rules).
        """
        self._flush()
        self.read += len(lines)
        if flagged:
            rows: list[tuple[Any, ...]] = []

            def add(record: object, number: int) -> None:
                row = self._accept(record, number)
                if row is not None:
                    rows.append(row)

            for number, raw in flagged:
                read_line(raw, number, add, self.bad)
            if rows:  # out of line order here; finish() puts every row in order
                extra, extra_lines = _row_arrays(rows)
                lines = pa.concat_arrays([lines, extra_lines])
                arrays = {
                    name: pa.concat_arrays([values, extra[name].cast(values.type)])
                    for name, values in arrays.items()
                }
        if len(lines):
            self._add_chunk(arrays, lines)

    def _add_chunk(self, arrays: dict[str, pa.Array], lines: pa.Array) -> None:
        """Finish a chunk's columns (``timestamp``/``receive_timestamp`` still text) and keep it."""
        raw_ts = arrays["timestamp"]
        arrays["timestamp"] = parse_timestamps(raw_ts)
        arrays["receive_timestamp"] = parse_timestamps(arrays["receive_timestamp"])
        arrays["http_path"] = url_paths(arrays["http_url"])
        close_codes_from_text(arrays)

        order = pc.add(lines, self._part << 40) if self._part else lines
        table = pa.table({**{name: arrays[name] for name in COLUMNS}, _LINE: order})
        bad_ts = pc.is_null(arrays["timestamp"])
        if bad_ts.true_count:
            for index in pc.indices_nonzero(bad_ts).to_pylist():
                self._record_bad(
                    lines[index].as_py(),
                    f"timestamp {str(raw_ts[index].as_py())[:80]!r} is not a time (or not "
                    "within 1677-2262), expected RFC 3339 such as 2025-09-15T01:50:26.680191Z",
                )
            table = table.filter(pc.invert(bad_ts))
        if self.query is not None:
            keep = query_mask(table, self.query)
            kept = table.filter(keep)
            self.filtered_out += table.num_rows - kept.num_rows
            table = kept
        if table.num_rows:
            # pandas keeps its Arrow strings as large_string: cast now, while the engine works.
            self._tables.append(table.cast(_CHUNK_SCHEMA))


def _row_arrays(rows: list[tuple[Any, ...]]) -> tuple[dict[str, pa.Array], pa.Array]:
    """Row tuples (``_ROW_FIELDS``) -> the ``_add_chunk`` columns and the line numbers."""
    columns = dict(zip(_ROW_FIELDS, zip(*rows, strict=True), strict=True))
    lines = pa.array(columns.pop("line"), type=pa.int64())
    arrays = {
        name: to_array(values, _ARROW_TYPES.get(COLUMNS[name][0], pa.string()))
        for name, values in columns.items()
    }
    return arrays, lines


# Private helpers


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _text(value: object) -> str | None:
    """A string field, tolerating numbers (stringified) and dropping objects."""
    if type(value) is str or value is None:
        return value  # type: ignore[return-value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _epoch_text(value: object) -> str | None:
    """An epoch-seconds number as an RFC 3339 string, else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _dumps(value: object) -> bytes:
    """Compact JSON bytes; tolerates what orjson refuses (huge ints, lone surrogates)."""
    try:
        return orjson.dumps(value)  # type: ignore[no-any-return]
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, separators=(",", ":"), default=str).encode()


def _scan_payload(payload: dict[str, Any], found: dict[str, Any]) -> None:
    """Copy aliased fields of a jsonPayload (its containers, then its top level) into ``found``."""
    intersection = _ALIAS_KEYS.intersection
    for name in PAYLOAD_CONTAINERS:
        inner = payload.get(name)
        if type(inner) is dict and inner and not _ALIAS_KEYS.isdisjoint(inner):
            _scan(inner, found, intersection(inner))
    hits = intersection(payload)
    if hits:
        _scan(payload, found, hits)


def _scan(container: dict[str, Any], found: dict[str, Any], hits: Any = None) -> None:
    """Copy aliased fields of one container into ``found`` (overriding earlier ones)."""
    if hits is None:
        hits = _ALIAS_KEYS.intersection(container)
    if not hits:
        return
    ordered = sorted(hits, key=_ALIAS_RANK.__getitem__) if len(hits) > 1 else hits
    code = reason = None
    for key in ordered:
        column = FIELD_ALIASES[key]
        value = container[key]
        if column == "ws_close_code":
            code = close_code_of(value) or code
        elif column == "ws_close_reason":
            if type(value) is str:
                reason = value
        else:
            text = _text(value)
            if text is not None:
                found[column] = text
    if code is not None:
        found["ws_close_code"] = code
        found["ws_close_reason"] = reason
