"""Every fault profile, end to end and with no circular answers.

The testbed is started as its own process with a fault; the analysis gets only a ``ws_url`` and
the testbed's logs pulled through the Cloud Logging emulator with the real client, as it would
for a real server. Each case asserts what a client sees (the replay's classification) and the
root-cause category the five whys reach, with margins that a loaded machine does not flip.
Two seeds per profile; the log-driven causes also run with the backend's second log formatter
and reworded messages.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from uvs_analysis.investigation import Investigation, InvestigationParams, investigate

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Case:
    fault: str
    category: str
    component: str | None = None
    labels: tuple[str, ...] = ()  # the dominant failure label must start with one of these
    params: dict[str, Any] = field(default_factory=dict)
    finding: str | None = None  # a conformance rule that must be found


CASES = (
    Case("healthy", "no-failure"),
    Case("startup-race", "startup-race",
         labels=("handshake_refused/503", "closed_before_first_event/1011"),
         params={"testbed_args": ("--startup-delay", "10"), "concurrency": 2}),
    Case("database-down", "dependency-down", "database", ("closed_before_first_event/1011",)),
    Case("redis-down", "dependency-down", "redis", ("closed_before_first_event/1011",)),
    Case("proxy-strip-auth", "auth", labels=("closed_before_first_event/1008",),
         params={"subprotocol": "", "auth_header": "Bearer {token}", "matrix": True}),
    Case("proxy-idle-cut", "proxy", labels=("abnormal_closure/1006",)),
    Case("handler-crash", "app-exception", labels=("abnormal_closure/1006",)),
    Case("event-loop-blocked", "keepalive-timeout",
         labels=("abnormal_closure/1006", "handshake_timeout"), params={"attempts": 4}),
    Case("slow-data-helper", "slo-breach", "data_helper"),
    Case("slow-report", "slo-breach", "reporting"),
    Case("pipeline-order", "pipeline-order"),
    Case("missing-event", "event-loss"),
    Case("cross-user-bleed", "isolation"),
    Case("shutdown-mid-run", "instance-shutdown", labels=("connect_failed", "closed_mid_run/1012")),
    Case("rolling-deploy", "instance-shutdown", "rolling deploy", ("closed_mid_run/1012",)),
    Case("request-timeout", "request-timeout", labels=("abnormal_closure/1006",),
         params={"testbed_args": ("--request-timeout", "1"), "request_timeout_s": 20.0}),
    Case("reserved-close-code", "protocol-violation", labels=("abnormal_closure/1006",),
         finding="reserved_code_on_wire"),
)
#: Causes found through log text: rerun with the other formatter and reworded messages.
LOG_DRIVEN = ("database-down", "redis-down", "handler-crash")


def _run(case: Case, seed: int, extra_args: tuple[str, ...] = ()) -> Investigation:
    values: dict[str, Any] = {"incident_id": f"{case.fault}-{seed}", "attempts": 12,
                              "matrix": False, "testbed_faults": (case.fault,),
                              "testbed_seed": seed, "seed": seed, **case.params}
    values["testbed_args"] = tuple(values.get("testbed_args", ())) + extra_args
    return investigate(InvestigationParams(**values))


def _check(case: Case, inv: Investigation) -> None:
    cause = inv.five_whys.root_cause
    assert cause.category == case.category, (
        f"{case.fault}: {cause.category} ({cause.statement}); "
        f"nodes: {[(n.rule, n.status, n.confidence) for n in inv.five_whys.nodes]}")
    if case.component:
        assert cause.component == case.component
    labels = Counter(c.label for c in inv.replay.classifications
                     if c.outcome.value != "completed")
    if case.labels:
        dominant = labels.most_common(1)[0][0] if labels else "none"
        assert dominant.startswith(case.labels), (case.fault, labels)
    if case.category == "no-failure":
        assert not labels and not inv.replay.findings
    if case.finding:
        assert case.finding in {f.rule for f in inv.replay.findings}
    supported = [n for n in inv.five_whys.nodes if n.status == "supported"]
    assert all(n.evidence for n in supported), "every supported node cites evidence"


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.fault)
def test_fault_profile_is_diagnosed(case: Case, seed: int) -> None:
    """The replay sees the fault's symptom and the five whys name its cause."""
    _check(case, _run(case, seed))


@pytest.mark.parametrize("case", [c for c in CASES if c.fault in LOG_DRIVEN],
                         ids=lambda c: c.fault)
def test_log_driven_causes_survive_another_formatter_and_wording(case: Case) -> None:
    """The backend's other JSON formatter and reworded messages give the same diagnosis."""
    _check(case, _run(case, 2, ("--log-format", "unified", "--wording", "alt")))
