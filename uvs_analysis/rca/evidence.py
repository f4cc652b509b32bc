"""Evidence and facts: what a run established, and how to re-establish it.

An ``Evidence`` record is a statement with its numbers and the reproducible query that produced
it (a Cloud Logging filter, a DataFrame query or a replay spec). A ``Fact`` is one named value
derived from evidence that rules can test (``replay.close_received.1011``); it points back at
the evidence it came from, so every "because" in the five whys cites something a reader can
re-run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Evidence", "EvidenceLog", "Fact", "FactValue", "Facts"]

FactValue = bool | int | float | str | tuple[str, ...]

#: How a query can be re-run.
QUERY_KINDS = ("cloud-logging-filter", "dataframe", "replay-spec", "derived")


@dataclass(frozen=True)
class Evidence:
    """One finding, reproducible.

    Attributes:
        id: short stable id within a run (``E1``, ``E2`` ...).
        kind: what sort of finding (``replay.outcomes``, ``logs.signature_lift`` ...).
        statement: one sentence a reader can check.
        numbers: the numbers behind the statement.
        query: what re-produces it (a filter, a pandas query, a replay spec in JSON).
        query_kind: one of ``QUERY_KINDS``.
        rows: a few example rows (already redacted), for the report.
    """

    id: str
    kind: str
    statement: str
    numbers: Mapping[str, Any] = field(default_factory=dict)
    query: str = ""
    query_kind: str = "derived"
    rows: tuple[Mapping[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "statement": self.statement,
            "numbers": dict(self.numbers),
            "query": self.query,
            "query_kind": self.query_kind,
            "rows": [dict(row) for row in self.rows],
        }


@dataclass(frozen=True)
class Fact:
    """A named value rules can test, with the evidence it rests on."""

    name: str
    value: FactValue
    evidence: tuple[str, ...]


class Facts(Mapping[str, Fact]):
    """An immutable set of facts, by name."""

    def __init__(self, facts: Iterable[Fact] = ()) -> None:
        self._facts = {fact.name: fact for fact in facts}

    def __getitem__(self, name: str) -> Fact:
        return self._facts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._facts)

    def __len__(self) -> int:
        return len(self._facts)

    def value(self, name: str, default: FactValue | None = None) -> FactValue | None:
        fact = self._facts.get(name)
        return default if fact is None else fact.value

    def as_dict(self) -> dict[str, Any]:
        return {
            name: {"value": list(f.value) if isinstance(f.value, tuple) else f.value,
                   "evidence": list(f.evidence)}
            for name, f in sorted(self._facts.items())
        }


class EvidenceLog:
    """Collects evidence and facts while a run is analysed; hands out stable ids."""

    def __init__(self) -> None:
        self._evidence: list[Evidence] = []
        self._facts: list[Fact] = []

    def add(
        self,
        kind: str,
        statement: str,
        *,
        numbers: Mapping[str, Any] | None = None,
        query: str = "",
        query_kind: str = "derived",
        rows: Iterable[Mapping[str, Any]] = (),
        facts: Mapping[str, FactValue] | None = None,
    ) -> Evidence:
        """Record one finding and the facts it establishes; returns the evidence."""
        if query_kind not in QUERY_KINDS:
            raise ValueError(f"query_kind {query_kind!r} is not one of {QUERY_KINDS}")
        evidence = Evidence(
            id=f"E{len(self._evidence) + 1}",
            kind=kind,
            statement=statement,
            numbers=dict(numbers or {}),
            query=query,
            query_kind=query_kind,
            rows=tuple(rows),
        )
        self._evidence.append(evidence)
        for name, value in (facts or {}).items():
            self._facts.append(Fact(name, value, (evidence.id,)))
        return evidence

    @property
    def evidence(self) -> tuple[Evidence, ...]:
        return tuple(self._evidence)

    def facts(self) -> Facts:
        """The facts so far; a fact stated twice keeps the later value and both sources."""
        merged: dict[str, Fact] = {}
        for fact in self._facts:
            prior = merged.get(fact.name)
            sources = (prior.evidence if prior else ()) + fact.evidence
            merged[fact.name] = Fact(fact.name, fact.value, tuple(dict.fromkeys(sources)))
        return Facts(merged.values())
