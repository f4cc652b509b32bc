"""Tests for the close-code table."""

from __future__ import annotations

from uvs_analysis.replay.closecodes import (
    CLOSE_CODES,
    accepted_by_websockets,
    code_range,
    describe,
    wire_problem,
)


def test_table_covers_every_registered_code() -> None:
    """Every code 1000-1015 has a row, and only the reserved ones are not sendable."""
    assert sorted(CLOSE_CODES) == list(range(1000, 1016))
    assert {c for c, i in CLOSE_CODES.items() if i.on_wire == "no"} == {1004, 1005, 1006, 1015}


def test_wire_problem_names_reserved_and_out_of_range_codes() -> None:
    """Reserved, out-of-range and client-only codes are problems; normal codes are not."""
    assert "1005" in (wire_problem(1005) or "")
    assert "outside" in (wire_problem(2000) or "")
    assert "outside" in (wire_problem(999) or "")
    assert "client" in (wire_problem(1010) or "")
    assert wire_problem(1010, sender="client") is None
    for ok in (1000, 1008, 1011, 1012, 3000, 4999):
        assert wire_problem(ok) is None


def test_accepted_by_websockets_matches_its_rule() -> None:
    """websockets accepts 1000-1003, 1007-1014 and 3000-4999 only."""
    accepted = [c for c in range(0, 6000) if accepted_by_websockets(c)]
    assert accepted[:4] == [1000, 1001, 1002, 1003]
    assert 1005 not in accepted and 1015 not in accepted and 5000 not in accepted
    assert len(accepted) == 4 + 8 + 2000


def test_describe_and_range() -> None:
    """Descriptions name registered codes and the range of others."""
    assert describe(1011) == "1011 Internal Error"
    assert "private" in describe(4001)
    assert describe(None) == "no code"
    assert code_range(3500).startswith("library")
