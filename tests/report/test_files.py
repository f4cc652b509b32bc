"""Private atomic writes, the per-incident lock and secret scrubbing."""

from __future__ import annotations

import base64
import json
import stat
import threading
from pathlib import Path
from urllib.parse import quote

import pytest

from uvs_analysis.report.files import (
    LockTimeoutError,
    atomic_write_json,
    atomic_write_text,
    incident_lock,
    private_dir,
    scrub_tree,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_is_private_and_leaves_no_temp(tmp_path: Path) -> None:
    """An atomic write creates a 0600 file and leaves no temporary sibling."""
    target = tmp_path / "a.json"
    atomic_write_json(target, {"b": 1, 2: "x"})
    assert json.loads(target.read_text()) == {"b": 1, "2": "x"}
    assert _mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    """Rewriting a file replaces it whole (a reader sees old or new content, nothing else)."""
    target = tmp_path / "t.txt"
    atomic_write_text(target, "old content " * 100)
    atomic_write_text(target, "new")
    assert target.read_text() == "new"


def test_private_dir_mode(tmp_path: Path) -> None:
    """Directories are created readable by the user only."""
    path = private_dir(tmp_path / "x" / "y")
    assert _mode(path) == 0o700


def test_lock_times_out_while_held(tmp_path: Path) -> None:
    """A second holder waits, then fails with a clear message naming the lock file."""
    lock = tmp_path / ".lock"
    waited: list[bool] = []
    with incident_lock(lock, timeout_s=1), pytest.raises(LockTimeoutError) as info:
        with incident_lock(lock, timeout_s=0.2, on_wait=lambda: waited.append(True)):
            pass
    assert waited == [True]
    assert str(lock) in info.value.message and "--lock-timeout" in info.value.message
    assert info.value.exit_code == 1


def test_lock_serializes_holders(tmp_path: Path) -> None:
    """Two holders of one lock never overlap: the second enters after the first leaves."""
    lock = tmp_path / ".lock"
    events: list[str] = []
    inside = threading.Event()
    release = threading.Event()

    def first() -> None:
        with incident_lock(lock, timeout_s=5):
            events.append("first in")
            inside.set()
            release.wait(5)
            events.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait(5)
    release.set()
    with incident_lock(lock, timeout_s=5):
        events.append("second in")
    thread.join()
    assert events == ["first in", "first out", "second in"]


def test_lock_wait_can_be_cancelled(tmp_path: Path) -> None:
    """A stop request ends the wait for a busy lock."""
    lock = tmp_path / ".lock"
    cancelled = threading.Event()
    cancelled.set()
    with incident_lock(lock, timeout_s=5), pytest.raises(InterruptedError):
        with incident_lock(lock, timeout_s=5, cancelled=cancelled):
            pass


def test_scrub_tree_masks_every_form(tmp_path: Path) -> None:
    """Every wire form of a secret is masked in every file, text or binary."""
    secret = 'tok-"A/b+c=d'
    forms = [secret, base64.urlsafe_b64encode(secret.encode()).decode(),
             quote(secret, safe=""), json.dumps(secret)[1:-1], "tok-&quot;A/b+c=d"]
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text(" | ".join(forms))
    (tmp_path / "sub" / "b.bin").write_bytes(b"\x00\x01" + secret.encode() + b"\xff")
    (tmp_path / "clean.txt").write_text("nothing here")
    changed = scrub_tree(tmp_path, [secret])
    assert sorted(p.name for p in changed) == ["a.txt", "b.bin"]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for form in forms:
                assert form.encode() not in data, (path, form)
    assert (tmp_path / "a.txt").read_text().count("[REDACTED]") == len(forms)
