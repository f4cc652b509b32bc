"""Tests for uvs_analysis.logs.jsonarray."""

from __future__ import annotations

import json

import pytest

from uvs_analysis.logs.jsonarray import iter_array


def _blocks(text: str, size: int) -> list[bytes]:
    data = text.encode()
    return [data[i : i + size] for i in range(0, len(data), size)]


ELEMENTS = [{"a": i, "s": "x" * i, "t": "é🔴\n"} for i in range(12)]


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
@pytest.mark.parametrize("indent", [None, 2])
def test_elements_come_out_whatever_the_block_size(size, indent):
    """Elements (with multi-byte UTF-8) are decoded across any block boundaries."""
    items = list(iter_array(_blocks(json.dumps(ELEMENTS, indent=indent), size)))
    assert [i.value for i in items] == ELEMENTS
    assert [i.index for i in items] == list(range(1, 13))
    assert all(i.problem is None for i in items)


def test_lines_point_at_each_element_start():
    """In an indented array, each element's line is where its '{' is."""
    text = json.dumps(ELEMENTS[:3], indent=2)
    items = list(iter_array(_blocks(text, 5)))
    lines = text.splitlines()
    assert [lines[i.line - 1].strip() for i in items] == ["{"] * 3


@pytest.mark.parametrize("indent", [None, 2])
def test_malformed_element_is_reported_and_skipped(indent):
    """A broken element is one problem; the following elements still come out."""
    text = json.dumps(ELEMENTS[:4], indent=indent).replace('"a": 1,', '"a": 1 1,', 1)
    text = text.replace('"a":1,', '"a":1 1,', 1)
    items = list(iter_array(_blocks(text, 16)))
    problems = [i for i in items if i.problem]
    assert len(problems) == 1 and problems[0].index == 2 and "not valid JSON" in problems[0].problem
    assert [i.value["a"] for i in items if i.problem is None] == [0, 2, 3]


def test_cut_array_reports_a_cut():
    """Data that ends inside an element gives the complete ones and a cut problem."""
    text = json.dumps(ELEMENTS[:3], indent=2)
    items = list(iter_array(_blocks(text[: text.rindex('"s"')], 10)))
    assert [i.value["a"] for i in items if i.problem is None] == [0, 1]
    assert items[-1].cut and items[-1].index == 3 and "cut off" in items[-1].problem


def test_trailing_data_and_empty_array():
    """Anything after ']' is a problem; '[]' has no elements."""
    assert list(iter_array([b" [ ] "])) == []
    items = list(iter_array([b'[{"a": 1}] junk']))
    assert items[0].value == {"a": 1} and "after the closing" in (items[1].problem or "")


def test_missing_separator_is_a_problem():
    """Two elements without a comma: the second is reported."""
    items = list(iter_array([b'[{"a": 1} {"a": 2}]']))
    assert items[0].value == {"a": 1} and "expected ',' or ']'" in (items[1].problem or "")
