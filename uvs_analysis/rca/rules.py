"""Known causes as data: rules in YAML, matched against the facts of a run.

A rule says which facts must hold for its cause (``when``), which make it more likely
(``support``), which rule it out (``refute``), the chain of whys it explains, and what to do
about it. A ``contributing: true`` rule names a factor that makes failures worse but never
causes them alone: it is shown beside the root cause and never chosen as it. Users add rules
by dropping a YAML file in a rules directory; no code changes.

Condition grammar (in ``when``, ``support``, ``refute`` and each why's ``conditions``)::

    {fact: NAME, op: OP, value: V, weight: W}   OP in == != > >= < <= contains exists
    {any: [CONDITION, ...]}                     holds when one holds
    {all: [CONDITION, ...]}                     holds when all hold

A condition is *true*, *false* (contradicted by a fact that is present) or *unknown* (its fact
is missing). Pure: no I/O beyond reading the YAML files in ``load_rules``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from uvs_analysis.errors import BadInputError
from uvs_analysis.rca.evidence import Facts, FactValue

__all__ = [
    "BUILTIN_RULES_DIR",
    "CATEGORIES",
    "Condition",
    "ConditionResult",
    "Rule",
    "RuleMatch",
    "WhyStep",
    "evaluate_rule",
    "load_rules",
    "render_template",
]

BUILTIN_RULES_DIR = Path(__file__).with_name("rules")

#: Root-cause categories (documented in the README).
CATEGORIES = (
    "startup-race",
    "dependency-down",
    "auth",
    "app-exception",
    "request-timeout",
    "instance-shutdown",
    "keepalive-timeout",
    "protocol-violation",
    "slo-breach",
    "pipeline-order",
    "isolation",
    "event-loss",
    "proxy",
    "no-failure",
    "unexplained",
)

DEFAULT_WEIGHT = 0.3

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass(frozen=True)
class Condition:
    """One test on the facts (a leaf) or a group of them (``any``/``all``)."""

    fact: str | None = None
    op: str = "exists"
    value: Any = None
    weight: float = DEFAULT_WEIGHT
    any_of: tuple[Condition, ...] = ()
    all_of: tuple[Condition, ...] = ()

    def describe(self) -> str:
        if self.any_of:
            return "any of (" + "; ".join(c.describe() for c in self.any_of) + ")"
        if self.all_of:
            return "all of (" + "; ".join(c.describe() for c in self.all_of) + ")"
        if self.op == "exists":
            return f"{self.fact} is known"
        return f"{self.fact} {self.op} {self.value!r}"


@dataclass(frozen=True)
class ConditionResult:
    """How a condition fared: holds is True, False or None (unknown)."""

    condition: Condition
    holds: bool | None
    evidence: tuple[str, ...]
    observed: Mapping[str, FactValue]

    def describe(self) -> str:
        seen = ", ".join(f"{k}={_show(v)}" for k, v in self.observed.items()) or "no data"
        return f"{self.condition.describe()} [{seen}]"


@dataclass(frozen=True)
class WhyStep:
    """One level of a rule's chain of whys."""

    question: str
    answer: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Rule:
    """A known cause."""

    name: str
    category: str
    title: str
    component: str
    because: str
    when: tuple[Condition, ...]
    support: tuple[Condition, ...] = ()
    refute: tuple[Condition, ...] = ()
    component_from: tuple[tuple[str, str], ...] = ()
    whys: tuple[WhyStep, ...] = ()
    countermeasures: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    contributing: bool = False
    source: str = ""


@dataclass(frozen=True)
class RuleMatch:
    """A rule evaluated against the facts of one run."""

    rule: Rule
    status: str  # supported | refuted | open
    confidence: float
    component: str
    statement: str
    required: tuple[ConditionResult, ...]
    supporting: tuple[ConditionResult, ...]
    refuting: tuple[ConditionResult, ...]
    raised: bool = field(default=False)

    @property
    def evidence(self) -> tuple[str, ...]:
        """Evidence ids behind the verdict (support for supported/open, refutation else)."""
        results = self.refuting if self.status == "refuted" else self.required + self.supporting
        ids: list[str] = []
        for result in results:
            if result.holds is True or (self.status == "refuted" and result.holds is not None):
                ids.extend(result.evidence)
        return tuple(dict.fromkeys(ids))


# Public


