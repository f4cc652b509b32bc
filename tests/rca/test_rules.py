"""Rules: YAML parsing with clear errors, and condition/rule evaluation over facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from uvs_analysis.errors import BadInputError
from uvs_analysis.rca.evidence import EvidenceLog, Facts
from uvs_analysis.rca.rules import evaluate_rule, load_rules, render_template

RULE = """
- name: db-down
  category: dependency-down
  title: Database down
  component: dependency
  component_from:
    - {fact: logs.class.database.lift, component: database}
    - {fact: logs.class.redis.lift, component: redis}
  because: "{replay.close_received.1011} closes with 1011; the {component} was unavailable"
  when:
    - {fact: replay.close_received.1011, op: ">", value: 0, weight: 0.4}
    - any:
        - {fact: logs.class.database.lift, op: ">=", value: 2}
        - {fact: logs.class.redis.lift, op: ">=", value: 2}
      weight: 0.4
  support:
    - {fact: replay.error_frames, op: ">", value: 0, weight: 0.2}
  refute:
    - {fact: replay.close_reason_class.keepalive, op: ">", value: 0}
  whys:
    - question: Why did the socket close?
      answer: The server closed it with 1011.
      conditions: [{fact: replay.close_received.1011, op: ">", value: 0}]
  countermeasures: [Add a dependency check to readiness]
"""


def _rules(tmp_path: Path, text: str = RULE) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def _facts(**values: object) -> Facts:
    log = EvidenceLog()
    for name, value in values.items():
        log.add("test", f"{name} observed", facts={name.replace("__", "."): value})  # type: ignore[dict-item]
    return log.facts()


def test_rule_holds_when_every_required_condition_holds(tmp_path: Path) -> None:
    """All required facts present and true: supported, with the evidence that supports it."""
    (rule,) = load_rules([_rules(tmp_path)])
    facts = _facts(**{"replay.close_received.1011": 8, "logs.class.database.lift": 5.0,
                      "logs.class.redis.lift": 1.0})
    match = evaluate_rule(rule, facts)
    assert match.status == "supported"
    assert match.component == "database"
    assert match.statement == "8 closes with 1011; the database was unavailable"
    assert set(match.evidence) == {"E1", "E2"}
    assert 0.6 < match.confidence < 0.7


def test_more_supporting_evidence_never_lowers_confidence(tmp_path: Path) -> None:
    """Adding a supporting fact raises (or keeps) the confidence."""
    (rule,) = load_rules([_rules(tmp_path)])
    base = {"replay.close_received.1011": 8, "logs.class.redis.lift": 3.0}
    without = evaluate_rule(rule, _facts(**base))
    with_more = evaluate_rule(rule, _facts(**base, **{"replay.error_frames": 8}))
    assert with_more.confidence > without.confidence
    assert with_more.component == "redis"


def test_a_contradicted_requirement_refutes(tmp_path: Path) -> None:
    """No 1011 at all: the rule is refuted, confidence 0, citing the contradicting fact."""
    (rule,) = load_rules([_rules(tmp_path)])
    match = evaluate_rule(rule, _facts(**{"replay.close_received.1011": 0,
                                          "logs.class.database.lift": 9.0}))
    assert match.status == "refuted" and match.confidence == 0.0
    assert match.evidence == ("E1",)
    assert match.raised


def test_a_refuting_condition_refutes_even_when_requirements_hold(tmp_path: Path) -> None:
    """A keepalive reason on the closes refutes the dependency hypothesis."""
    (rule,) = load_rules([_rules(tmp_path)])
    match = evaluate_rule(rule, _facts(**{"replay.close_received.1011": 8,
                                          "logs.class.database.lift": 9.0,
                                          "replay.close_reason_class.keepalive": 8}))
    assert match.status == "refuted"
    assert "replay.close_reason_class.keepalive" in match.refuting[0].describe()


def test_missing_facts_leave_the_rule_open(tmp_path: Path) -> None:
    """Half the evidence and nothing against: open, not supported."""
    (rule,) = load_rules([_rules(tmp_path)])
    match = evaluate_rule(rule, _facts(**{"replay.close_received.1011": 8}))
    assert match.status == "open"
    assert match.confidence > 0


def test_template_marks_unknown_facts() -> None:
    """A placeholder with no fact renders as '?', never as a made-up value."""
    assert render_template("{a.b} and {c}", _facts(**{"a.b": 2})) == "2 and ?"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- name: x\n  category: nope\n  title: t\n  because: b\n  when: [{fact: a}]\n",
         "category"),
        ("- name: x\n  category: auth\n  title: t\n  because: b\n  when: []\n", "empty 'when'"),
        ("- name: x\n  category: auth\n  title: t\n  because: b\n  when: [{fact: a, op: '~'}]\n",
         "operator"),
        ("- name: x\n  category: auth\n  title: t\n  because: b\n  when: [{fact: a}]\n"
         "  colour: 1\n", "unknown keys"),
        ("- {name: x}\n", "lacks"),
        ("rules: 3\n", "no list of rules"),
        ("- name: [unclosed\n", "not valid YAML"),
    ],
)
def test_malformed_rule_files_name_the_file_and_the_expectation(
    tmp_path: Path, text: str, fragment: str
) -> None:
    """Every malformed rule file gives a BadInputError naming the file and what was expected."""
    path = _rules(tmp_path, text)
    with pytest.raises(BadInputError) as info:
        load_rules([path])
    assert fragment in info.value.message
    assert str(path) in info.value.message


def test_duplicate_rule_names_are_refused(tmp_path: Path) -> None:
    """Two rules with one name would make overrides ambiguous."""
    with pytest.raises(BadInputError, match="defined twice"):
        load_rules([_rules(tmp_path), _rules(tmp_path)])
