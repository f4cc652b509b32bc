"""Stream the elements of one big JSON array without holding the whole array in memory.

``gcloud logging read --format=json`` writes one pretty-printed array; ``json.load`` of a 1 GB
export would hold the text and every entry at once. :func:`iter_array` decodes one element at
a time from a stream of byte blocks (with the C scanner behind ``json.JSONDecoder.raw_decode``)
and keeps only the unread tail. A malformed element is reported and skipped: in pretty-printed
output the next element is found exactly (a newline cannot occur inside a JSON string), in
compact output at the next ``},{``. Pure: it reads only the blocks it is given.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["ArrayItem", "iter_array"]

_NON_WS: Final = re.compile(r"[^ \t\r\n]")
_MARGIN: Final = 64


@dataclass(frozen=True)
class ArrayItem:
    """One element (or one problem) of the array.

    Attributes:
        index: 1-based element number (for a problem: the element it concerns).
        line: 1-based line of the file where the element starts.
        value: the decoded element (None for a problem).
        problem: what was wrong and what was expected, or None for a good element.
        cut: True when the problem is that the data ends early.
    """

    index: int
    line: int
    value: Any = None
    problem: str | None = None
    cut: bool = False


def iter_array(blocks: Iterable[bytes]) -> Iterator[ArrayItem]:
    """Yield the elements of the JSON array in ``blocks`` (UTF-8), then any trailing problem.

    The first non-whitespace character must be ``[`` (the caller checks this).
    """
    return _Reader(blocks).items()


class _Reader:
    def __init__(self, blocks: Iterable[bytes]) -> None:
        self._blocks = iter(blocks)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._scan = json.JSONDecoder().raw_decode
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self.indent: str | None = None

    def _more(self) -> bool:
        """Append the next block; False at the end of the data."""
        if self.eof:
            return False
        block = next(self._blocks, None)
        if block is None:
            self.eof = True
            text = self._decoder.decode(b"", final=True)
        else:
            text = self._decoder.decode(block)
        if self.pos:
            self.buf = self.buf[self.pos :]
            self.pos = 0
        self.buf += text
        return True

    def _advance(self, new_pos: int) -> None:
        self.line += self.buf.count("\n", self.pos, new_pos)
        self.pos = new_pos

    def _peek(self) -> str:
        """The next non-whitespace character ('' at the end), positioned on it."""
        while True:
            match = _NON_WS.search(self.buf, self.pos)
            if match:
                self._advance(match.start())
                return self.buf[self.pos]
            self._advance(len(self.buf))
            if not self._more():
                return ""

    def items(self) -> Iterator[ArrayItem]:
        if self._peek() != "[":
            yield ArrayItem(0, self.line, problem="the data does not start with '['")
            return
        self._advance(self.pos + 1)
        if self._peek() == "]":
            yield from self._after_end(0)
            return
        index = 0
        while True:
            index += 1
            if index == 1:
                start = self.buf.rfind("\n", 0, self.pos)
                gap = self.buf[start + 1 : self.pos] if start >= 0 else None
                self.indent = gap if gap is not None and not gap.strip() else None
            item = self._element(index)
            yield item
            if item.problem is not None:
                if item.cut or not self._resync():
                    if not item.cut:
                        yield ArrayItem(
                            index,
                            self.line,
                            problem="no further element could be found after it; the rest of "
                            "the array was skipped",
                        )
                    return
                continue
            char = self._peek()
            if char == ",":
                self._advance(self.pos + 1)
                if self._peek() == "]":
                    yield from self._after_end(index)
                    return
            elif char == "]":
                yield from self._after_end(index)
                return
            elif char == "":
                yield ArrayItem(
                    index + 1,
                    self.line,
                    problem=f"the array ends early after element {index} (no closing ']')",
                    cut=True,
                )
                return
            else:
                yield ArrayItem(
                    index + 1,
                    self.line,
                    problem=f"found {char!r} after element {index}, expected ',' or ']'",
                )
                if not self._resync():
                    return

    def _element(self, index: int) -> ArrayItem:
        line = self.line
        while True:
            try:
                value, end = self._scan(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                near_end = exc.pos >= len(self.buf) - _MARGIN
                if near_end or exc.msg.startswith("Unterminated string"):
                    if self._more():
                        continue
                    return ArrayItem(
                        index,
                        line,
                        problem=f"element {index} (line {line}) is cut off: the data ends in it",
                        cut=True,
                    )
                err_line = line + self.buf.count("\n", self.pos, exc.pos)
                self._advance(exc.pos)
                return ArrayItem(
                    index,
                    line,
                    problem=f"element {index} (line {line}) is not valid JSON ({exc.msg} at "
                    f"line {err_line})",
                )
            except RecursionError:
                return ArrayItem(index, line, problem=f"element {index} is nested too deeply")
            self._advance(end)
            return ArrayItem(index, line, value=value)

    def _resync(self) -> bool:
        """Move to the start of the next element after a malformed one; False if none."""
        indent = self.indent
        pattern = re.compile(r"\n" + re.escape(indent) + r"\{" if indent else r"\}\s*,\s*\{")
        while True:
            match = pattern.search(self.buf, self.pos + 1)
            if match:
                self._advance(match.end() - 1)
                return True
            keep = max(self.pos, len(self.buf) - _MARGIN)
            self._advance(keep)
            if not self._more():
                return False

    def _after_end(self, index: int) -> Iterator[ArrayItem]:
        self._advance(self.pos + 1)
        if self._peek():
            yield ArrayItem(
                index + 1,
                self.line,
                problem=f"unexpected data after the closing ']' at line {self.line}",
            )