def evaluate_condition(condition: Condition, facts: Facts) -> ConditionResult:
    """Evaluate one condition (pure)."""
    if condition.any_of or condition.all_of:
        parts = [evaluate_condition(c, facts) for c in condition.any_of or condition.all_of]
        states = [p.holds for p in parts]
        if condition.any_of:
            holds = True if True in states else (None if None in states else False)
            chosen = [p for p in parts if p.holds is holds] if holds is not None else parts
        else:
            holds = False if False in states else (None if None in states else True)
            chosen = [p for p in parts if p.holds is holds] if holds is not None else parts
        evidence = tuple(dict.fromkeys(e for p in chosen for e in p.evidence))
        observed = {k: v for p in chosen for k, v in p.observed.items()}
        return ConditionResult(condition, holds, evidence, observed)
    assert condition.fact is not None
    fact = facts.get(condition.fact)
    if fact is None:
        return ConditionResult(condition, None, (), {})
    observed = {condition.fact: fact.value}
    return ConditionResult(condition, _compare(condition, fact.value), fact.evidence, observed)


def evaluate_rule(rule: Rule, facts: Facts) -> RuleMatch:
    """Match a rule against the facts: status, confidence, component and statement.

    Refuted when a required condition is contradicted or a refuting condition holds;
    supported when every required condition holds on evidence; open otherwise. Confidence is
    a noisy-OR of the weights of the conditions that hold, so more supporting evidence never
    lowers it; a refuted rule has confidence 0.
    """
    required = tuple(evaluate_condition(c, facts) for c in rule.when)
    supporting = tuple(evaluate_condition(c, facts) for c in rule.support)
    refuters = tuple(evaluate_condition(c, facts) for c in rule.refute)
    contradicted = [r for r in required if r.holds is False]
    refuting = tuple(contradicted) + tuple(r for r in refuters if r.holds is True)
    held = [r for r in required + supporting if r.holds is True]
    raised = bool(held)
    if refuting:
        status, confidence = "refuted", 0.0
    else:
        confidence = 1.0 - math.prod(1.0 - _weight(r) for r in held)
        all_hold = all(r.holds is True and r.evidence for r in required)
        status = "supported" if (all_hold and required) else "open"
    component = _component(rule, facts)
    statement = render_template(rule.because, facts, component=component)
    return RuleMatch(
        rule=rule,
        status=status,
        confidence=round(confidence, 4),
        component=component,
        statement=statement,
        required=required,
        supporting=supporting,
        refuting=refuting,
        raised=raised,
    )


