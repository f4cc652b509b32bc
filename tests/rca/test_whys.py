"""Five-whys tree: ranking, refutation kept visible, unexplained, overrides."""

from __future__ import annotations

import pytest

from uvs_analysis.errors import BadInputError
from uvs_analysis.rca.evidence import EvidenceLog, Facts
from uvs_analysis.rca.rules import Condition, Rule, WhyStep
from uvs_analysis.rca.whys import Problem, build_five_whys, parse_overrides


def _rule(name: str, category: str, fact: str, weight: float = 0.5) -> Rule:
    return Rule(
        support=(Condition(fact=f"{name}_logs", op=">", value=0, weight=0.2),),
        name=name,
        category=category,
        title=name.replace("-", " ").title(),
        component=name,
        because=f"{name} because {{{fact}}}",
        when=(Condition(fact=fact, op=">", value=0, weight=weight),),
        whys=(WhyStep("Why one?", "Because of {" + fact + "}",
                      (Condition(fact=fact, op=">", value=0),)),),
        countermeasures=(f"fix {name}",),
    )


RULES = (
    _rule("db", "dependency-down", "db", 0.7),
    _rule("race", "startup-race", "race", 0.4),
    _rule("crash", "app-exception", "crash", 0.6),
)


def _facts(**values: int) -> tuple[Facts, Problem]:
    log = EvidenceLog()
    problem = log.add("replay", "3 of 4 attempts failed", facts={"failed": 3})
    for name, value in values.items():
        log.add("x", name, facts={name: value})
    return log.facts(), Problem("3 of 4 attempts failed", (problem.id,), True)


def test_the_strongest_supported_hypothesis_is_the_root_cause() -> None:
    """Two supported hypotheses: the higher confidence wins, both give countermeasures."""
    facts, problem = _facts(db=5, race=2)
    tree = build_five_whys(facts, RULES, problem)
    assert tree.root_cause.category == "dependency-down"
    assert tree.root_cause.statement == "db because 5"
    assert [c.rule for c in tree.countermeasures] == ["db", "race"]
    heads = [n for n in tree.nodes if n.parent == "N0"]
    assert [n.rule for n in heads] == ["db", "race"]


def test_refuted_hypotheses_stay_visible_with_their_evidence() -> None:
    """A hypothesis raised by misleading logs but contradicted stays visible, refuted."""
    facts, problem = _facts(db=5, race=0, race_logs=40)
    tree = build_five_whys(facts, RULES, problem)
    race = next(n for n in tree.nodes if n.rule == "race" and n.parent == "N0")
    assert race.status == "refuted" and race.confidence == 0.0
    assert race.evidence and "refuted by" in race.answer
    assert not any(n.parent == race.id for n in tree.nodes)
    assert not any(n.rule == "crash" for n in tree.nodes), "no evidence at all: not raised"


def test_no_supported_hypothesis_is_unexplained_with_leads() -> None:
    """Only refuted or open hypotheses: the answer is unexplained, never a guess."""
    facts, problem = _facts(db=0)
    tree = build_five_whys(facts, RULES, problem)
    assert tree.root_cause.category == "unexplained"
    assert "No known cause" in tree.root_cause.statement
    assert tree.countermeasures == ()


def test_no_problem_means_no_failure() -> None:
    """Nothing failed: the category is no-failure."""
    log = EvidenceLog()
    ev = log.add("replay", "all 5 attempts completed", facts={"failed": 0})
    tree = build_five_whys(log.facts(), RULES, Problem("all 5 completed", (ev.id,), False))
    assert tree.root_cause.category == "no-failure"


def test_chain_of_whys_hangs_under_a_supported_hypothesis() -> None:
    """A supported hypothesis carries its why steps, each citing evidence."""
    facts, problem = _facts(db=5)
    tree = build_five_whys(facts, RULES, problem)
    step = tree.node("H1.1")
    assert step.parent == "H1" and step.status == "supported"
    assert step.answer == "Because of 5" and step.evidence


def test_overrides_are_applied_and_marked() -> None:
    """An investigator refutes the top hypothesis; the next one becomes the root cause."""
    facts, problem = _facts(db=5, race=2)
    overrides = parse_overrides([
        {"node": "db", "status": "refuted", "note": "DB verified healthy by the DBA"},
        {"add": {"parent": "H2", "question": "Why slow start?", "answer": "cold JIT"},
         "note": "from the deploy log"},
    ])
    tree = build_five_whys(facts, RULES, problem, overrides=overrides)
    db = next(n for n in tree.nodes if n.rule == "db" and n.parent == "N0")
    assert db.override and db.status == "refuted" and db.note.startswith("DB verified")
    assert tree.root_cause.category == "startup-race"
    added = tree.node("X2")
    assert added.override and added.parent == "H2"


@pytest.mark.parametrize(
    ("items", "fragment"),
    [
        ([{"node": "H1", "status": "maybe", "note": "n"}], "status"),
        ([{"node": "H1", "status": "refuted"}], "no note"),
        ([{"note": "n"}], "names no node"),
        ("H1", "not a list"),
    ],
)
def test_bad_overrides_say_what_was_expected(items: object, fragment: str) -> None:
    """Malformed overrides give a clear BadInputError."""
    with pytest.raises(BadInputError, match=fragment):
        parse_overrides(items)


def test_override_of_an_unknown_node_is_refused() -> None:
    """Naming a node that is not in the tree is an error, not a silent no-op."""
    facts, problem = _facts(db=5)
    with pytest.raises(BadInputError, match="not in the tree"):
        build_five_whys(facts, RULES, problem,
                        overrides=parse_overrides([{"node": "H9", "note": "x",
                                                    "status": "open"}]))
