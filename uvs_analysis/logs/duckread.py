"""NDJSON blocks through DuckDB: the reader side of :mod:`uvs_analysis.logs.duckblock`.

The file's decompressed blocks are cut at newlines and handed to DuckDB as Arrow batches of
(line number, line, odd-value flag) without copying the text. Parts of the file run side by
side on engines of their own (DuckDB, no GIL) while this thread reads the next part and adds
the finished results in file order, so parsing and the column work (Arrow) overlap. Lines the
query flags are read record by record with the reader's own rules, so line numbers and
reasons stay exact.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Final

import numpy as np
import pyarrow as pa

from uvs_analysis.logs.duckblock import INPUT_SCHEMA, Engine, batch_columns, input_batch

if TYPE_CHECKING:
    from uvs_analysis.logs.normalize import Normalizer

__all__ = ["LineFeed", "available", "cut_lines", "engine_layout", "group_parts", "read_lines"]

_PART_BYTES: Final = 96 << 20  # each part costs ~30 ms of planning the query
_FIRST_PART_BYTES: Final = 8 << 20
_MAX_ENGINES: Final = 4
_STEP: Final = 1 << 20


def available() -> bool:
    """Whether DuckDB can be imported (else the reader uses its pyarrow path)."""
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return False
    return True


class LineFeed:
    """Blocks -> (line numbers, lines) of whole lines, without copying the blocks' text.

    A line that spans two blocks is the only text copied. Attributes: ``lineno`` (whole lines
    so far), ``carry`` (the unterminated tail), ``checked`` (``check_head`` accepted a line)
    and ``raw`` (the lines that are not UTF-8, by number; sent as '').

    Args:
        check_head: ``check_head(lines, lines_before)`` refuses a file that is not an export;
            False while none of the lines is JSON.
        raw: where lines that are not UTF-8 are kept.
    """

    def __init__(
        self,
        check_head: Callable[[Sequence[bytes], int], bool],
        raw: dict[int, bytes] | None = None,
    ) -> None:
        self.check_head = check_head
        self.raw: dict[int, bytes] = {} if raw is None else raw
        self.lineno = 0
        self.carry = b""
        self.checked = False
        self._scratch = np.empty(_STEP, np.bool_)

    def lines(self, blocks: Iterable[bytes]) -> Iterator[tuple[pa.Array, pa.Array]]:
        """The whole lines of ``blocks``: (1-based numbers, text with its newline), never none."""
        for block in blocks:
            start = 0
            if self.carry:
                newline = block.find(b"\n")
                if newline < 0:
                    self.carry += bytes(block)
                    continue
                start = newline + 1
                joined = self.carry + block[:start]
                self.carry = b""
                yield from self._cut(joined, 0)
            if start < len(block):
                yield from self._cut(block, start)

    def _cut(self, buf: bytes, start: int) -> Iterator[tuple[pa.Array, pa.Array]]:
        cut = cut_lines(buf, start, self.lineno + 1, self.raw, self._scratch)
        if cut is None:
            self.carry = bytes(buf[start:])
            return
        end, numbers, lines = cut
        self.carry = bytes(buf[end:])
        if not self.checked:
            head = [bytes(line) for line in buf[start:end].split(b"\n")[:-1]]
            self.checked = self.check_head(head, self.lineno)
        self.lineno += len(numbers)
        yield numbers, lines


def cut_lines(
    buf: bytes,
    start: int,
    first: int,
    raw: dict[int, bytes],
    scratch: np.ndarray | None = None,
) -> tuple[int, pa.Array, pa.Array] | None:
    """The whole lines of ``buf[start:]`` as Arrow text without copying it; None without one.

    Args:
        buf: the text.
        start: where the first line starts.
        first: the first line's number.
        raw: where each line that is not UTF-8 is kept by its number (and sent as '').
        scratch: a bool array reused for the newline search, which goes a step of its size
            at a time (fresh memory for each block costs more than the search, and a step
            that stays in the cache is faster).

    Returns:
        The end of the last whole line, the 1-based line numbers (from ``first``) and the lines
        (string, newline included).
    """
    data = np.frombuffer(buf, np.uint8)[start:]
    if scratch is None:
        ends = np.flatnonzero(data == 10)
    else:
        step = len(scratch)
        found = [
            np.flatnonzero(np.equal(data[at : at + step], 10, out=scratch[: len(data) - at])) + at
            for at in range(0, len(data), step)
        ]
        ends = np.concatenate(found) if found else np.empty(0, np.intp)
    if not len(ends):
        return None
    ends += start + 1
    end = int(ends[-1])
    count = len(ends)
    offsets = np.empty(count + 1, np.int32 if end < 2**31 else np.int64)
    offsets[0] = start
    offsets[1:] = ends
    string = pa.string() if end < 2**31 else pa.large_string()
    lines = pa.Array.from_buffers(string, count, [None, pa.py_buffer(offsets), pa.py_buffer(buf)])
    try:
        lines.validate(full=True)
    except pa.ArrowInvalid:
        lines = pa.array(_decoded(buf[start:end], first, raw), pa.string())
    numbers = pa.array(np.arange(first, first + count, dtype=np.int64))
    return end, numbers, lines.cast(pa.string())


def _decoded(body: bytes, first: int, raw: dict[int, bytes]) -> list[str]:
    """The lines as text (newline included); one that is not UTF-8 is kept in ``raw`` (without
    its newline) and sent as ''."""
    texts = []
    for number, line in enumerate(body.split(b"\n")[:-1], start=first):
        try:
            texts.append(line.decode() + "\n")
        except UnicodeDecodeError:
            raw[number] = bytes(line)
            texts.append("")
    return texts


def read_lines(
    blocks: Iterable[bytes],
    norm: Normalizer,
    progress: Callable[[int], None] | None,
    check_head: Callable[[Sequence[bytes], int], bool],
    read_line: Callable[..., None],
) -> tuple[int, bytes, bool]:
    """Add every whole line of ``blocks`` to ``norm`` through DuckDB.

    Args:
        blocks: the file's decompressed blocks.
        norm: the normalizer (its ``takes_blocks`` must be true).
        progress: called after each part with the records read so far.
        check_head: ``check_head(lines, lines_before)`` refuses a file that is not an export;
            False while none of the lines is JSON.
        read_line: ``read_line(raw, number, add, bad)`` for a flagged line.

    Returns:
        The number of whole lines, the unterminated tail and whether the head was checked.
    """
    feed = LineFeed(check_head)

    def batches() -> Iterator[pa.RecordBatch]:
        for numbers, lines in feed.lines(blocks):
            yield input_batch(numbers, lines)

    def finish(result: pa.Table) -> None:
        for batch in result.to_batches():
            arrays, numbers, flagged = batch_columns(batch)
            flagged = [(n, feed.raw.pop(n, _line(raw))) for n, raw in flagged]
            norm.add_columns(arrays, numbers, flagged, read_line)
        if progress:
            progress(norm.read)

    # Parts run side by side on engines of their own (no GIL) while this thread reads the
    # next part and adds the results in order. The engines are set up in their threads.
    count, threads = engine_layout(os.cpu_count() or 1)
    engines: list[Future[Engine]] = []
    try:
        with ThreadPoolExecutor(max_workers=count, thread_name_prefix="uvs-duckdb") as pool:
            engines = [pool.submit(Engine, threads=threads) for _ in range(count)]
            pending: deque[Future[pa.Table]] = deque()
            parts = group_parts(
                batches(), INPUT_SCHEMA, _PART_BYTES, first_bytes=_FIRST_PART_BYTES
            )
            for index, part in enumerate(parts):
                if len(pending) == count:
                    finish(pending.popleft().result())
                pending.append(pool.submit(_run, engines[index % count], part))
            while pending:
                finish(pending.popleft().result())
    finally:  # the pool has finished every task here
        for engine in engines:
            if engine.exception() is None:
                engine.result().close()
    return feed.lineno, feed.carry, feed.checked


def _run(engine: Future[Engine], part: pa.Table) -> pa.Table:
    return engine.result().run(part)


def engine_layout(cores: int) -> tuple[int, int]:
    """How many engines run parts side by side, and the threads of each, on ``cores``.

    One-thread engines on parts of their own waste less than one engine's threads sharing a
    part; at most ``_MAX_ENGINES`` parts are in flight (each holds its text and its result).
    """
    count = max(1, min(cores, _MAX_ENGINES))
    return count, max(1, cores // count)


def group_parts(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    part_bytes: int = _PART_BYTES,
    *,
    first_bytes: int | None = None,
) -> Iterator[pa.Table]:
    """Batches grouped into tables of about ``part_bytes`` of text.

    With ``first_bytes``, parts start at that size and double up to ``part_bytes``: the engines
    start sooner, and a small file is still spread over several of them.
    """
    limit = min(first_bytes or part_bytes, part_bytes)
    group: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        group.append(batch)
        size += batch.nbytes
        if size >= limit:
            yield pa.Table.from_batches(group, schema)
            group, size = [], 0
            limit = min(limit * 2, part_bytes)
    if group:
        yield pa.Table.from_batches(group, schema)


def _line(raw: bytes) -> bytes:
    """A line as the record-by-record path splits it (without its newline)."""
    return raw[:-1] if raw.endswith(b"\n") else raw
