"""What changed since the previous run of the same incident, and the figures trended per run.

Both read only a few keys of a run's summary (missing keys count as "no data"):
``five_whys.root_cause``, ``five_whys.nodes`` (``status``, ``rule``), ``logs.top_signatures``,
``logs.close_codes``, ``replay.attempts``, ``replay.outcomes``, ``replay.close_codes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["SUCCESS_OUTCOME", "compare_previous", "key_figures"]

#: The replay outcome that counts as a success; every other outcome is a failure.
SUCCESS_OUTCOME: Final = "completed"


def _get(summary: Mapping[str, Any] | None, *keys: str) -> Any:
    value: Any = summary
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _counts(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, float] = {}
    for key, n in value.items():
        if isinstance(n, int | float) and not isinstance(n, bool):
            out[str(key)] = float(n)
    return out


def _attempts(summary: Mapping[str, Any] | None) -> float:
    attempts = _get(summary, "replay", "attempts")
    if isinstance(attempts, int | float) and not isinstance(attempts, bool) and attempts > 0:
        return float(attempts)
    return sum(_counts(_get(summary, "replay", "outcomes")).values())


def _try_outcomes(summary: Mapping[str, Any] | None) -> tuple[dict[str, float], float]:
    """Outcome counts over every try (retries included) and their total; falls back to the
    attempts' final outcomes for summaries without per-try counts."""
    tries = _counts(_get(summary, "replay", "try_outcomes"))
    if tries:
        return tries, sum(tries.values())
    return _counts(_get(summary, "replay", "outcomes")), _attempts(summary)


def _shares(counts: Mapping[str, float], total: float) -> dict[str, float]:
    return {k: v / total for k, v in counts.items()} if total > 0 else {}


def _signatures(summary: Mapping[str, Any] | None) -> dict[str, int]:
    found: dict[str, int] = {}
    for sig in _get(summary, "logs", "top_signatures") or []:
        if isinstance(sig, Mapping) and sig.get("template") is not None:
            count = sig.get("count")
            found[str(sig["template"])] = int(count) if isinstance(count, int | float) else 0
    return found


def _supported_rules(summary: Mapping[str, Any] | None) -> set[str]:
    # A hypothesis is its node under the problem (N0); steps of its chain do not count.
    return {str(node["rule"]) for node in _get(summary, "five_whys", "nodes") or []
            if isinstance(node, Mapping) and node.get("rule") and node.get("parent") == "N0"
            and node.get("status") == "supported"}


