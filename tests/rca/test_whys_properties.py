"""Properties of the five-whys engine over arbitrary facts, with the built-in rules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from uvs_analysis.rca.evidence import EvidenceLog
from uvs_analysis.rca.rules import Condition, evaluate_rule, load_rules
from uvs_analysis.rca.whys import Problem, build_five_whys

RULES = load_rules()


def _names(condition: Condition) -> list[str]:
    if condition.any_of or condition.all_of:
        return [n for c in condition.any_of + condition.all_of for n in _names(c)]
    return [condition.fact] if condition.fact else []


FACT_NAMES = sorted({n for r in RULES for c in r.when + r.support + r.refute for n in _names(c)})
VALUES = st.one_of(st.booleans(), st.integers(-3, 50), st.floats(0, 30, allow_nan=False),
                   st.sampled_from(["", "auth", "x"]))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(FACT_NAMES), VALUES, max_size=25), st.booleans())
def test_no_node_is_supported_without_evidence(values: dict[str, object], present: bool) -> None:
    """Whatever the facts, a supported node cites evidence, a refuted one has confidence 0, and
    the root cause is one of the documented categories."""
    log = EvidenceLog()
    problem = log.add("replay", "tries failed", facts={"replay.tries": 5})
    for name, value in values.items():
        log.add("x", name, facts={name: value})  # type: ignore[dict-item]
    tree = build_five_whys(log.facts(), RULES, Problem("p", (problem.id,), present))
    for node in tree.nodes:
        assert 0.0 <= node.confidence <= 1.0
        if node.status == "supported":
            assert node.evidence, node
        if node.status == "refuted":
            assert node.confidence == 0.0
    if not present:
        assert tree.root_cause.category == "no-failure"


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(FACT_NAMES), VALUES, max_size=25),
       st.sampled_from(FACT_NAMES), VALUES)
def test_adding_a_supporting_fact_never_lowers_confidence(values: dict[str, object], name: str,
                                                         value: object) -> None:
    """A rule that is not refuted never loses confidence when one more fact is known."""
    def facts(extra: dict[str, object]):  # type: ignore[no-untyped-def]
        log = EvidenceLog()
        for key, val in extra.items():
            log.add("x", key, facts={key: val})  # type: ignore[dict-item]
        return log.facts()

    values.pop(name, None)
    for rule in RULES:
        before = evaluate_rule(rule, facts(values))
        after = evaluate_rule(rule, facts({**values, name: value}))
        if after.status != "refuted":
            assert after.confidence >= before.confidence
