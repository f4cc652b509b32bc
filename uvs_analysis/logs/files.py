"""Log export files as a log source: JSON arrays and NDJSON, plain or gzipped, streamed.

Accepted files:

- ``gcloud logging read --format=json`` output: one JSON array of LogEntry objects;
- NDJSON (one LogEntry per line), as Cloud Logging sinks and ``jq -c`` write;
- either of them gzipped (recognized by content, not by name).

Files are read in blocks, so a 1 GB export never sits in memory as text or as Python objects.
An empty file (or ``[]``) is a valid export with 0 entries. A malformed record is counted with
its line and skipped; a file cut off (truncated gzip, an array without its end) keeps what came
before the cut and records the cut as a bad record. A file that is not a log export at all
(binary, text, other JSON) raises :class:`~uvs_analysis.errors.NotALogExportError`.
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
import pyarrow as pa

from uvs_analysis.errors import BadInputError, NotALogExportError
from uvs_analysis.logs import duckread
from uvs_analysis.logs.arrowblock import read_block
from uvs_analysis.logs.jsonarray import iter_array
from uvs_analysis.logs.normalize import Normalizer
from uvs_analysis.logs.schema import LogLoad

if TYPE_CHECKING:
    from uvs_analysis.logs.query import LogQuery

__all__ = [
    "EXPECTED_EXPORT",
    "EXPORT_SUFFIXES",
    "Blocks",
    "FileSource",
    "OpenedExport",
    "check_first_record",
    "check_head",
    "expand_paths",
    "load_file",
    "open_export",
    "read_json_line",
]

#: File names a directory given as a source is expanded to.
EXPORT_SUFFIXES: Final = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
#: What a log file must be, for messages.
EXPECTED_EXPORT: Final = (
    "a Cloud Logging export: a JSON array of LogEntry objects (gcloud logging read "
    "--format=json) or NDJSON with one LogEntry per line, optionally gzipped"
)
_LOGENTRY_KEYS: Final = frozenset(
    {
        "logName",
        "timestamp",
        "receiveTimestamp",
        "insertId",
        "resource",
        "severity",
        "textPayload",
        "jsonPayload",
        "protoPayload",
        "httpRequest",
    }
)
_BLOCK: Final = 8 << 20
_GZ_PIECE: Final = 64 << 10
_WS: Final = " \t\r\n"


class _StreamCut(Exception):
    """The byte stream ended early (truncated or corrupt gzip)."""


class FileSource:
    """One or more export files (or directories of them) read as one source.

    Args:
        paths: files, or directories whose ``EXPORT_SUFFIXES`` files are read in name order.
    """

    def __init__(self, paths: Sequence[str | Path]) -> None:
        if isinstance(paths, str | Path):
            paths = [paths]
        if not paths:
            raise BadInputError("no log file was given", expected="one or more export files")
        self.paths = tuple(Path(p) for p in paths)

    def describe(self) -> str:
        """The files, comma-separated."""
        return ", ".join(str(p) for p in self.paths)

    def load(
        self, query: LogQuery | None = None, *, progress: Callable[[int], None] | None = None
    ) -> LogLoad:
        """Read every file into one normalized LogLoad.

        Args:
            query: when given, rows outside it are dropped and counted in ``filtered_out``.
            progress: called after each block with the number of records read so far.

        Raises:
            BadInputError: a file is missing or unreadable.
            NotALogExportError: a file is not a Cloud Logging export.
        """
        files = expand_paths(self.paths)
        normalizer = Normalizer(self.describe(), query=query)
        meta: dict[str, Any] = {"files": [str(f) for f in files], "formats": {}, "cuts": []}
        for path in files:
            normalizer.source = str(path)
            normalizer.new_part()
            fmt, cut = _read_file(path, normalizer, progress)
            meta["formats"][str(path)] = fmt
            if cut:
                meta["cuts"].append(cut)
        normalizer.source = self.describe()
        return normalizer.finish(meta)


def load_file(path: str | Path, query: LogQuery | None = None) -> LogLoad:
    """Read one export file (see :class:`FileSource`)."""
    return FileSource([path]).load(query)


# Files and blocks (shared with the BigQuery stand-in's export reader)


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """``paths`` with each directory replaced by its export files (sorted by name).

    Raises:
        BadInputError: a path does not exist, or a directory holds no export files.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and p.name.endswith(EXPORT_SUFFIXES)
            )
            if not found:
                raise BadInputError(
                    f"directory {path} holds no log export files",
                    expected="files named " + ", ".join(f"*{s}" for s in EXPORT_SUFFIXES),
                )
            files.extend(found)
        elif not path.exists():
            raise BadInputError(
                f"log file {path} does not exist",
                expected=EXPECTED_EXPORT,
                hint="check the path (relative paths start at the current directory)",
            )
        else:
            files.append(path)
    return files


