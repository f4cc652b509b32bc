"""Five whys as a tree, computed from facts and rules; investigators may override.

The root states the problem (computed from the evidence). Each matched rule is a hypothesis
under it, with its status (supported / refuted / open), confidence and evidence; a hypothesis
that holds carries its chain of whys below it. Refuted hypotheses stay in the tree with the
evidence that refutes them. When nothing fits, the root cause is "unexplained" with the
strongest leads, never a guess presented as fact. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from uvs_analysis.errors import BadInputError
from uvs_analysis.rca.evidence import Facts
from uvs_analysis.rca.rules import (
    Rule,
    RuleMatch,
    evaluate_condition,
    evaluate_rule,
    render_template,
)

__all__ = ["Countermeasure", "FiveWhys", "Override", "Problem", "RootCause", "WhyNode",
           "build_five_whys", "parse_overrides"]

STATUSES = ("supported", "refuted", "open")
_STATUS_ORDER = {"supported": 0, "open": 1, "refuted": 2}


@dataclass(frozen=True)
class Problem:
    """The problem statement, computed from evidence; ``present`` False means no failure."""

    statement: str
    evidence: tuple[str, ...]
    present: bool


@dataclass(frozen=True)
class WhyNode:
    """One node of the tree."""

    id: str
    parent: str | None
    question: str
    answer: str
    status: str
    confidence: float
    evidence: tuple[str, ...]
    rule: str | None = None
    category: str | None = None
    override: bool = False
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parent": self.parent,
            "question": self.question,
            "answer": self.answer,
            "status": self.status,
            "confidence": self.confidence,
            "evidence": list(self.evidence),
            "rule": self.rule,
            "category": self.category,
            "override": self.override,
            "note": self.note,
        }


@dataclass(frozen=True)
class RootCause:
    category: str
    component: str
    statement: str
    confidence: float
    node: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"category": self.category, "component": self.component,
                "statement": self.statement, "confidence": self.confidence, "node": self.node}


@dataclass(frozen=True)
class Countermeasure:
    text: str
    node: str
    rule: str


@dataclass(frozen=True)
class Override:
    """An investigator's change: a node's status/answer, or a new node under a parent."""

    target: str | None = None
    status: str | None = None
    answer: str | None = None
    note: str = ""
    add_parent: str | None = None
    add_question: str = ""
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class FiveWhys:
    problem: Problem
    nodes: tuple[WhyNode, ...]
    root_cause: RootCause
    countermeasures: tuple[Countermeasure, ...]
    hypotheses: tuple[RuleMatch, ...] = field(default=())
    leads: tuple[str, ...] = ()

    def node(self, node_id: str) -> WhyNode:
        return next(n for n in self.nodes if n.id == node_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "problem": self.problem.statement,
            "nodes": [n.as_dict() for n in self.nodes],
            "root_cause": self.root_cause.as_dict(),
            "countermeasures": [
                {"text": c.text, "node": c.node, "rule": c.rule} for c in self.countermeasures
            ],
            "leads": list(self.leads),
        }


def build_five_whys(
    facts: Facts,
    rules: Sequence[Rule],
    problem: Problem,
    *,
    overrides: Iterable[Override] = (),
) -> FiveWhys:
    """Evaluate the rules and assemble the tree, the root cause and the countermeasures."""
    matches = [evaluate_rule(rule, facts) for rule in rules]
    shown = sorted(
        (m for m in matches if m.raised),
        key=lambda m: (_STATUS_ORDER[m.status], -m.confidence, m.rule.name),
    )
    nodes: list[WhyNode] = [
        WhyNode(
            id="N0",
            parent=None,
            question="What failed?" if problem.present else "Did anything fail?",
            answer=problem.statement,
            status="supported" if problem.evidence else "open",
            confidence=1.0 if problem.evidence else 0.0,
            evidence=problem.evidence,
        )
    ]
    for index, match in enumerate(shown, start=1):
        nodes.extend(_hypothesis_nodes(f"H{index}", match, facts))
    nodes = _apply_overrides(nodes, list(overrides))
    return _conclude(problem, nodes, shown)


def parse_overrides(items: Any) -> tuple[Override, ...]:
    """Overrides from params YAML (a list of mappings).

    ``{node: H2 | RULE_NAME, status: refuted, answer: ..., note: why}`` changes a node;
    ``{add: {parent: H1, question: ..., answer: ..., status: open, evidence: [E3]}, note: ...}``
    adds one.
    """
    if items in (None, []):
        return ()
    if not isinstance(items, list):
        raise BadInputError("overrides is not a list", expected="a YAML list of overrides")
    result: list[Override] = []
    for i, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise BadInputError(f"override {i} is not a mapping",
                                expected="{node: ID, status: ..., note: ...} or {add: {...}}")
        note = str(item.get("note", "")).strip()
        if not note:
            raise BadInputError(f"override {i} has no note",
                                expected="a note saying why the investigator overrides")
        if "add" in item:
            add = item["add"]
            status = str(add.get("status", "open"))
            _check_status(status, i)
            result.append(Override(add_parent=str(add.get("parent", "N0")),
                                   add_question=str(add.get("question", "Why?")),
                                   answer=str(add.get("answer", "")), status=status, note=note,
                                   evidence=tuple(str(e) for e in add.get("evidence", []))))
        elif "node" in item:
            new_status = item.get("status")
            if new_status is not None:
                _check_status(str(new_status), i)
            result.append(Override(target=str(item["node"]), note=note,
                                   status=None if new_status is None else str(new_status),
                                   answer=None if "answer" not in item else str(item["answer"])))
        else:
            raise BadInputError(f"override {i} names no node and adds none",
                                expected="a 'node' or an 'add' key")
    return tuple(result)


# Private


def _check_status(status: str, index: int) -> None:
    if status not in STATUSES:
        raise BadInputError(f"override {index} has status {status!r}",
                            expected="one of " + ", ".join(STATUSES))


def _hypothesis_nodes(node_id: str, match: RuleMatch, facts: Facts) -> list[WhyNode]:
    rule = match.rule
    answer = match.statement
    if match.status == "refuted":
        reasons = "; ".join(r.describe() for r in match.refuting)
        answer = f"{rule.title}: refuted by {reasons}"
    nodes = [
        WhyNode(
            id=node_id,
            parent="N0",
            question=f"Is it {rule.title.lower()}?",
            answer=answer,
            status=match.status,
            confidence=match.confidence,
            evidence=match.evidence,
            rule=rule.name,
            category=rule.category,
        )
    ]
    if match.status == "refuted":
        return nodes
    parent = node_id
    for depth, step in enumerate(rule.whys, start=1):
        results = [evaluate_condition(c, facts) for c in step.conditions]
        states = [r.holds for r in results]
        if False in states:
            status = "refuted"
        elif results and all(r.holds is True and r.evidence for r in results):
            status = "supported"
        else:
            status = "open"
        # A step is as strong as the hypothesis it explains, scaled by how much of its own
        # evidence holds.
        held = sum(1 for r in results if r.holds is True)
        share = held / len(results) if results else 0.0
        confidence = 0.0 if status == "refuted" else match.confidence * share
        evidence = tuple(dict.fromkeys(e for r in results if r.holds is not None
                                       for e in r.evidence))
        step_id = f"{node_id}.{depth}"
        nodes.append(
            WhyNode(
                id=step_id,
                parent=parent,
                question=render_template(step.question, facts, component=match.component),
                answer=render_template(step.answer, facts, component=match.component),
                status=status,
                confidence=round(confidence, 4),
                evidence=evidence,
                rule=rule.name,
                category=rule.category,
            )
        )
        parent = step_id
    return nodes


def _apply_overrides(nodes: list[WhyNode], overrides: list[Override]) -> list[WhyNode]:
    for i, ov in enumerate(overrides, start=1):
        if ov.add_parent is not None:
            if not any(n.id == ov.add_parent for n in nodes):
                raise BadInputError(f"override {i} adds under {ov.add_parent!r}, not in the tree",
                                    expected="a node id such as N0, H1 or H1.2")
            nodes.append(WhyNode(id=f"X{i}", parent=ov.add_parent, question=ov.add_question,
                                 answer=ov.answer or "", status=ov.status or "open",
                                 confidence=1.0 if ov.status == "supported" else 0.0,
                                 evidence=ov.evidence, override=True, note=ov.note))
            continue
        hits = [k for k, n in enumerate(nodes) if ov.target in (n.id, n.rule) and
                (n.id == ov.target or "." not in n.id)]
        if not hits:
            raise BadInputError(f"override {i} names {ov.target!r}, which is not in the tree",
                                expected="a node id (N0, H1, H1.2) or a matched rule name")
        for k in hits:
            node = nodes[k]
            status = ov.status or node.status
            confidence = node.confidence
            if status == "refuted":
                confidence = 0.0
            elif status == "supported":
                confidence = max(node.confidence, 0.5)
            nodes[k] = replace(node, status=status, answer=ov.answer or node.answer,
                               confidence=confidence, override=True, note=ov.note)
    return nodes


def _conclude(problem: Problem, nodes: list[WhyNode], shown: list[RuleMatch]) -> FiveWhys:
    by_rule = {m.rule.name: m for m in shown}
    heads = sorted(
        (n for n in nodes if n.parent == "N0" and n.rule is not None),
        key=lambda n: (_STATUS_ORDER[n.status], -n.confidence, n.id),
    )
    supported = [n for n in heads if n.status == "supported"
                 and not (n.rule in by_rule and by_rule[n.rule].rule.contributing)]
    contributing = [n for n in heads if n.status == "supported" and n not in supported]
    leads = tuple(f"{n.rule} ({n.status}, confidence {n.confidence:.2f})"
                  for n in heads if n.status == "open")[:2]
    countermeasures: list[Countermeasure] = []
    if not problem.present:
        cause = RootCause("no-failure", "none", problem.statement, 1.0 if problem.evidence
                          else 0.0, "N0")
    elif supported:
        top = supported[0]
        match = by_rule[top.rule or ""]
        cause = RootCause(match.rule.category, match.component, top.answer, top.confidence,
                          top.id)
        for node in supported + contributing:
            match = by_rule[node.rule or ""]
            countermeasures.extend(
                Countermeasure(text.replace("{component}", match.component), node.id,
                               match.rule.name)
                for text in match.rule.countermeasures)
    else:
        lead_text = "; ".join(leads) if leads else "no rule matched any of the evidence"
        cause = RootCause("unexplained", "unknown",
                          f"No known cause fits the evidence. Strongest leads: {lead_text}.",
                          0.0, None)
    return FiveWhys(problem=problem, nodes=tuple(nodes), root_cause=cause,
                    countermeasures=tuple(countermeasures), hypotheses=tuple(shown), leads=leads)
