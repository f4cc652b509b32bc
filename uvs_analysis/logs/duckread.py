"""NDJSON blocks through DuckDB: the reader side of :mod:`uvs_analysis.logs.duckblock`.

The file's decompressed blocks are cut at their last newline and handed to DuckDB as Arrow
batches of (line number, line) without copying the text; a thread fetches the query's result
batches while this one adds them to the normalizer, so the parsing (DuckDB, all cores) and the
column work (Arrow) overlap. Lines the query flags are read record by record with the
reader's own rules, so line numbers and reasons stay exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Final

import numpy as np
import pyarrow as pa

from uvs_analysis.logs.duckblock import INPUT_SCHEMA, Engine, batch_columns

if TYPE_CHECKING:
    from uvs_analysis.logs.normalize import Normalizer

__all__ = ["available", "cut_lines", "group_parts", "read_lines"]

_PART_BYTES: Final = 48 << 20


def available() -> bool:
    """Whether DuckDB can be imported (else the reader uses its pyarrow path)."""
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return False
    return True


class _Feed:
    """Blocks -> INPUT_SCHEMA batches of whole lines; keeps the tail, errors and raw lines."""

    def __init__(
        self, blocks: Iterable[bytes], check_head: Callable[[Sequence[bytes], int], bool]
    ) -> None:
        self.blocks = blocks
        self.check_head = check_head
        self.lineno = 0
        self.carry = b""
        self.checked = False
        self.error: BaseException | None = None
        self.raw: dict[int, bytes] = {}

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            for block in self.blocks:
                batch = self._batch(self.carry + block if self.carry else block)
                if batch is not None:
                    yield batch
        except Exception as exc:  # re-raised by read_lines in the caller's thread
            self.error = exc

    def _batch(self, buf: bytes) -> pa.RecordBatch | None:
        first = self.lineno + 1
        cut = cut_lines(buf, first, self.raw)
        if cut is None:
            self.carry = buf
            return None
        end, numbers, lines = cut
        self.carry = buf[end:]
        if not self.checked:
            self.checked = self.check_head(buf[:end].split(b"\n")[:-1], self.lineno)
        self.lineno += len(numbers)
        return pa.record_batch([numbers, lines], schema=INPUT_SCHEMA)


def cut_lines(
    buf: bytes, first: int, raw: dict[int, bytes]
) -> tuple[int, pa.Array, pa.Array] | None:
    """The whole lines of ``buf`` as Arrow text without copying it; None without a newline.

    Returns:
        The end of the last whole line, the 1-based line numbers (from ``first``) and the lines
        (string, newline included). When the text is not UTF-8, each line that is not is kept
        in ``raw`` by its number and sent as ''.
    """
    ends = np.flatnonzero(np.frombuffer(buf, np.uint8) == 10)
    if not len(ends):
        return None
    end = int(ends[-1]) + 1
    count = len(ends)
    offsets = np.empty(count + 1, np.int32 if end < 2**31 else np.int64)
    offsets[0] = 0
    offsets[1:] = ends + 1
    string = pa.string() if end < 2**31 else pa.large_string()
    lines = pa.Array.from_buffers(string, count, [None, pa.py_buffer(offsets), pa.py_buffer(buf)])
    try:
        lines.validate(full=True)
    except pa.ArrowInvalid:
        lines = pa.array(_decoded(buf[:end], first, raw), pa.string())
    numbers = pa.array(np.arange(first, first + count, dtype=np.int64))
    return end, numbers, lines.cast(pa.string())


def _decoded(body: bytes, first: int, raw: dict[int, bytes]) -> list[str]:
    """The lines as text; one that is not UTF-8 is kept in ``raw`` and sent as ''."""
    texts = []
    for number, line in enumerate(body.split(b"\n")[:-1], start=first):
        try:
            texts.append(line.decode())
        except UnicodeDecodeError:
            raw[number] = line
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
    feed = _Feed(blocks, check_head)
    engine = Engine()

    def finish(result: pa.Table) -> None:
        for batch in result.to_batches():
            arrays, numbers, flagged = batch_columns(batch)
            flagged = [(n, feed.raw.pop(n, _line(raw))) for n, raw in flagged]
            norm.add_columns(arrays, numbers, flagged, read_line)
        if progress:
            progress(norm.read)

    # DuckDB (all cores, no GIL) runs a part while this thread reads the next one and adds
    # the previous result.
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="uvs-duckdb") as pool:
            pending: Future[pa.Table] | None = None
            for part in group_parts(feed.batches(), INPUT_SCHEMA):
                future = pool.submit(engine.run, part)
                if pending is not None:
                    finish(pending.result())
                pending = future
            if feed.error is not None:
                raise feed.error
            if pending is not None:
                finish(pending.result())
    finally:
        engine.close()
    return feed.lineno, feed.carry, feed.checked


def group_parts(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, part_bytes: int = _PART_BYTES
) -> Iterator[pa.Table]:
    """Batches grouped into tables of about ``part_bytes`` of text."""
    group: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        group.append(batch)
        size += batch.nbytes
        if size >= part_bytes:
            yield pa.Table.from_batches(group, schema)
            group, size = [], 0
    if group:
        yield pa.Table.from_batches(group, schema)


def _line(raw: bytes) -> bytes:
    """A line as the record-by-record path splits it (without its newline)."""
    return raw[:-1] if raw.endswith(b"\n") else raw
