"""The handshake matrix: vary one feature at a time and name the feature that flips the outcome.

Features: ``auth`` (subprotocol prefix jwt./jwt-auth./bearer., base64url token, Authorization
header, ``?token=`` query, ticket, none), ``origin``, ``compression`` and ``subprotocol`` (an extra
plain name, an unsupported name). ``matrix_verdict`` is pure: it compares each variant's
dominant outcome label with the baseline's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pandas as pd

from uvs_analysis.replay.classify import Outcome
from uvs_analysis.replay.frames import ReplayResult
from uvs_analysis.replay.redact import SECRET_QUERY_KEYS, TOKEN_PREFIXES
from uvs_analysis.replay.runner import run_replay_async, run_sync
from uvs_analysis.replay.spec import HandshakeSpec, ticket_url_for

__all__ = [
    "MatrixResult",
    "MatrixVerdict",
    "Variant",
    "VariantOutcome",
    "matrix_verdict",
    "run_matrix",
    "run_matrix_async",
    "variants",
]


@dataclass(frozen=True)
class Variant:
    """One spec that differs from the baseline in one feature."""

    feature: str
    value: str
    spec: HandshakeSpec


@dataclass(frozen=True)
class VariantOutcome:
    """What one variant gave.

    Attributes:
        feature, value: what changed ("baseline" for the baseline itself).
        label: the dominant outcome label over its attempts.
        completed: attempts that completed.
        attempts: attempts run.
        labels: every label with its count.
    """

    feature: str
    value: str
    label: str
    completed: int
    attempts: int
    labels: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class MatrixVerdict:
    """Which feature flips the outcome.

    Attributes:
        culprit: the feature to look at first (a fix beats a break), or None.
        fixes: "feature=value" changes that turn a failing baseline into completions.
        breaks: changes that turn a completing baseline into failures.
        flips: every change whose dominant outcome differs from the baseline's.
        explanation: one paragraph for people.
    """

    culprit: str | None
    fixes: tuple[str, ...]
    breaks: tuple[str, ...]
    flips: tuple[str, ...]
    explanation: str


@dataclass(frozen=True)
class MatrixResult:
    """The matrix run: baseline, variants and verdict."""

    baseline: VariantOutcome
    variants: tuple[VariantOutcome, ...]
    verdict: MatrixVerdict
    results: tuple[ReplayResult, ...]

    def frame(self) -> pd.DataFrame:
        """One row per variant (baseline first): feature, value, label, completed, attempts,
        flipped."""
        rows = [
            {"feature": v.feature, "value": v.value, "label": v.label,
             "completed": v.completed, "attempts": v.attempts,
             "flipped": v.feature != "baseline" and v.label != self.baseline.label}
            for v in (self.baseline, *self.variants)
        ]
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        """JSON-ready: baseline, variants, culprit, fixes, breaks, explanation."""
        return {
            "baseline": self.baseline.label,
            "variants": [
                {"feature": v.feature, "value": v.value, "label": v.label,
                 "completed": v.completed, "attempts": v.attempts}
                for v in self.variants
            ],
            "culprit": self.verdict.culprit,
            "fixes": list(self.verdict.fixes),
            "breaks": list(self.verdict.breaks),
            "explanation": self.verdict.explanation,
        }


def _auth_method(spec: HandshakeSpec) -> str:
    if spec.ticket_url:
        return "ticket"
    for p in spec.subprotocols:
        if "{token" in p:
            return "subprotocol:" + p.split("{", 1)[0]
    if any("{token" in v for _, v in spec.headers):
        return "header"
    if "{token" in spec.url:
        return "query"
    return "none"


def _strip_auth(spec: HandshakeSpec) -> HandshakeSpec:
    parts = urlsplit(spec.url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k.lower() not in SECRET_QUERY_KEYS and "{token" not in v]
    url = urlunsplit(parts._replace(query=urlencode(query, safe="{}")))
    return spec.with_changes(
        url=url,
        subprotocols=tuple(p for p in spec.subprotocols if "{token" not in p),
        headers=tuple((n, v) for n, v in spec.headers if "{token" not in v),
        ticket_url=None,
    )


def variants(spec: HandshakeSpec) -> tuple[Variant, ...]:
    """Every one-feature change of ``spec`` (the baseline itself excluded)."""
    out: list[Variant] = []
    base_auth = _auth_method(spec)
    bare = _strip_auth(spec)
    plain = tuple(p for p in bare.subprotocols)
    auth: dict[str, HandshakeSpec] = {}
    for prefix in TOKEN_PREFIXES[:3]:
        auth[f"subprotocol:{prefix}"] = bare.with_changes(subprotocols=(f"{prefix}{{token}}",
                                                                        *plain))
    auth["subprotocol:jwt.base64url"] = bare.with_changes(subprotocols=("jwt.{token_b64url}",
                                                                        *plain))
    auth["header"] = bare.with_changes(headers=(*bare.headers,
                                                ("Authorization", "Bearer {token}")))
    sep = "&" if urlsplit(bare.url).query else "?"
    auth["query"] = bare.with_changes(url=bare.url + sep + "token={token}")
    auth["ticket"] = bare.with_changes(ticket_url=spec.ticket_url or ticket_url_for(spec.url))
    auth["none"] = bare
    for value, changed in auth.items():
        if value != base_auth:
            out.append(Variant("auth", value, changed))
    if spec.origin is None:
        out.append(Variant("origin", "http://localhost", spec.with_changes(
            origin="http://localhost")))
    else:
        out.append(Variant("origin", "none", spec.with_changes(origin=None)))
    out.append(Variant("origin", "https://foreign.example", spec.with_changes(
        origin="https://foreign.example")))
    out.append(Variant("compression", "off" if spec.compression else "on",
                       spec.with_changes(compression=not spec.compression)))
    out.append(Variant("subprotocol", "+agent_chat", spec.with_changes(
        subprotocols=(*spec.subprotocols, "agent_chat"))))
    out.append(Variant("subprotocol", "unsupported-only", spec.with_changes(
        subprotocols=("x-unsupported-protocol",), headers=(*spec.headers,
                                                           ("Authorization", "Bearer {token}"))
        if base_auth.startswith("subprotocol") else spec.headers)))
    return tuple(out)


def _outcome(feature: str, value: str, result: ReplayResult) -> VariantOutcome:
    labels = Counter(v.final.label for v in result.verdicts)
    completed = sum(1 for v in result.verdicts if v.final.outcome is Outcome.COMPLETED)
    label = labels.most_common(1)[0][0] if labels else "none"
    return VariantOutcome(feature, value, label, completed, len(result.verdicts),
                          tuple(labels.most_common()))


def matrix_verdict(baseline: VariantOutcome, rows: Sequence[VariantOutcome]) -> MatrixVerdict:
    """Name the feature whose change flips the outcome (pure).

    A change counts only when its attempts agree with each other and the baseline's attempts
    agree too: a failure that comes and goes on the same handshake (a flaky dependency) is not
    explained by any handshake feature, and a chance completion must not pass for a fix.
    """
    if len(baseline.labels) > 1:
        seen = ", ".join(f"{label} x{n}" for label, n in baseline.labels)
        return MatrixVerdict(
            None, (), (), (),
            f"The baseline is not consistent ({seen}): the same handshake both succeeds and "
            "fails, so the failure does not follow a handshake feature (look at the server "
            "side: dependencies, instances, load).")
    base_ok = baseline.label == Outcome.COMPLETED.value
    flips = [r for r in rows if r.label != baseline.label and len(r.labels) == 1]
    fixes = [r for r in flips if not base_ok and r.label == Outcome.COMPLETED.value]
    breaks = [r for r in flips if base_ok]
    lead = fixes or breaks or flips
    counts = Counter(r.feature for r in lead)
    culprit = counts.most_common(1)[0][0] if counts else None
    if culprit is None:
        explanation = (f"No single-feature change consistently altered the outcome "
                       f"({baseline.label}); the cause is not in the handshake features varied "
                       "here.")
    elif fixes:
        names = ", ".join(f"{r.feature}={r.value}" for r in fixes)
        explanation = (f"The baseline gives {baseline.label}; changing {names} gives completed "
                       f"runs. The feature to look at is {culprit}.")
    elif breaks:
        names = ", ".join(f"{r.feature}={r.value} -> {r.label}" for r in breaks)
        explanation = (f"The baseline completes; these changes break it: {names}. "
                       f"The most sensitive feature is {culprit}.")
    else:
        names = ", ".join(f"{r.feature}={r.value} -> {r.label}" for r in flips)
        explanation = (f"The baseline gives {baseline.label}; no change fixes it, but these "
                       f"alter it: {names}.")
    return MatrixVerdict(
        culprit,
        tuple(f"{r.feature}={r.value}" for r in fixes),
        tuple(f"{r.feature}={r.value}" for r in breaks),
        tuple(f"{r.feature}={r.value}" for r in flips),
        explanation,
    )


async def run_matrix_async(
    spec: HandshakeSpec, *, attempts_per_variant: int = 1, **kwargs: Any
) -> MatrixResult:
    """Run the baseline and every variant (sequentially), then judge.

    Args:
        spec: the baseline.
        attempts_per_variant: attempts per variant (the dominant label is compared).
        **kwargs: passed to ``run_replay_async`` (clock, env, tokens, resolver, ...).
    """
    kwargs.setdefault("concurrency", attempts_per_variant)
    base = await run_replay_async(spec, attempts=attempts_per_variant, **kwargs)
    results = [base]
    rows = []
    for v in variants(spec):
        result = await run_replay_async(v.spec, attempts=attempts_per_variant, **kwargs)
        results.append(result)
        rows.append(_outcome(v.feature, v.value, result))
    baseline = _outcome("baseline", _auth_method(spec), base)
    return MatrixResult(baseline, tuple(rows), matrix_verdict(baseline, rows), tuple(results))


def run_matrix(spec: HandshakeSpec, **kwargs: Any) -> MatrixResult:
    """Synchronous ``run_matrix_async``."""
    return run_sync(run_matrix_async(spec, **kwargs))
