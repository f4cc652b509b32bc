"""Correlation: replay attempts joined with server logs, turned into evidence and facts.

Pure: DataFrames and records in, an ``EvidenceLog`` (evidence with reproducible queries, and the
facts rules test) and the ``Problem`` out. The vocabulary of facts, in one place:

``replay.*`` (tries of the replay; fractions are of the failed tries)
    tries, attempts, failed, failed_fraction, completed, outcome.<name>[.fraction],
    close_received.<code>[.fraction], close_sent.<code>, no_close_frame[.fraction],
    handshake_status.<status>, retry_after, phase.<phase>.fraction,
    close_reason_class.<class>, error_frame_class.<class>, error_frames,
    transient, persistent, recovered (failures only before the successes),
    failures_after_first_success, at_request_timeout[.fraction],
    idle_before_close_s.median, idle_before_close_s.spread, failed_session_s.median
``matrix.*``  culprit, fixes (tuple of "feature=value"), auth_fix (a fix changes the auth)
``probes.*``  count, ready_while_failing (readiness answered 2xx while tries failed),
    not_ready (probes answered 5xx or not at all)
``contract.*``  runs, violations, missing_events, order_violations, unmatched_tools,
    no_final_report; ``slo.*`` breaches, data_breaches, report_breaches;
    ``isolation.violations``; ``conformance.*`` findings, reserved_codes
``logs.*`` (server logs within ``window_s`` of each try)
    entries, errors, class.<class>.near (failed tries with such an event near them),
    class.<class>.near_fraction, class.<class>.lift, class.<class>.total,
    failures_after_start.fraction, instance_starts, deploys_during_replay,
    shutdowns_near_failures, sessions, sessions_at_timeout.fraction
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from uvs_analysis.logs.query import rfc3339
from uvs_analysis.logs.schema import LogLoad
from uvs_analysis.logs.sessions import websocket_sessions
from uvs_analysis.logs.signatures import error_events, split_load
from uvs_analysis.logs.timeline import deploys, instance_events
from uvs_analysis.rca.evidence import EvidenceLog, FactValue
from uvs_analysis.rca.patterns import PatternClasses, load_patterns
from uvs_analysis.rca.whys import Problem
from uvs_analysis.replay.frames import ATTEMPT_COLUMNS, ReplayResult

__all__ = ["Correlation", "CorrelationParams", "correlate"]

_FAILED = "outcome != 'completed'"
_OPENING_PHASES = frozenset({"ticket", "dns", "tcp", "tls", "http"})
_ALPHA = 0.05  # smoothing of the lift ratio


@dataclass(frozen=True)
class CorrelationParams:
    """How tries are joined with logs.

    Attributes:
        window_s: seconds around each try in which log rows count as "near" it.
        request_timeout_s: the service's request timeout (sessions cut there are flagged).
        startup_window_s: a failure this soon after an instance start counts as "after start".
        log_filter: the Cloud Logging filter the logs came from (for reproducible queries).
        replay_spec: the replay spec as redacted JSON (for reproducible queries).
        patterns: the pattern classes; None loads the built-in set.
    """

    window_s: float = 2.0
    request_timeout_s: float = 300.0
    startup_window_s: float = 30.0
    log_filter: str = ""
    replay_spec: str = ""
    patterns: PatternClasses | None = None


@dataclass(frozen=True)
class Correlation:
    """The evidence of one run and the problem it shows."""

    log: EvidenceLog
    problem: Problem
    near_logs: pd.DataFrame  # error events near failed tries: event columns + attempt, try
    signatures: pd.DataFrame  # per template: near_failed, near_completed, lift, revisions ...


def correlate(
    replay: ReplayResult | None,
    *,
    matrix: Mapping[str, Any] | None = None,
    logs: pd.DataFrame | LogLoad | None = None,
    params: CorrelationParams | None = None,
) -> Correlation:
    """Evidence and facts from a replay, an optional handshake-matrix summary and the server
    logs of the same window (any of them may be missing).

    ``logs`` is a normalized frame or a LogLoad; for a load pushed down to BigQuery the
    counts, sessions and instance events come from its aggregates and the error events from
    the rows near failures it fetched."""
    params = params or CorrelationParams()
    patterns = params.patterns or load_patterns()
    log = EvidenceLog()
    attempts = replay.attempts_frame() if replay is not None else _no_attempts()
    failed = attempts.query(_FAILED) if len(attempts) else attempts
    if replay is not None:
        summary = replay.summary()
        _replay_facts(log, attempts, failed, replay.frames_frame(), summary, params, patterns)
        probes = replay.probes_frame()
        if len(probes):
            _probe_facts(log, probes, failed, params)
        _contract_facts(log, replay, summary, params)
    if matrix:
        _matrix_facts(log, matrix, params)
    near, signatures = pd.DataFrame(), pd.DataFrame()
    if logs is not None:
        frames = replay.frames_frame() if replay is not None else None
        near, signatures = _log_facts(log, attempts, failed, frames, logs, params, patterns)
    problem = _problem(log, attempts, failed)
    return Correlation(log=log, problem=problem, near_logs=near, signatures=signatures)


def _no_attempts() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype=dtype)
                         for name, (dtype, _) in ATTEMPT_COLUMNS.items()})


# Replay


def _replay_facts(
    log: EvidenceLog,
    attempts: pd.DataFrame,
    failed: pd.DataFrame,
    frames: pd.DataFrame | None,
    summary: Mapping[str, Any],
    params: CorrelationParams,
    patterns: PatternClasses,
) -> None:
    tries, n_failed = len(attempts), len(failed)
    spec = params.replay_spec
    outcomes = Counter(failed["outcome"].astype(str)) if n_failed else Counter()
    facts: dict[str, FactValue] = {
        "replay.tries": tries,
        "replay.attempts": int(attempts["attempt"].nunique()) if tries else 0,
        "replay.failed": n_failed,
        "replay.completed": tries - n_failed,
        "replay.failed_fraction": n_failed / tries if tries else 0.0,
    }
    for name, count in outcomes.items():
        facts[f"replay.outcome.{name}"] = count
        facts[f"replay.outcome.{name}.fraction"] = count / n_failed
    labels = ", ".join(f"{k} x{v}" for k, v in Counter(failed["label"].astype(str)).most_common())
    log.add(
        "replay.outcomes",
        f"{n_failed} of {tries} replayed tries failed" + (f": {labels}" if labels else ""),
        numbers={"tries": tries, "failed": n_failed, **dict(outcomes)},
        query=spec,
        query_kind="replay-spec",
        rows=_rows(failed, ["attempt", "try", "label", "phase", "detail"]),
        facts=facts,
    )
    if not n_failed:
        return
    # Close codes, both directions, and the phase of the failure.
    received = Counter(int(c) for c in failed["close_rcvd_code"].dropna())
    # Only closes the client started count as "sent": a reply echoing the server's is not.
    client_first = failed[failed["close_sent_code"].notna()
                          & (failed["close_rcvd_code"].isna()
                             | failed["rcvd_then_sent"].eq(False).fillna(False))]
    sent = Counter(int(c) for c in client_first["close_sent_code"].dropna())
    opened = failed[failed["http_status"] == 101]
    no_frame = int((opened["close_rcvd_code"].isna() & ~opened["outcome"].isin(
        ["timed_out"])).sum()) if len(opened) else 0
    close_facts: dict[str, FactValue] = {"replay.no_close_frame": no_frame,
                                         "replay.no_close_frame.fraction": no_frame / n_failed}
    for code, count in received.items():
        close_facts[f"replay.close_received.{code}"] = count
        close_facts[f"replay.close_received.{code}.fraction"] = count / n_failed
    for code, count in sent.items():
        close_facts[f"replay.close_sent.{code}"] = count
    phases = Counter(_phase(p) for p in failed["phase"].astype(str))
    for phase, count in phases.items():
        close_facts[f"replay.phase.{phase}.fraction"] = count / n_failed
    reasons = pd.concat([failed["close_rcvd_reason"], client_first["close_sent_reason"]]).dropna()
    for cls, count in _class_counts(patterns, reasons.astype(str)).items():
        close_facts[f"replay.close_reason_class.{cls}"] = count
    log.add(
        "replay.closes",
        "Close frames on failed tries: received "
        + (", ".join(f"{c} x{n}" for c, n in received.most_common()) or "none")
        + "; started by the client "
        + (", ".join(f"{c} x{n}" for c, n in sent.most_common()) or "none")
        + f"; {no_frame} opened tries ended with no Close frame (1006)",
        numbers={"received": dict(received), "sent": dict(sent), "no_close_frame": no_frame,
                 "phases": dict(phases)},
        query=spec, query_kind="replay-spec",
        rows=_rows(failed, ["attempt", "try", "close_rcvd_code", "close_rcvd_reason",
                            "close_sent_code", "close_sent_reason", "closed_by", "phase"]),
        facts=close_facts,
    )
    refused = failed[failed["http_status"].notna() & (failed["http_status"] != 101)]
    if len(refused):
        statuses = Counter(int(s) for s in refused["http_status"])
        hs_facts: dict[str, FactValue] = {
            f"replay.handshake_status.{s}": n for s, n in statuses.items()
        }
        hs_facts["replay.retry_after"] = int(refused["retry_after"].notna().sum())
        log.add("replay.handshake_refused",
                "Handshakes refused with HTTP " + ", ".join(
                    f"{s} x{n}" for s, n in statuses.most_common())
                + f" ({hs_facts['replay.retry_after']} with Retry-After)",
                numbers={"statuses": dict(statuses)}, query=spec, query_kind="replay-spec",
                rows=_rows(refused, ["attempt", "try", "http_status", "retry_after"]),
                facts=hs_facts)
    _error_frame_facts(log, failed, frames, patterns, spec)
    _timing_facts(log, attempts, failed, frames, summary, params)


def _error_frame_facts(log: EvidenceLog, failed: pd.DataFrame, frames: pd.DataFrame | None,
                       patterns: PatternClasses, spec: str) -> None:
    if frames is None or not len(frames):
        return
    keys = set(zip(failed["attempt"], failed["try"], strict=True))
    mine = frames[[k in keys for k in zip(frames["attempt"], frames["try"], strict=True)]]
    errors = mine[(mine["direction"] == "recv") & mine["event_type"].fillna("").str.contains(
        "error", case=False)]
    if not len(errors):
        return
    facts: dict[str, FactValue] = {"replay.error_frames": len(errors)}
    for cls, count in _class_counts(patterns, errors["text"].astype(str)).items():
        facts[f"replay.error_frame_class.{cls}"] = count
    log.add("replay.error_frames",
            f"{len(errors)} error frames reached clients on failed tries before the close",
            numbers={"error_frames": len(errors)}, query=spec, query_kind="replay-spec",
            rows=_rows(errors, ["attempt", "try", "event_type", "text"]), facts=facts)


def _timing_facts(log: EvidenceLog, attempts: pd.DataFrame, failed: pd.DataFrame,
                  frames: pd.DataFrame | None, summary: Mapping[str, Any],
                  params: CorrelationParams) -> None:
    ok = attempts.query("outcome == 'completed'")
    first_ok = ok["started_at"].min() if len(ok) else None
    last_fail = failed["started_at"].max()
    after_success = int((failed["started_at"] > first_ok).sum()) if first_ok is not None else 0
    recovered = bool(len(ok)) and bool((ok["started_at"] > last_fail).any()) and after_success == 0
    opened = failed[failed["http_status"] == 101]
    durations = (opened["duration_ms"].astype(float) / 1000.0).dropna()
    tolerance = max(1.0, 0.05 * params.request_timeout_s)
    at_timeout = int(((durations - params.request_timeout_s).abs() <= tolerance).sum())
    facts: dict[str, FactValue] = {
        "replay.transient": int(summary.get("transient", 0)),
        "replay.persistent": int(summary.get("persistent", 0)),
        "replay.recovered": recovered,
        "replay.failures_after_first_success": after_success,
        "replay.at_request_timeout": at_timeout,
        "replay.at_request_timeout.fraction": at_timeout / len(failed),
    }
    if len(durations):
        facts["replay.failed_session_s.median"] = float(durations.median())
    idle = _idle_before_close(opened, frames)
    if len(idle):
        facts["replay.idle_before_close_s.median"] = float(idle.median())
        facts["replay.idle_before_close_s.spread"] = float(idle.max() - idle.min())
    if recovered:
        pattern = "Failures stopped: every failed try started before the successes after it"
    elif after_success:
        pattern = f"Failures and successes interleave ({after_success} failures after the " \
                  "first success)"
    elif not len(ok):
        pattern = "No try succeeded"
    else:
        pattern = "Successes came first, then only failures"
    idle_text = ""
    if "replay.idle_before_close_s.median" in facts:
        idle_text = "; median silence before the close " \
                    f"{facts['replay.idle_before_close_s.median']:.2f} s"
    log.add(
        "replay.timing",
        f"{pattern}; {at_timeout} opened failures lasted the {params.request_timeout_s:g} s "
        f"request timeout{idle_text}",
        numbers={k.split("replay.", 1)[1]: v for k, v in facts.items()},
        query="attempts.sort_values('started_at')[['started_at', 'outcome', 'duration_ms']]",
        query_kind="dataframe",
        facts=facts,
    )


def _idle_before_close(opened: pd.DataFrame, frames: pd.DataFrame | None) -> pd.Series:
    if frames is None or not len(frames) or not len(opened):
        return pd.Series(dtype=float)
    recv = frames[frames["direction"] == "recv"]
    last = recv.groupby(["attempt", "try"])["t_ms"].max()
    ends = opened["close_ms"].fillna(opened["duration_ms"]).astype(float)
    gaps = []
    for attempt, try_index, close in zip(opened["attempt"], opened["try"], ends, strict=True):
        key = (attempt, try_index)
        if key in last.index and pd.notna(close):
            gaps.append((float(close) - float(last[key])) / 1000.0)
    return pd.Series(gaps, dtype=float)


# Matrix, probes, contract


def _matrix_facts(log: EvidenceLog, matrix: Mapping[str, Any], params: CorrelationParams) -> None:
    fixes = tuple(str(f) for f in matrix.get("fixes", []))
    culprit = matrix.get("culprit")
    facts: dict[str, FactValue] = {"matrix.fixes": fixes, "matrix.breaks":
                                   tuple(str(b) for b in matrix.get("breaks", []))}
    if culprit:
        facts["matrix.culprit"] = str(culprit)
    facts["matrix.auth_fix"] = any(f.startswith("auth") for f in fixes)
    log.add("replay.matrix", str(matrix.get("explanation") or "handshake matrix run"),
            numbers={"baseline": matrix.get("baseline"), "fixes": list(fixes)},
            query=params.replay_spec, query_kind="replay-spec",
            rows=[dict(v) for v in matrix.get("variants", [])][:20], facts=facts)


def _probe_facts(log: EvidenceLog, probes: pd.DataFrame, failed: pd.DataFrame,
                 params: CorrelationParams) -> None:
    status = probes["status"]
    healthy = int(((status >= 200) & (status < 300)).fillna(False).sum())
    not_ready = int((status.isna() | (status >= 500)).fillna(True).sum())
    facts: dict[str, FactValue] = {
        "probes.count": len(probes),
        "probes.not_ready": not_ready,
        "probes.ready_while_failing": healthy > 0 and len(failed) > 0 and not_ready == 0,
    }
    log.add("replay.probes",
            f"{len(probes)} health/readiness probes: {healthy} answered 2xx, {not_ready} "
            "answered 5xx or not at all", numbers={"healthy": healthy, "not_ready": not_ready},
            query=params.replay_spec, query_kind="replay-spec",
            rows=_rows(probes, ["url", "phase", "status", "retry_after"]), facts=facts)


def _contract_facts(log: EvidenceLog, replay: ReplayResult, summary: Mapping[str, Any],
                    params: CorrelationParams) -> None:
    # Only runs whose connection completed are judged on the contract: a run cut by a
    # connection failure misses its events because of that failure, which is evidence already.
    done = {(t.attempt, t.try_index) for t, c in zip(replay.traces, replay.classifications,
                                                     strict=True)
            if c.outcome.value == "completed"}
    judged = [c for c in replay.contracts if (c.attempt, c.try_index) in done]
    rules = Counter(v.rule for c in judged for v in c.violations)
    breaches = Counter(b for c in judged for b in c.slo_breaches)
    findings = list(replay.findings)
    facts: dict[str, FactValue] = {
        "contract.runs": len(judged),
        "contract.violations": sum(n for r, n in rules.items() if not r.startswith("slo_")),
        # An event not delivered shows as a missing type, a tool call never completed, or an
        # agent whose first/last event is not agent_started/agent_completed.
        "contract.missing_events": rules["missing_event"] + rules["unmatched_tool"]
        + rules["agent_not_started_first"] + rules["agent_not_completed_last"],
        "contract.order_violations": rules["agent_order"],
        "contract.unmatched_tools": rules["unmatched_tool"],
        "contract.no_final_report": rules["no_final_report"],
        "slo.breaches": sum(breaches.values()),
        "slo.data_breaches": breaches["slo_data"],
        "slo.report_breaches": breaches["slo_report"],
        "isolation.violations": len(replay.isolation.violations),
        "conformance.findings": len(findings),
        "conformance.reserved_codes": sum(1 for f in findings
                                          if f.rule == "reserved_code_on_wire"),
    }
    slo = summary.get("slo", {})
    log.add(
        "replay.contract",
        f"{len(judged)} completed agent runs: {facts['contract.violations']} contract "
        f"violations ({', '.join(f'{k} x{v}' for k, v in rules.most_common()) or 'none'}); "
        f"{facts['slo.breaches']} SLO breaches (data p95 {slo.get('data_p95_s')} s against "
        f"{slo.get('data_slo_s')} s, report p95 {slo.get('report_p95_s')} s against "
        f"{slo.get('report_slo_s')} s); {facts['isolation.violations']} frames carried another "
        f"user's ids; {facts['conformance.findings']} RFC 6455 findings "
        f"({', '.join(sorted({f.detail for f in findings})) or 'none'})",
        numbers={"by_rule": dict(rules), "slo": dict(slo)},
        query=params.replay_spec, query_kind="replay-spec",
        rows=[{"attempt": v.attempt, "try": v.try_index, "rule": f"isolation:{v.field}",
               "detail": f"user {v.user} received user {v.owner}'s {v.field}: {v.frame_text}"}
              for v in replay.isolation.violations][:5]
        + [{"attempt": f.attempt, "try": f.try_index, "rule": f.rule, "detail": f.detail}
           for f in findings][:5],
        facts=facts,
    )


# Logs


def _log_facts(log: EvidenceLog, attempts: pd.DataFrame, failed: pd.DataFrame,
               frames: pd.DataFrame | None, source: pd.DataFrame | LogLoad,
               params: CorrelationParams,
               patterns: PatternClasses) -> tuple[pd.DataFrame, pd.DataFrame]:
    logs, aggregates = split_load(source)
    entries = aggregates.entries if aggregates is not None else len(logs)
    events = error_events(logs, min_severity="WARNING") if len(logs) else pd.DataFrame()
    errors = int((events["severity"].isin(["ERROR", "CRITICAL", "ALERT", "EMERGENCY"])).sum()
                 ) if len(events) else 0
    log.add("logs.volume", f"{entries} server log entries in the window, {errors} error events",
            numbers={"entries": entries, "errors": errors}, query=params.log_filter,
            query_kind="cloud-logging-filter",
            facts={"logs.entries": entries, "logs.errors": errors})
    if not len(attempts):
        return pd.DataFrame(), pd.DataFrame()
    window = timedelta(seconds=params.window_s)
    messages = events["message"] if len(events) else pd.Series([], dtype=str)
    event_classes = [patterns.match(str(m)) for m in messages]
    ok = attempts.query("outcome == 'completed'")
    near_rows: list[dict[str, Any]] = []

    stamps = _ns(events["timestamp"]) if len(events) else np.array([], dtype=np.int64)
    event_conn = (events["connection_id"].astype("string").fillna("").to_numpy()
                  if len(events) else np.array([], dtype=object))
    conns = _connection_ids(frames)
    claimed = np.isin(event_conn, list(conns.values())) if conns else \
        np.zeros(len(stamps), dtype=bool)

    templates = events["template"].astype(str).tolist() if len(events) else []

    def hits(rows: pd.DataFrame, record: bool) -> tuple[Counter[str], Counter[str]]:
        # A try that was told its connection id joins that connection's events; a try that
        # was not joins, within the window, the events of connections no other try owns.
        # Events without a connection id join by time. Never another try's connection.
        found: Counter[str] = Counter()
        found_templates: Counter[str] = Counter()
        for attempt, try_index, span_lo, lo, hi in _windows(rows, window):
            conn = conns.get((attempt, try_index), "")
            in_window = (stamps >= lo.value) & (stamps <= hi.value)
            in_span = (stamps >= span_lo.value) & (stamps <= hi.value)
            if conn:
                keep = (in_window & (event_conn == "")) | (in_span & (event_conn == conn))
            else:
                keep = in_window & ~claimed
            classes: set[str] = set()
            seen: set[str] = set()
            for pos in keep.nonzero()[0]:
                classes.update(event_classes[pos])
                seen.add(templates[pos])
                if record:
                    row = {str(k): v for k, v in events.iloc[pos].to_dict().items()}
                    near_rows.append({"attempt": attempt, "try": try_index, **row})
            found.update(classes)
            found_templates.update(seen)
        return found, found_templates

    near_fail, fail_templates = hits(failed, record=True)
    near_ok, ok_templates = hits(ok, record=False)
    signatures = _signature_lift(events, fail_templates, ok_templates, len(failed), len(ok))
    totals = Counter(c for classes in event_classes for c in classes)
    facts: dict[str, FactValue] = {}
    lines = []
    for cls in patterns.names:
        p_fail = near_fail[cls] / len(failed) if len(failed) else 0.0
        p_ok = near_ok[cls] / len(ok) if len(ok) else 0.0
        lift = (p_fail + _ALPHA) / (p_ok + _ALPHA)
        facts[f"logs.class.{cls}.total"] = totals[cls]
        if len(failed):
            facts[f"logs.class.{cls}.near"] = near_fail[cls]
            facts[f"logs.class.{cls}.near_fraction"] = p_fail
            facts[f"logs.class.{cls}.lift"] = round(lift, 3)
        if totals[cls] or near_fail[cls]:
            lines.append(f"{cls}: near {near_fail[cls]} of {len(failed)} failed tries "
                         f"(lift {lift:.1f}), {totals[cls]} in all")
    start, end = attempts["started_at"].min() - window, attempts["ended_at"].max() + window
    log.add(
        "logs.classes",
        "Server warnings/errors by pattern class within "
        f"{params.window_s:g} s of the tries: " + ("; ".join(lines) or "none"),
        numbers={k: v for k, v in facts.items() if not isinstance(v, tuple)},
        query=_windowed(params.log_filter, start, end) + "\nAND severity>=WARNING",
        query_kind="cloud-logging-filter",
        rows=[{k: r.get(k) for k in ("timestamp", "severity", "template", "message")}
              for r in near_rows[:8]],
        facts=facts,
    )
    if len(signatures):
        top = signatures.head(8)
        log.add(
            "logs.signature_lift",
            "Error signatures near failed tries: " + "; ".join(
                f"{t} (near {n} of {len(failed)} failed, lift {lift:.1f})"
                for t, n, lift in zip(top["template"], top["near_failed"], top["lift"],
                                      strict=True)),
            numbers={"signatures": len(signatures)},
            query=_windowed(params.log_filter, start, end) + "\nAND severity>=WARNING",
            query_kind="cloud-logging-filter",
            rows=[{str(k): v for k, v in r.items()}
                  for r in top.drop(columns=["example"]).to_dict("records")],
        )
    _instance_facts(log, source, attempts, failed, params, start, end)
    return pd.DataFrame(near_rows), signatures


def _signature_lift(events: pd.DataFrame, near_failed: Counter[str], near_ok: Counter[str],
                    failed: int, ok: int) -> pd.DataFrame:
    """Per error template: tries near it (failed, completed), lift, revisions, instances."""
    if not near_failed:
        return pd.DataFrame(columns=["template", "near_failed", "near_completed", "lift",
                                     "events", "revisions", "instances", "example"])
    rows = []
    grouped = events.groupby("template")
    for template, n_fail in near_failed.items():
        group = grouped.get_group(template) if template in grouped.groups else events.head(0)
        p_fail = n_fail / failed if failed else 0.0
        p_ok = near_ok[template] / ok if ok else 0.0
        rows.append({
            "template": template, "near_failed": n_fail, "near_completed": near_ok[template],
            "lift": round((p_fail + _ALPHA) / (p_ok + _ALPHA), 2), "events": len(group),
            "revisions": ", ".join(sorted(group["revision"].dropna().astype(str).unique())),
            "instances": int(group["instance_id"].nunique()),
            "example": str(group["message"].iloc[0]) if len(group) else "",
        })
    return pd.DataFrame(rows).sort_values(["lift", "near_failed"], ascending=False,
                                          ignore_index=True)


def _instance_facts(log: EvidenceLog, logs: pd.DataFrame | LogLoad, attempts: pd.DataFrame,
                    failed: pd.DataFrame, params: CorrelationParams,
                    start: pd.Timestamp, end: pd.Timestamp) -> None:
    frame, aggregates = split_load(logs)
    has_rows = bool(len(frame)) or aggregates is not None
    events = instance_events(logs) if has_rows else pd.DataFrame()
    explicit = events[events["source"] != "inferred"] if len(events) else events
    starts = explicit[explicit["event"] == "start"]["time"] if len(explicit) else pd.Series([])
    stops = explicit[explicit["event"].isin(["shutdown", "crash", "oom"])] if len(explicit) \
        else explicit
    startup = timedelta(seconds=params.startup_window_s)
    window = timedelta(seconds=params.window_s)
    start_times = [pd.Timestamp(t) for t in starts]
    after_start = sum(
        1 for t in failed["started_at"]
        if any(pd.Timestamp(t) >= s and pd.Timestamp(t) - s <= startup for s in start_times)
    )
    stop_times = _ns(stops["time"]) if len(stops) else np.array([], dtype=np.int64)
    shut_near = sum(
        1 for _, _, _, lo, hi in _windows(failed, window)
        if bool(((stop_times >= lo.value) & (stop_times <= hi.value)).any())
    )
    new_revisions = deploys(logs) if has_rows else pd.DataFrame()
    during = int(((new_revisions["time"] >= start) & (new_revisions["time"] <= end)).sum()) \
        if len(new_revisions) else 0
    sessions = websocket_sessions(logs, request_timeout_s=params.request_timeout_s) \
        if has_rows else pd.DataFrame()
    in_window = sessions[(sessions["start"] >= start) & (sessions["start"] <= end)] \
        if len(sessions) else sessions
    at_timeout = int(in_window["at_timeout"].sum()) if len(in_window) else 0
    facts: dict[str, FactValue] = {
        "logs.instance_starts": len(starts),
        "logs.deploys_during_replay": during,
        "logs.shutdowns_near_failures": shut_near,
        "logs.sessions": len(in_window),
        "logs.sessions_at_timeout.fraction": at_timeout / len(in_window) if len(in_window)
        else 0.0,
    }
    if len(failed):
        facts["logs.failures_after_start.fraction"] = after_start / len(failed)
    log.add(
        "logs.timeline",
        f"{len(starts)} instance starts and {len(stops)} shutdowns/crashes in the logs; "
        f"{after_start} of {len(failed)} failures within {params.startup_window_s:g} s after an "
        f"instance start; {shut_near} failures next to a shutdown; {during} new revisions during "
        f"the replay; {at_timeout} of {len(in_window)} WebSocket sessions ended at the "
        f"{params.request_timeout_s:g} s request timeout",
        numbers={k.split("logs.", 1)[1]: v for k, v in facts.items()},
        query=_windowed(params.log_filter, start, end)
        + '\nAND (logName:"varlog%2Fsystem" OR httpRequest.status=101)',
        query_kind="cloud-logging-filter",
        facts=facts,
    )


# Problem


def _problem(log: EvidenceLog, attempts: pd.DataFrame, failed: pd.DataFrame) -> Problem:
    facts = log.facts()
    ids = tuple(e.id for e in log.evidence if e.kind in ("replay.outcomes", "replay.closes",
                                                         "replay.contract"))
    parts: list[str] = []
    if len(failed):
        labels = Counter(failed["label"].astype(str)).most_common(3)
        parts.append(f"{len(failed)} of {len(attempts)} WebSocket tries failed ("
                     + ", ".join(f"{label} x{n}" for label, n in labels) + ")")
    for name, text in (("contract.violations", "agent-run contract violations"),
                       ("slo.breaches", "SLO breaches"),
                       ("isolation.violations", "frames delivered to the wrong user"),
                       ("conformance.findings", "RFC 6455 close-code findings")):
        value = facts.value(name, 0)
        if isinstance(value, int) and value > 0:
            parts.append(f"{value} {text}")
    if not len(attempts):
        return Problem("No replay was run; only server logs are available.", (), False)
    if not parts:
        return Problem(f"All {len(attempts)} replayed tries completed with the contract, SLOs "
                       "and isolation honoured.", ids, False)
    return Problem("; ".join(parts) + ".", ids, True)


# Helpers


def _windows(
    rows: pd.DataFrame, window: timedelta
) -> list[tuple[int, int, pd.Timestamp, pd.Timestamp, pd.Timestamp]]:
    """(attempt, try, span_from, failure_from, to) for each try: the whole try plus ``window``
    on each side, and the part where its failure happened (the end of a try longer than 10 s,
    else the whole try)."""
    out = []
    for attempt, try_index, began, ended in zip(rows["attempt"], rows["try"], rows["started_at"],
                                                rows["ended_at"], strict=True):
        start, end = pd.Timestamp(began), pd.Timestamp(ended)
        lo = end - window if end - start > timedelta(seconds=10) else start - window
        out.append((int(attempt), int(try_index), start - window, lo, end + window))
    return out


def _connection_ids(frames: pd.DataFrame | None) -> dict[tuple[int, int], str]:
    """The connection id each try was told by the server (its first frames), if any."""
    found: dict[tuple[int, int], str] = {}
    if frames is None or not len(frames):
        return found
    recv = frames[(frames["direction"] == "recv")
                  & frames["text"].astype("string").str.contains("connection_id", na=False)]
    for attempt, try_index, text in zip(recv["attempt"], recv["try"], recv["text"], strict=True):
        key = (int(attempt), int(try_index))
        if key in found:
            continue
        conn = _find_key(_json(str(text)), "connection_id")
        if conn:
            found[key] = conn
    return found


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _find_key(value: Any, key: str, depth: int = 0) -> str:
    if depth > 4:
        return ""
    if isinstance(value, Mapping):
        if isinstance(value.get(key), str) and value[key]:
            return str(value[key])
        for child in value.values():
            found = _find_key(child, key, depth + 1)
            if found:
                return found
    return ""


def _ns(times: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds (NaT as the minimum, never inside a window)."""
    return np.asarray(pd.to_datetime(times, utc=True).astype("int64"), dtype=np.int64)


def _phase(phase: str) -> str:
    return "before_accept" if phase in _OPENING_PHASES else phase


def _class_counts(patterns: PatternClasses, texts: pd.Series) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(patterns.match(text))
    return counts


def _rows(frame: pd.DataFrame, columns: list[str], limit: int = 8) -> list[dict[str, Any]]:
    present = [c for c in columns if c in frame.columns]
    out: list[dict[str, Any]] = []
    for record in frame[present].head(limit).to_dict("records"):
        out.append({str(k): (None if _is_na(v) else
                             (v.isoformat() if hasattr(v, "isoformat") else v))
                    for k, v in record.items()})
    return out


def _is_na(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _windowed(base: str, start: pd.Timestamp, end: pd.Timestamp) -> str:
    base = re.sub(r"\n?AND timestamp[<>]=?\"[^\"]*\"", "", base or "").strip()
    window = f'timestamp>="{rfc3339(start.to_pydatetime())}"\nAND timestamp<="' \
             f'{rfc3339(end.to_pydatetime())}"'
    return f"{base}\nAND {window}" if base else window
