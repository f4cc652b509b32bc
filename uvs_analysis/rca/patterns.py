"""Pattern classes: named sets of regular expressions over free text (log lines, reasons).

The one place where wording matters. Rules never match raw text; they test facts such as
``logs.class.database.lift`` that the correlation step computes with these classes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from uvs_analysis.errors import BadInputError

__all__ = ["BUILTIN_PATTERNS", "PatternClasses", "load_patterns"]

BUILTIN_PATTERNS = Path(__file__).with_name("patterns.yaml")


@dataclass(frozen=True)
class PatternClasses:
    """Compiled pattern classes, by name."""

    classes: Mapping[str, tuple[re.Pattern[str], ...]]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.classes)

    def match(self, text: str | None) -> tuple[str, ...]:
        """The classes whose patterns match ``text`` (in definition order)."""
        if not text:
            return ()
        return tuple(
            name
            for name, patterns in self.classes.items()
            if any(p.search(text) for p in patterns)
        )


def load_patterns(path: Path | str | None = None) -> PatternClasses:
    """Pattern classes from YAML (the built-in file when None)."""
    source = Path(path) if path else BUILTIN_PATTERNS
    try:
        doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"pattern classes {source} cannot be read ({exc})",
                            expected="a YAML mapping of class name to a list of regexes") from exc
    if not isinstance(doc, Mapping):
        raise BadInputError(f"pattern classes {source} is not a mapping",
                            expected="class name -> list of regular expressions")
    classes: dict[str, tuple[re.Pattern[str], ...]] = {}
    for name, patterns in doc.items():
        if not isinstance(patterns, list) or not patterns:
            raise BadInputError(f"pattern class {name!r} in {source} has no list of patterns",
                                expected="a non-empty list of regular expressions")
        compiled = []
        for pattern in patterns:
            try:
                compiled.append(re.compile(str(pattern), re.IGNORECASE | re.MULTILINE))
            except re.error as exc:
                raise BadInputError(f"pattern {pattern!r} of class {name!r} in {source} is not "
                                    f"a valid regular expression ({exc})",
                                    expected="a regex valid in Python and RE2") from exc
        classes[str(name)] = tuple(compiled)
    return PatternClasses(classes)
