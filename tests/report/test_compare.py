"""compare_previous names what changed between two runs; key_figures feed the trends."""

from __future__ import annotations

from typing import Any

from uvs_analysis.report.compare import compare_previous, key_figures


def _run(run_id: str, *, sigs: dict[str, int], outcomes: dict[str, int],
         codes: dict[str, int], log_codes: dict[str, int], nodes: list[dict[str, Any]],
         category: str, attempts: int = 10) -> dict[str, Any]:
    return {
        "run_id": run_id, "status": "complete", "started": f"{run_id}-start",
        "logs": {"top_signatures": [{"template": t, "count": n} for t, n in sigs.items()],
                 "close_codes": log_codes},
        "replay": {"attempts": attempts, "outcomes": outcomes, "close_codes": codes},
        "five_whys": {"nodes": nodes,
                      "root_cause": {"category": category, "component": "db",
                                     "statement": f"{category} happened"}},
    }


BEFORE = _run("r1", sigs={"db down <*>": 9, "retrying <*>": 3},
              outcomes={"closed_before_first_event": 8, "completed": 2},
              codes={"1011": 8, "1000": 2}, log_codes={"1011": 8},
              nodes=[{"id": "H1", "parent": "N0", "status": "supported",
                      "rule": "dependency_down"},
                     {"id": "H2", "parent": "N0", "status": "refuted", "rule": "startup_race"}],
              category="dependency-down")
AFTER = _run("r2", sigs={"retrying <*>": 4, "keepalive ping timeout": 2},
             outcomes={"completed": 9, "closed_mid_run": 1},
             codes={"1000": 9, "1011": 1}, log_codes={"1011": 1, "1000": 3},
             nodes=[{"id": "H1", "parent": "N0", "status": "refuted", "rule": "dependency_down"},
                    {"id": "H2", "parent": "N0", "status": "supported",
                     "rule": "keepalive_timeout"},
                    # a supported step of an open hypothesis does not make the rule supported
                    {"id": "H3", "parent": "N0", "status": "open", "rule": "proxy_idle_cut"},
                    {"id": "H3.1", "parent": "H3", "status": "supported",
                     "rule": "proxy_idle_cut"}],
             category="keepalive-timeout")


def test_no_previous_run_is_none() -> None:
    """Without a previous run there is nothing to compare."""
    assert compare_previous(AFTER, None) is None


def test_compare_names_every_change() -> None:
    """New and gone signatures, close-code and outcome rates, resolved hypotheses and the root
    cause change are all named."""
    diff = compare_previous(AFTER, BEFORE)
    assert diff is not None
    assert diff["previous_run_id"] == "r1"
    assert diff["new_signatures"] == [{"template": "keepalive ping timeout", "count": 2}]
    assert diff["gone_signatures"] == [{"template": "db down <*>", "count": 9}]
    received = {c["code"]: c for c in diff["close_code_rates"]["received"]}
    assert received["1011"]["before"] == 0.8 and received["1011"]["after"] == 0.1
    assert received["1000"]["change"] == 0.7
    logged = {c["code"]: c for c in diff["close_code_rates"]["logs"]}
    assert logged["1011"]["before"] == 1.0 and logged["1011"]["after"] == 0.25
    outcomes = {c["outcome"]: c for c in diff["outcome_rates"]}
    assert outcomes["completed"]["after"] == 0.9
    assert outcomes["closed_before_first_event"]["change"] == -0.8
    assert diff["resolved"] == ["dependency_down"]
    assert diff["newly_supported"] == ["keepalive_timeout"]
    assert diff["root_cause"]["changed"] is True
    assert diff["root_cause"]["before"]["category"] == "dependency-down"
    text = "\n".join(diff["changes"])
    assert "resolved? dependency_down" in text
    assert "received close 1011: 80% -> 10% of the closes clients received" in text
    assert "root cause changed: dependency-down -> keepalive-timeout" in text


def test_same_run_twice_changes_nothing() -> None:
    """Two runs with the same figures give no changes."""
    diff = compare_previous(BEFORE, BEFORE)
    assert diff is not None
    assert diff["changes"] == [] and diff["root_cause"]["changed"] is False
    assert diff["resolved"] == [] and diff["new_signatures"] == []


def test_small_rate_changes_are_ignored() -> None:
    """A change below min_rate_change does not count."""
    a = _run("a", sigs={}, outcomes={"completed": 100}, codes={"1000": 100}, log_codes={},
             nodes=[], category="no-failure", attempts=100)
    b = _run("b", sigs={}, outcomes={"completed": 98, "timed_out": 2},
             codes={"1000": 98}, log_codes={}, nodes=[], category="no-failure", attempts=100)
    diff = compare_previous(b, a)
    assert diff is not None and diff["outcome_rates"] == []
    assert compare_previous(b, a, min_rate_change=0.01)["outcome_rates"] != []  # type: ignore[index]


def test_missing_keys_are_no_data() -> None:
    """A failed run without analysis keys compares and trends without errors."""
    empty = {"run_id": "x", "status": "failed"}
    assert key_figures(empty) == {"failure_rate": None, "top_close_code": None,
                                  "top_close_code_share": None, "signature_count": None,
                                  "root_cause_category": None}
    diff = compare_previous(empty, BEFORE)
    assert diff is not None and diff["resolved"] == ["dependency_down"]


def test_key_figures() -> None:
    """Failure rate, the top close code's share of attempts and the signature count."""
    figures = key_figures(BEFORE)
    assert figures["failure_rate"] == 0.8
    assert figures["top_close_code"] == "1011" and figures["top_close_code_share"] == 0.8
    assert figures["signature_count"] == 2
    assert figures["root_cause_category"] == "dependency-down"


def test_failure_rate_counts_tries_so_retries_do_not_hide_failures() -> None:
    """Every attempt completed after retries, but 11 of 31 tries failed: the rate is 11/31."""
    summary = {"replay": {"attempts": 20, "outcomes": {"completed": 20},
                          "try_outcomes": {"completed": 20, "closed_before_first_event": 11},
                          "close_codes": {"1000": 20, "1011": 11}}}
    figures = key_figures(summary)
    assert figures["failure_rate"] == round(11 / 31, 4)
    assert figures["top_close_code"] == "1000"
    assert figures["top_close_code_share"] == round(20 / 31, 4)