def _blocks(path: Path, buffers: _Buffers) -> Iterator[bytes]:
    """Decompressed blocks of a file; raises _StreamCut after the last good block."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_BLOCK)
            if head[:2] != b"\x1f\x8b":
                while head:
                    yield head
                    head = buffers.read(handle)
                return
            yield from _gunzip(head, handle)
    except OSError as exc:
        raise BadInputError(
            f"log file {path} could not be read ({exc.strerror or exc})",
            expected="a readable file",
        ) from exc


class _Buffers:
    """Where a plain file's blocks are read: new ``bytes``, or reused buffers once enabled.

    Fresh memory for every block costs more than the read itself. A buffer is reused once
    nothing but the pool refers to it (CPython's reference count), so a block stays intact for
    as long as anything (an Arrow array over it, say) holds it.
    """

    def __init__(self) -> None:
        self.reuse = False
        self._pool: list[bytearray] = []

    def read(self, handle: Any) -> bytes:
        if not self.reuse:
            return handle.read(_BLOCK)  # type: ignore[no-any-return]
        buffer = self._free()
        size = handle.readinto(buffer)
        return buffer if size == len(buffer) else bytes(memoryview(buffer)[:size])  # type: ignore[return-value]

    def _free(self) -> bytearray:
        for buffer in self._pool:
            if sys.getrefcount(buffer) <= 3:  # the pool, this loop and the call
                return buffer
        buffer = bytearray(_BLOCK)
        self._pool.append(buffer)
        return buffer


def _gunzip(head: bytes, handle: Any) -> Iterator[bytes]:
    """Decompress (multi-member) gzip in small input pieces, so a corruption loses little."""

    def pieces() -> Iterator[bytes]:
        data = head
        while data:
            for start in range(0, len(data), _GZ_PIECE):
                yield data[start : start + _GZ_PIECE]
            data = handle.read(_BLOCK)

    decomp = zlib.decompressobj(31)
    out: list[bytes] = []
    size = 0
    for piece in pieces():
        while piece:
            if decomp.eof:
                piece = piece.lstrip(b"\0")
                if not piece:
                    break
                decomp = zlib.decompressobj(31)
            try:
                chunk = decomp.decompress(piece)
            except zlib.error as exc:
                if out:
                    yield b"".join(out)
                raise _StreamCut(f"the gzip data is corrupt ({exc})") from exc
            piece = decomp.unused_data if decomp.eof else b""
            if chunk:
                out.append(chunk)
                size += len(chunk)
        if size >= _BLOCK:
            yield b"".join(out)
            out, size = [], 0
    if out:
        yield b"".join(out)
    if not decomp.eof:
        raise _StreamCut("the gzip stream ends early (the file is truncated)")


@dataclass(frozen=True)
class OpenedExport:
    """An export file, its format sniffed: ``json`` (an array), ``ndjson`` or ``empty``.

    Attributes:
        path: the file.
        format: ``json``, ``ndjson`` or ``empty``.
        blocks: its decompressed blocks from the start, a UTF-8 byte-order mark removed.
        source: the block reader (its ``cut`` says why a damaged stream ended early).
    """

    path: Path
    format: str
    blocks: Iterator[bytes]
    source: Blocks


def open_export(path: Path) -> OpenedExport:
    """Open ``path`` and tell its format from its first bytes (gzip by content).

    Raises:
        BadInputError: the file cannot be read.
        NotALogExportError: UTF-16, a stream cut before any data, or neither ``[`` nor ``{``.
    """
    blocks = Blocks(path)
    first = b""
    for block in blocks:
        first = block
        if block.strip():
            break
    if blocks.cut and not first.strip():
        raise NotALogExportError(f"{path}: {blocks.cut}", expected=EXPECTED_EXPORT)
    start = first.lstrip()
    if start.startswith(b"\xef\xbb\xbf"):
        start = start[3:].lstrip()
    if not start:
        return OpenedExport(path, "empty", iter(()), blocks)
    if start[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise NotALogExportError(
            f"{path} is UTF-16 encoded",
            expected=EXPECTED_EXPORT + " in UTF-8",
            hint=f"convert it first, e.g. iconv -f UTF-16 -t UTF-8 {path} > export.json",
        )
    rest = _chain(first.replace(b"\xef\xbb\xbf", b"", 1), blocks)
    if start[:1] == b"[":
        return OpenedExport(path, "json", rest, blocks)
    if start[:1] == b"{":
        return OpenedExport(path, "ndjson", rest, blocks)
    shown = start[:24].decode("utf-8", "backslashreplace")
    raise NotALogExportError(
        f"{path} is not a log export: it starts with {shown!r}", expected=EXPECTED_EXPORT
    )


def _read_file(
    path: Path, norm: Normalizer, progress: Callable[[int], None] | None
) -> tuple[str, str | None]:
    """Read one file into ``norm``; returns its format and why it was cut (None if whole)."""
    opened = open_export(path)
    if opened.format == "json":
        _read_array(path, opened.blocks, norm, progress, opened.source)
    elif opened.format == "ndjson":
        _read_ndjson(path, opened.blocks, norm, progress, opened.source)
    return opened.format, opened.source.cut if opened.format != "empty" else None


class Blocks:
    """The decompressed blocks of a file; a cut stream ends the iteration and sets ``cut``.

    Args:
        path: the file.
    """

    def __init__(self, path: Path) -> None:
        self.cut: str | None = None
        self._buffers = _Buffers()
        self._it = _blocks(path, self._buffers)

    def reuse_buffers(self) -> None:
        """Let the next blocks of a plain file be ``bytearray`` buffers, overwritten once the
        reader holds no reference to them (the reader's text must not outlive the blocks)."""
        self._buffers.reuse = True

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self.cut:
            raise StopIteration
        try:
            return next(self._it)
        except _StreamCut as exc:
            self.cut = str(exc)
            raise StopIteration from None


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def check_first_record(path: Path, record: object, where: str) -> None:
    """Refuse a file whose first record is not a LogEntry-shaped object."""
    if isinstance(record, dict) and _LOGENTRY_KEYS.intersection(record):
        return
    if isinstance(record, dict):
        keys = ", ".join(repr(k) for k in list(record)[:5])
        what = f"an object with keys {keys}" if keys else "an empty object"
    else:
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
            type(record), "number"
        )
        what = f"a JSON {kind} ({json.dumps(record)[:40]})"
    raise NotALogExportError(
        f"{path} is not a log export: {where} is {what}",
        expected=EXPECTED_EXPORT + ", each with logName, timestamp, resource and a payload",
    )


# Private: JSON array


def _read_array(
    path: Path,
    blocks: Iterator[bytes],
    norm: Normalizer,
    progress: Callable[[int], None] | None,
    source: Blocks,
) -> None:
    checked = False
    for item in iter_array(blocks):
        if item.problem is not None:
            problem = f"{item.problem} ({source.cut})" if item.cut and source.cut else item.problem
            norm.bad(item.index, problem)
            continue
        if not checked:
            check_first_record(path, item.value, f"element 1 (line {item.line})")
            checked = True
        norm.add(item.value, item.index)
        if progress and not item.index % 10_000:
            progress(norm.read)
    if progress:
        progress(norm.read)


# Private: NDJSON


def _read_ndjson(
    path: Path,
    blocks: Iterator[bytes],
    norm: Normalizer,
    progress: Callable[[int], None] | None,
    source: Blocks,
) -> None:
    loads, add, bad = orjson.loads, norm.add, norm.bad
    if norm.takes_blocks and duckread.available():
        source.reuse_buffers()
        lineno, carry, checked = duckread.read_lines(
            blocks,
            norm,
            progress,
            lambda lines, before: check_head(path, lines, before),
            _read_line,
        )
    else:
        lineno, carry, checked = _read_blocks(path, blocks, norm, progress)
    if carry.strip():
        lineno += 1
        if source.cut:
            bad(lineno, f"line {lineno} is cut off: {source.cut}")
        else:
            if not checked:
                checked = check_head(path, [carry], lineno - 1)
            try:
                record = loads(carry)
            except orjson.JSONDecodeError:
                read_json_line(carry, lineno, bad, add)
            else:
                add(record, lineno)
    elif source.cut:
        bad(lineno + 1, f"the data ends early after line {lineno}: {source.cut}")
    if not checked and norm.read and norm.bad_total == norm.read:
        raise NotALogExportError(
            f"{path} is not a log export: none of its lines is a JSON object "
            f"(first: {norm.bad_records[0].reason})",
            expected=EXPECTED_EXPORT,
        )
    if progress:
        progress(norm.read)


def _read_blocks(
    path: Path,
    blocks: Iterator[bytes],
    norm: Normalizer,
    progress: Callable[[int], None] | None,
) -> tuple[int, bytes, bool]:
    """The pyarrow path: whole lines of ``blocks`` into ``norm``; (lines, tail, head checked)."""
    checked = False
    lineno = 0
    carry = b""
    pending: tuple[list[bytes], int, Future[pa.Table | None] | None] | None = None
    # One worker parses the next block with pyarrow (no GIL) while this thread finishes the
    # previous one in Python.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="uvs-ndjson") as pool:
        for block in blocks:
            lines = (carry + block if carry else block).split(b"\n")
            carry = lines.pop()
            if not checked:
                checked = check_head(path, lines, lineno)
            fast = norm.takes_blocks and lines and all(lines)
            future = pool.submit(read_block, lines) if fast else None
            if pending:
                _finish_block(norm, *pending)
            pending = (lines, lineno + 1, future)
            lineno += len(lines)
            if progress:
                progress(norm.read)
        if pending:
            _finish_block(norm, *pending)
    return lineno, carry, checked


def _read_line(
    line: bytes,
    number: int,
    add: Callable[[object, int], None],
    bad: Callable[[int, str], None],
) -> None:
    """One NDJSON line record by record: added, recorded as bad, or (blank) ignored."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        read_json_line(line, number, bad, add)
        return
    add(record, number)


def _finish_block(
    norm: Normalizer, lines: list[bytes], first: int, future: Future[pa.Table | None] | None
) -> None:
    """Add a block through the fast path when pyarrow took it, else record by record."""
    table = future.result() if future is not None else None
    if table is not None:
        norm.add_block(lines, table, first)
        return
    for number, line in enumerate(lines, start=first):
        _read_line(line, number, norm.add, norm.bad)


def check_head(path: Path, lines: Sequence[bytes], lineno: int) -> bool:
    """Check the first JSON record among ``lines``; False if none of them is JSON."""
    for number, line in enumerate(lines, start=lineno + 1):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                continue
        check_first_record(path, record, f"line {number}")
        return True
    return False


def read_json_line(
    line: bytes | str,
    lineno: int,
    bad: Callable[[int, str], None],
    add: Callable[[object, int], None],
) -> None:
    """A line a fast parser refused, read with Python's ``json``: blank (skipped), valid JSON
    the fast parser does not take (NaN, huge ints: ``add(record, lineno)``), or a bad line
    (``bad(lineno, reason)``)."""
    if not line.strip():
        return
    try:
        record = json.loads(line)
    except ValueError as exc:
        detail = (
            f"{exc.msg} at column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else "invalid UTF-8"
        )
        bad(lineno, f"line {lineno} is not valid JSON ({detail}), expected one LogEntry object")
        return
    except RecursionError:
        bad(lineno, f"line {lineno} is nested too deeply, expected one LogEntry object")
        return
    add(record, lineno)