def _root_cause(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    root = _get(summary, "five_whys", "root_cause")
    if not isinstance(root, Mapping):
        return None
    return {k: root.get(k) for k in ("category", "component", "statement")}


def key_figures(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The figures trended across runs of an incident (None where the run has no data).

    Keys: ``failure_rate`` (share of replayed tries, retries included, whose outcome is not
    ``completed``: a failure a retry hid still counts), ``top_close_code`` and
    ``top_close_code_share`` (the most frequent received close code, as a share of the received
    closes), ``signature_count`` (distinct error signatures among the top ones) and
    ``root_cause_category``.
    """
    outcomes, tries = _try_outcomes(summary)
    failure_rate = None
    if tries > 0 and outcomes:
        failure_rate = round(1 - outcomes.get(SUCCESS_OUTCOME, 0.0) / tries, 4)
    codes = _counts(_get(summary, "replay", "close_codes"))
    top_code, top_share = None, None
    if codes:
        top_code = max(codes, key=lambda c: (codes[c], c))
        top_share = round(codes[top_code] / sum(codes.values()), 4)
    sigs = _get(summary, "logs", "top_signatures")
    root = _root_cause(summary)
    return {
        "failure_rate": failure_rate,
        "top_close_code": top_code,
        "top_close_code_share": top_share,
        "signature_count": len(_signatures(summary)) if isinstance(sigs, list) else None,
        "root_cause_category": root.get("category") if root else None,
    }


def _rate_changes(
    before: Mapping[str, float], after: Mapping[str, float], min_change: float, key: str
) -> list[dict[str, Any]]:
    changes = []
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name, 0.0), after.get(name, 0.0)
        if abs(a - b) >= min_change:
            changes.append({key: name, "before": round(b, 4), "after": round(a, 4),
                            "change": round(a - b, 4)})
    return sorted(changes, key=lambda c: -abs(c["change"]))


def compare_previous(
    current: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    *,
    min_rate_change: float = 0.05,
) -> dict[str, Any] | None:
    """What changed from ``previous`` to ``current`` (two run summaries); None without a
    previous run.

    Args:
        current: this run's summary (or investigation).
        previous: the previous run's summary of the same incident.
        min_rate_change: the smallest change of a share (0..1) that counts as changed.

    Returns:
        ``previous_run_id``, ``previous_status``, ``new_signatures`` and ``gone_signatures``
        ({template, count}), ``close_code_rates`` (``received``: each close code's share of
        the closes the replayed tries received; ``logs``: each code's share of the close
        codes in the logs; entries {code, before, after, change}), ``outcome_rates``
        ({outcome, before, after, change}, shares of tries), ``resolved`` (rules supported
        before and no longer: "resolved?"), ``newly_supported``, ``root_cause`` ({changed,
        before, after}) and ``changes`` (one line per change, for people).
    """
    if previous is None:
        return None
    sig_before, sig_after = _signatures(previous), _signatures(current)
    new_sigs = [{"template": t, "count": n} for t, n in sig_after.items() if t not in sig_before]
    gone_sigs = [{"template": t, "count": n} for t, n in sig_before.items() if t not in sig_after]
    # Close codes are counted per try (retries included): compare each code's share of them.
    rcv_b = _counts(_get(previous, "replay", "close_codes"))
    rcv_a = _counts(_get(current, "replay", "close_codes"))
    received = _rate_changes(_shares(rcv_b, sum(rcv_b.values())),
                             _shares(rcv_a, sum(rcv_a.values())), min_rate_change, "code")
    log_b = _counts(_get(previous, "logs", "close_codes"))
    log_a = _counts(_get(current, "logs", "close_codes"))
    logged = _rate_changes(_shares(log_b, sum(log_b.values())),
                           _shares(log_a, sum(log_a.values())), min_rate_change, "code")
    out_b, tries_b = _try_outcomes(previous)
    out_a, tries_a = _try_outcomes(current)
    outcomes = _rate_changes(_shares(out_b, tries_b), _shares(out_a, tries_a), min_rate_change,
                             "outcome")
    sup_b, sup_a = _supported_rules(previous), _supported_rules(current)
    root_b, root_a = _root_cause(previous), _root_cause(current)
    root_changed = (root_b or {}).get("category") != (root_a or {}).get("category") or (
        (root_b or {}).get("component") != (root_a or {}).get("component"))
    changes = [f"new signature: {s['template']} (x{s['count']})" for s in new_sigs]
    changes += [f"signature gone: {s['template']}" for s in gone_sigs]
    changes += [f"received close {c['code']}: {c['before']:.0%} -> {c['after']:.0%} of the "
                "closes clients received" for c in received]
    changes += [f"logged close {c['code']}: {c['before']:.0%} -> {c['after']:.0%} of logged "
                "close codes" for c in logged]
    changes += [f"outcome {c['outcome']}: {c['before']:.0%} -> {c['after']:.0%} of tries"
                for c in outcomes]
    changes += [f"resolved? {rule} was supported and is no longer"
                for rule in sorted(sup_b - sup_a)]
    changes += [f"newly supported: {rule}" for rule in sorted(sup_a - sup_b)]
    if root_changed:
        changes.append(f"root cause changed: {(root_b or {}).get('category')} -> "
                       f"{(root_a or {}).get('category')}")
    return {
        "previous_run_id": previous.get("run_id"),
        "previous_started": previous.get("started"),
        "previous_status": previous.get("status"),
        "new_signatures": new_sigs,
        "gone_signatures": gone_sigs,
        "close_code_rates": {"received": received, "logs": logged},
        "outcome_rates": outcomes,
        "resolved": sorted(sup_b - sup_a),
        "newly_supported": sorted(sup_a - sup_b),
        "root_cause": {"changed": root_changed, "before": root_b, "after": root_a},
        "changes": changes,
    }
