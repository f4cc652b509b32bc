"""Multi-user isolation: pure cross-user checks over the traces of simultaneous users.

Each user owns the thread ids it asked for, the user id its token names (when known), and the
run ids that arrive together with its own thread or user id. A frame received on one user's
connection that carries an id owned only by another user is a violation. Ids shared by several
users (e.g. one demo token for everyone) identify nobody and are not used.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from uvs_analysis.replay.trace import AttemptTrace

__all__ = ["IsolationReport", "IsolationViolation", "check_isolation"]


@dataclass(frozen=True)
class IsolationViolation:
    """A frame that reached the wrong user.

    Attributes:
        user: the user whose connection received it.
        owner: the user the id belongs to.
        field: "user_id", "run_id" or "thread_id".
        value: the foreign id.
        attempt, try_index, frame_index: where the frame is.
        frame_text: the frame (redacted), cut to 500 characters.
    """

    user: int
    owner: int
    field: str
    value: str
    attempt: int
    try_index: int
    frame_index: int
    frame_text: str


@dataclass(frozen=True)
class IsolationReport:
    """The isolation verdict.

    Attributes:
        users: how many distinct users took part.
        checked_frames: received frames that carried at least one id.
        violations: every frame that carried another user's id.
    """

    users: int
    checked_frames: int
    violations: tuple[IsolationViolation, ...]

    @property
    def ok(self) -> bool:
        """No violation."""
        return not self.violations


_FIELDS = ("thread_id", "user_id", "run_id")


def check_isolation(
    traces: Iterable[AttemptTrace],
    user_ids: Mapping[int, str] | None = None,
) -> IsolationReport:
    """Find frames that carry another user's user_id, run_id or thread_id.

    Args:
        traces: the tries of every user (``trace.user`` says whose).
        user_ids: user index -> the user id the server knows that user by (e.g. the token's
            ``sub``), when known.
    """
    traces = list(traces)
    owners: dict[tuple[str, str], set[int]] = defaultdict(set)
    for user, uid in (user_ids or {}).items():
        owners[("user_id", uid)].add(user)
    for t in traces:
        owners[("thread_id", t.thread_id)].add(t.user)
    # run ids belong to the user whose own thread/user id travels with them
    for t in traces:
        for f in t.frames:
            if f.direction != "recv" or f.run_id is None:
                continue
            by_thread = owners.get(("thread_id", f.thread_id or ""))
            by_user = owners.get(("user_id", f.user_id or ""))
            mine = by_thread == {t.user} or by_user == {t.user}
            if mine:
                owners[("run_id", f.run_id)].add(t.user)
    violations = []
    checked = 0
    for t in traces:
        for f in t.frames:
            if f.direction != "recv":
                continue
            values = {"user_id": f.user_id, "run_id": f.run_id, "thread_id": f.thread_id}
            if not any(values.values()):
                continue
            checked += 1
            for name in _FIELDS:
                value = values[name]
                if value is None:
                    continue
                who = owners.get((name, value))
                if not who or t.user in who or len(who) != 1:
                    continue
                (owner,) = who
                violations.append(IsolationViolation(
                    t.user, owner, name, value, t.attempt, t.try_index, f.index, f.text[:500]))
                break
    return IsolationReport(len({t.user for t in traces}), checked, tuple(violations))