def render_template(text: str, facts: Facts, *, component: str = "") -> str:
    """Fill ``{fact.name}`` placeholders with fact values (``?`` when unknown)."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "component":
            return component
        fact = facts.get(name)
        return "?" if fact is None else _show(fact.value)

    return re.sub(r"\{([A-Za-z0-9_.\-]+)\}", fill, text)


def load_rules(paths: Iterable[Path | str] | None = None) -> tuple[Rule, ...]:
    """Rules from YAML files or directories (the built-in set when None).

    Raises:
        BadInputError: naming the file and rule that is malformed and what was expected.
    """
    sources = [BUILTIN_RULES_DIR] if paths is None else [Path(p) for p in paths]
    files: list[Path] = []
    for src in sources:
        if src.is_dir():
            files.extend(sorted(src.glob("*.yaml")) + sorted(src.glob("*.yml")))
        elif src.exists():
            files.append(src)
        else:
            raise BadInputError(f"rules path {src} does not exist",
                                expected="a YAML file or a directory of them")
    rules: list[Rule] = []
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise BadInputError(f"{path} is not valid YAML ({exc})",
                                expected="a list of rules") from exc
        items = doc.get("rules") if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise BadInputError(f"{path} holds no list of rules",
                                expected="a YAML list, or a mapping with a 'rules' list")
        rules.extend(_parse_rule(item, f"{path}#{i + 1}") for i, item in enumerate(items))
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInputError(f"rule names {dupes} are defined twice", expected="unique names")
    return tuple(rules)


# Private


def _compare(condition: Condition, value: FactValue) -> bool:
    op, expected = condition.op, condition.value
    if op == "exists":
        return True
    if op == "contains":
        if isinstance(value, tuple):
            return str(expected) in value
        return str(expected).lower() in str(value).lower()
    try:
        return bool(_OPS[op](value, expected))
    except TypeError:
        return bool(_OPS[op](str(value), str(expected))) if op in ("==", "!=") else False


def _weight(result: ConditionResult) -> float:
    return min(max(result.condition.weight, 0.0), 0.95)


def _component(rule: Rule, facts: Facts) -> str:
    best: tuple[float, str] | None = None
    for fact_name, component in rule.component_from:
        value = facts.value(fact_name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            continue
        if best is None or value > best[0]:
            best = (float(value), component)
    return best[1] if best else rule.component


def _show(value: FactValue) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, tuple):
        return ", ".join(value)
    return str(value)


def _parse_rule(item: Any, where: str) -> Rule:
    if not isinstance(item, Mapping):
        raise BadInputError(f"{where} is not a mapping", expected="a rule with name, category …")
    missing = [k for k in ("name", "category", "title", "because", "when") if k not in item]
    if missing:
        raise BadInputError(f"rule {where} lacks {missing}",
                            expected="name, category, title, because and when")
    name = str(item["name"])
    where = f"{where} ({name})"
    known = {"name", "category", "title", "component", "component_from", "because", "when",
             "support", "refute", "whys", "countermeasures", "references", "contributing"}
    unknown = sorted(set(item) - known)
    if unknown:
        raise BadInputError(f"rule {where} has unknown keys {unknown}",
                            expected="only " + ", ".join(sorted(known)))
    if item["category"] not in CATEGORIES:
        raise BadInputError(f"rule {where} has category {item['category']!r}",
                            expected="one of " + ", ".join(CATEGORIES))
    when = _conditions(item["when"], where, "when")
    if not when:
        raise BadInputError(f"rule {where} has an empty 'when'",
                            expected="at least one required condition (no cause without evidence)")
    whys = tuple(
        WhyStep(
            question=str(step["question"]),
            answer=str(step["answer"]),
            conditions=_conditions(step.get("conditions", []), where, "whys"),
        )
        for step in _list(item.get("whys", []), where, "whys")
    )
    component_from = tuple(
        (str(entry["fact"]), str(entry["component"]))
        for entry in _list(item.get("component_from", []), where, "component_from")
    )
    return Rule(
        name=name,
        category=str(item["category"]),
        title=str(item["title"]),
        component=str(item.get("component", "unknown")),
        because=str(item["because"]).strip(),
        when=when,
        support=_conditions(item.get("support", []), where, "support"),
        refute=_conditions(item.get("refute", []), where, "refute"),
        component_from=component_from,
        whys=whys,
        countermeasures=tuple(str(c).strip() for c in item.get("countermeasures", [])),
        references=tuple(str(r) for r in item.get("references", [])),
        contributing=bool(item.get("contributing", False)),
        source=where,
    )


def _list(value: Any, where: str, key: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise BadInputError(f"rule {where}: '{key}' is not a list", expected="a YAML list")
    return value


def _conditions(value: Any, where: str, key: str) -> tuple[Condition, ...]:
    return tuple(_condition(c, where, key) for c in _list(value, where, key))


def _condition(item: Any, where: str, key: str) -> Condition:
    if not isinstance(item, Mapping):
        raise BadInputError(f"rule {where}: a '{key}' condition is not a mapping",
                            expected="{fact: NAME, op: OP, value: V} or {any: [...]}")
    weight = float(item.get("weight", DEFAULT_WEIGHT))
    if "any" in item or "all" in item:
        group = "any" if "any" in item else "all"
        parts = tuple(_condition(c, where, key) for c in _list(item[group], where, group))
        if not parts:
            raise BadInputError(f"rule {where}: an empty '{group}' group",
                                expected="at least one condition")
        return Condition(weight=weight, **{f"{group}_of": parts})  # type: ignore[arg-type]
    if "fact" not in item:
        raise BadInputError(f"rule {where}: a '{key}' condition has no 'fact'",
                            expected="{fact: NAME, op: OP, value: V}")
    op = str(item.get("op", "exists" if "value" not in item else "=="))
    if op not in _OPS and op not in ("exists", "contains"):
        raise BadInputError(f"rule {where}: operator {op!r} is unknown",
                            expected="one of == != > >= < <= contains exists")
    return Condition(fact=str(item["fact"]), op=op, value=item.get("value"), weight=weight)
