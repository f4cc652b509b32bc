"""The report's sections as Markdown and DataFrames, built from an Investigation (pure).

Every piece of text that comes from a log, a frame or a server is escaped before it is put
into Markdown, so a log message carrying ``<script>`` is shown as text.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import pandas as pd

from uvs_analysis.rca.evidence import Evidence
from uvs_analysis.rca.whys import FiveWhys
from uvs_analysis.replay.closecodes import describe
from uvs_analysis.replay.frames import ReplayResult

__all__ = [
    "conformance_frame",
    "countermeasures_markdown",
    "evidence_markdown",
    "hypotheses_frame",
    "replay_verdict",
    "reproduce_markdown",
    "symptom_frames",
    "uvs_frame",
    "verdict_markdown",
]

CRITICAL_EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed",
                   "agent_completed")


def md(text: object) -> str:
    """Text safe to put in Markdown: HTML-escaped, pipes and newlines neutralised."""
    return escape(str(text)).replace("|", "\\|").replace("\n", " ")


def verdict_markdown(tree: FiveWhys, compare: Mapping[str, Any] | None = None) -> str:
    """The verdict paragraph: root cause with confidence (or unexplained with leads), the
    problem, contributing factors, and what changed since the previous run."""
    cause = tree.root_cause
    lines = [f"**Problem.** {md(tree.problem.statement)}", ""]
    if cause.category == "unexplained":
        lines.append(f"**Root cause: unexplained.** {md(cause.statement)}")
    elif cause.category == "no-failure":
        lines.append(f"**No failure.** {md(cause.statement)}")
    else:
        lines.append(
            f"**Root cause: {md(cause.category)}** (component: {md(cause.component)}, "
            f"confidence {cause.confidence:.2f}, node {md(cause.node)}). {md(cause.statement)}"
        )
    others = [n for n in tree.nodes if n.parent == "N0" and n.status == "supported"
              and n.id != cause.node]
    if others:
        lines += ["", "Also supported (contributing): " + "; ".join(
            f"{md(n.rule)} ({n.confidence:.2f})" for n in others) + "."]
    refuted = [n for n in tree.nodes if n.parent == "N0" and n.status == "refuted"]
    if refuted:
        lines += ["", "Refuted by the evidence: " + ", ".join(md(n.rule) for n in refuted) + "."]
    lines += ["", _changes(compare)]
    return "\n".join(lines)


def _changes(compare: Mapping[str, Any] | None) -> str:
    if not compare:
        return "_No previous run of this incident to compare with._"
    changes = [md(line) for line in compare.get("changes") or []]
    previous = md(compare.get("previous_run_id"))
    if not changes:
        return f"**Since the previous run** ({previous}): no change in the key figures."
    shown = "; ".join(changes[:8]) + ("; …" if len(changes) > 8 else "")
    return f"**Since the previous run** ({previous}): {shown}."


def symptom_frames(replay: ReplayResult) -> dict[str, pd.DataFrame]:
    """What clients saw: outcomes, close codes both ways, handshake statuses, phases."""
    attempts = replay.attempts_frame()
    failed = attempts[attempts["outcome"] != "completed"]
    outcomes = (attempts.groupby(["outcome", "label"], dropna=False).size()
                .rename("tries").reset_index().sort_values("tries", ascending=False))
    closes = []
    for column, who in (("close_rcvd_code", "received from the server"),
                        ("close_sent_code", "sent by the client (echoes included)")):
        for code, n in Counter(int(c) for c in attempts[column].dropna()).most_common():
            closes.append({"direction": who, "code": code, "meaning": describe(code),
                           "tries": n})
    statuses = (attempts["http_status"].dropna().astype(int).value_counts()
                .rename_axis("http_status").rename("tries").reset_index())
    phases = (failed["phase"].value_counts().rename_axis("phase").rename("failed tries")
              .reset_index())
    return {"outcomes": outcomes, "close_codes": pd.DataFrame(closes), "handshake": statuses,
            "phases": phases}


def hypotheses_frame(tree: FiveWhys) -> pd.DataFrame:
    """One row per node: id, parent, status, confidence, rule, question, answer, evidence,
    override (the investigator's note when overridden)."""
    rows = [{"id": n.id, "parent": n.parent or "", "status": n.status,
             "confidence": round(n.confidence, 2), "rule": n.rule or "",
             "question": n.question, "answer": n.answer, "evidence": ", ".join(n.evidence),
             "override": n.note if n.override else ""} for n in tree.nodes]
    return pd.DataFrame(rows)


def evidence_markdown(evidence: Sequence[Evidence]) -> str:
    """Every piece of evidence with its id, statement, numbers and the query to re-run it."""
    out = []
    for ev in evidence:
        out.append(f"**{ev.id}** · _{md(ev.kind)}_ · {md(ev.statement)}")
        if ev.query:
            label = {"cloud-logging-filter": "Cloud Logging filter",
                     "dataframe": "DataFrame query",
                     "replay-spec": "replay spec"}.get(ev.query_kind, ev.query_kind)
            query = ev.query
            if ev.query_kind == "replay-spec":
                query = json.dumps(json.loads(query), indent=1)[:1500] if query else query
            out.append(f"\n<details><summary>{escape(label)}</summary>\n\n```\n"
                       f"{query.replace('```', '` ` `')}\n```\n</details>")
        out.append("")
    return "\n".join(out)


def uvs_frame(replay: ReplayResult) -> pd.DataFrame:
    """Per agent run: the five critical events, agent order, stage latencies, report, verdict."""
    frames = replay.frames_frame()
    attempts = replay.attempts_frame()
    runs = attempts[attempts["is_run"].fillna(False).astype(bool)]
    rows = []
    for attempt, try_index, outcome, data_s, report_s, ok in zip(
            runs["attempt"], runs["try"], runs["outcome"], runs["data_s"], runs["report_s"],
            runs["contract_ok"], strict=True):
        mine = frames[(frames["attempt"] == attempt) & (frames["try"] == try_index)
                      & (frames["direction"] == "recv")]
        types = set(mine["event_type"].dropna())
        agents = list(dict.fromkeys(
            mine[mine["event_type"] == "agent_started"]["agent_name"].dropna()))
        row: dict[str, Any] = {"attempt": attempt, "try": try_index, "outcome": outcome}
        row.update({event: event in types for event in CRITICAL_EVENTS})
        row.update({"agents": " → ".join(agents), "data_s": data_s, "report_s": report_s,
                    "contract_ok": ok})
        rows.append(row)
    return pd.DataFrame(rows)


def conformance_frame(replay: ReplayResult) -> pd.DataFrame:
    """RFC 6455 findings: rule, code, what it means, where."""
    return pd.DataFrame([{"rule": f.rule, "code": f.code, "detail": f.detail,
                          "attempt": f.attempt, "try": f.try_index} for f in replay.findings])


def countermeasures_markdown(tree: FiveWhys) -> str:
    """Countermeasures from the matched rules, each tied to the node it addresses."""
    if not tree.countermeasures:
        return "_No countermeasure: no supported hypothesis._"
    return "\n".join(f"- ({md(c.node)}, {md(c.rule)}) {md(c.text)}"
                     for c in tree.countermeasures)


def reproduce_markdown(summary: Mapping[str, Any], params: Mapping[str, Any],
                       versions: Mapping[str, str]) -> str:
    """The exact log filter, the replay spec (no secrets), the parameters and versions."""
    reproduce = summary.get("reproduce", {})
    parts = ["**Parameters** (tokens come from the environment variables they name):", "",
             "```yaml"]
    parts += [f"{k}: {json.dumps(v, default=str)}" for k, v in params.items()]
    parts += ["```", "", f"**Log source:** `{md(reproduce.get('log_source'))}`", "",
              "**Log filter:**", "", "```", str(reproduce.get("log_filter") or "(none)"), "```",
              "", "**Replay spec:**", "", "```json",
              json.dumps(json.loads(reproduce.get("replay_spec") or "{}"), indent=1), "```", "",
              "**Versions:** " + ", ".join(f"{md(k)} {md(v)}" for k, v in versions.items())]
    return "\n".join(parts)


def replay_verdict(replay: ReplayResult) -> str:
    """One stable line: the dominant failure (over every try, retries included) and whether
    contract and isolation held."""
    summary = replay.summary()
    labels = Counter(c.label for c in replay.classifications if c.outcome.value != "completed")
    failure = labels.most_common(1)[0][0] if labels else "none"
    contract = "violated" if summary["contract"]["violations"] else "honoured"
    isolation = "violated" if summary["isolation"]["violations"] else "honoured"
    return f"dominant failure: {failure}; contract {contract}; isolation {isolation}"
