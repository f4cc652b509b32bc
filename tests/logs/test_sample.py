"""Tests for the deterministic sample-log generator, its writer, CLI and the bundled export."""

from __future__ import annotations

import collections
import gzip
import itertools
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from uvs_analysis import cli
from uvs_analysis.errors import UsageError
from uvs_analysis.logs.sample import (
    BUNDLED_SAMPLE,
    BUNDLED_SAMPLE_ARGS,
    DEFAULT_START,
    generate,
    write_sample,
)

TIMEOUT_S = 300.0


@pytest.fixture
def only_sample_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real CLI, with only this command registered (other commands are tested elsewhere)."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("uvs_analysis.logs.sample_cli",))


def _kind(entry: dict[str, Any]) -> str:
    return str(entry["logName"]).rsplit("/logs/", 1)[1]


@pytest.fixture(scope="module")
def sample() -> list[dict[str, Any]]:
    """A mid-sized export, shared by the shape and scenario tests."""
    return list(generate(6000, seed=7, request_timeout_s=TIMEOUT_S))


@pytest.fixture(scope="module")
def large() -> list[dict[str, Any]]:
    """A 50k export for the order and mix tests."""
    return list(generate(50_000, seed=3))


def _messages(entries: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in entries:
        if "textPayload" in e:
            out.append(e["textPayload"])
        elif "jsonPayload" in e:
            out.append(e["jsonPayload"].get("message", ""))
    return out


def test_same_seed_gives_same_entries() -> None:
    """Two runs with the same arguments yield identical entries."""
    assert list(generate(2000, seed=42)) == list(generate(2000, seed=42))


def test_different_seed_gives_different_entries() -> None:
    """A different seed changes the export."""
    assert list(generate(500, seed=1)) != list(generate(500, seed=2))


def test_exact_count_and_zero() -> None:
    """The generator yields exactly the number of entries asked for, including none."""
    assert sum(1 for _ in generate(1234, seed=5)) == 1234
    assert list(generate(0)) == []


def test_bad_parameters_are_usage_errors() -> None:
    """Negative counts and impossible timeouts raise UsageError naming the parameter."""
    with pytest.raises(UsageError, match="entries"):
        generate(-1)
    with pytest.raises(UsageError, match="request_timeout_s"):
        generate(10, request_timeout_s=0.5)
    with pytest.raises(UsageError, match="service"):
        generate(10, service="")


def test_large_export_is_ordered_and_mixed_like_cloud_run(large: list[dict[str, Any]]) -> None:
    """50k entries come in timestamp order with roughly Cloud Run's mix of the four logs."""
    stamps = [e["timestamp"] for e in large]
    assert stamps == sorted(stamps)
    mix = collections.Counter(_kind(e) for e in large)
    share = {k: v / len(large) for k, v in mix.items()}
    assert set(share) == {
        "run.googleapis.com%2Frequests",
        "run.googleapis.com%2Fstdout",
        "run.googleapis.com%2Fstderr",
        "run.googleapis.com%2Fvarlog%2Fsystem",
    }
    assert 0.22 <= share["run.googleapis.com%2Frequests"] <= 0.38
    assert 0.42 <= share["run.googleapis.com%2Fstdout"] <= 0.65
    assert 0.06 <= share["run.googleapis.com%2Fstderr"] <= 0.18
    assert 0.01 <= share["run.googleapis.com%2Fvarlog%2Fsystem"] <= 0.04


def test_streams_lazily() -> None:
    """Taking the first entries of a huge export does not build the rest."""
    first = list(itertools.islice(generate(10_000_000, seed=1), 100))
    assert len(first) == 100
    assert first[0]["timestamp"] >= "2025-09-10T21:30:00"


def test_every_entry_has_the_cloud_run_shape(sample: list[dict[str, Any]]) -> None:
    """logName, cloud_run_revision resource with service and revision, Z timestamps, ids."""
    z_time = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    for e in sample:
        assert e["logName"].startswith("projects/netra-staging/logs/run.googleapis.com%2F")
        assert e["resource"]["type"] == "cloud_run_revision"
        labels = e["resource"]["labels"]
        assert labels["service_name"] == "netra-backend-staging"
        assert labels["revision_name"].startswith("netra-backend-staging-00")
        assert labels["location"] == "us-central1"
        assert z_time.match(e["timestamp"]), e["timestamp"]
        assert e["receiveTimestamp"].endswith("Z") and e["receiveTimestamp"] > e["timestamp"]
        assert e["labels"]["instanceId"].startswith("00")
        assert len(e["insertId"]) == 24
        payloads = [k for k in ("textPayload", "jsonPayload", "httpRequest") if k in e]
        assert payloads, e


def test_stderr_text_has_no_severity(sample: list[dict[str, Any]]) -> None:
    """Plain stderr lines carry no severity key, including traceback pieces."""
    stderr = [e for e in sample if _kind(e) == "run.googleapis.com%2Fstderr"]
    assert stderr
    assert all("severity" not in e and "textPayload" in e for e in stderr)
    assert any(e["textPayload"].startswith("Traceback (most recent call last):") for e in stderr)
    assert any("DatabaseUnavailableError" in e["textPayload"] for e in stderr)


def test_request_logs_have_http_request_and_trace(sample: list[dict[str, Any]]) -> None:
    """Request entries have httpRequest with a Duration latency, status, and a trace."""
    requests = [e for e in sample if _kind(e) == "run.googleapis.com%2Frequests"]
    for e in requests:
        http = e["httpRequest"]
        assert re.match(r"^\d+\.\d{9}s$", http["latency"]), http["latency"]
        assert isinstance(http["status"], int)
        assert isinstance(http["requestSize"], str) and isinstance(http["responseSize"], str)
        assert re.match(r"^projects/netra-staging/traces/[0-9a-f]{32}$", e["trace"])
        assert e["severity"] == ("ERROR" if http["status"] >= 500 else e["severity"])
    sessions = [e for e in requests if e["httpRequest"]["status"] == 101]
    assert len(sessions) > 50
    for e in sessions:
        latency = float(e["httpRequest"]["latency"].rstrip("s"))
        assert latency <= TIMEOUT_S + 1
        # the entry is written when the session ends: received after timestamp + latency
        start = datetime.fromisoformat(e["timestamp"])
        received = datetime.fromisoformat(e["receiveTimestamp"][:26] + "Z")
        assert (received - start).total_seconds() >= latency - 1e-6


def test_both_structured_shapes_are_present(sample: list[dict[str, Any]]) -> None:
    """gcp_json_formatter lines keep labels/context/timestamp(+00:00) in the payload; SSOT
    lines carry the trace as the entry's own field."""
    shape1 = [e for e in sample if "context" in e.get("jsonPayload", {})]
    shape2 = [e for e in sample if "logger" in e.get("jsonPayload", {}) and "trace" in e]
    assert shape1 and shape2
    for e in shape1:
        payload = e["jsonPayload"]
        assert payload["timestamp"].endswith("+00:00")
        assert {"function", "line", "module"} <= set(payload["labels"])
    assert all(e["trace"].startswith("projects/netra-staging/traces/") for e in shape2)


def test_scenario_has_a_deploy(sample: list[dict[str, Any]]) -> None:
    """A new revision appears with DEPLOYMENT_ROLLOUT starts; the old revision exits."""
    revisions = [e["resource"]["labels"]["revision_name"] for e in sample]
    old, new = "netra-backend-staging-00611-cr5", "netra-backend-staging-00612-67q"
    assert revisions[0] == old and new in revisions
    first_new = revisions.index(new)
    texts = [(i, e.get("textPayload", "")) for i, e in enumerate(sample)]
    rollout = [i for i, t in texts if "Reason: DEPLOYMENT_ROLLOUT" in t]
    assert len(rollout) == 2 and rollout[0] == first_new
    exits = [i for i, e in enumerate(sample) if e.get("textPayload") == "Container called exit(0)."]
    assert any(sample[i]["resource"]["labels"]["revision_name"] == old for i in exits)
    assert any("STARTUP TCP probe succeeded" in t for _, t in texts)
    startup_503 = [
        e
        for e in sample[first_new:]
        if e.get("httpRequest", {}).get("status") == 503
        and e["resource"]["labels"]["revision_name"] == new
    ]
    assert 1 <= len(startup_503) <= 40


def test_scenario_has_a_1011_episode(sample: list[dict[str, Any]]) -> None:
    """Short 101 sessions close with 1011 'Service initialization failed' next to the database
    error, in both structured shapes, with the session's trace."""
    closes = []
    for e in sample:
        payload = e.get("jsonPayload", {})
        code = payload.get("close_code", payload.get("context", {}).get("close_code"))
        if code == 1011:
            closes.append(e)
    assert len(closes) >= 20
    reasons = {
        e["jsonPayload"].get("close_reason") or e["jsonPayload"]["context"]["close_reason"]
        for e in closes
    }
    assert "Service initialization failed" in reasons
    assert any("context" in e["jsonPayload"] for e in closes)
    assert any("trace" in e and "context" not in e["jsonPayload"] for e in closes)
    messages = _messages(sample)
    assert any(
        m.startswith("Database unavailable (session factory initialization failed")
        for m in messages
    )
    assert any(m.startswith("[MAIN MODE] Connection error:") for m in messages)
    assert any(m.startswith("SEARCH:  MANAGER FAILURE CONTEXT: {\n") for m in messages)
    traces = {e["trace"] for e in closes if "trace" in e}
    quick = [
        e
        for e in sample
        if e.get("trace") in traces and e.get("httpRequest", {}).get("status") == 101
    ]
    assert quick and all(float(e["httpRequest"]["latency"][:-1]) < 3.0 for e in quick)


def test_scenario_has_noise_timeouts_and_duplicates(sample: list[dict[str, Any]]) -> None:
    """Misleading warnings vary, some sessions end at the request timeout, health checks
    exist, an instance is killed by OOM, and exact duplicates appear."""
    messages = _messages(sample)
    race = {m for m in messages if "RACE CONDITION DETECTED" in m}
    assert len({re.search(r"within ([\d.]+)s", m).group(1) for m in race}) >= 2  # type: ignore[union-attr]
    assert any(m.startswith("SSOT") for m in messages)
    at_timeout = [
        e
        for e in sample
        if e.get("httpRequest", {}).get("status") == 101
        and abs(float(e["httpRequest"]["latency"][:-1]) - TIMEOUT_S) <= 1.0
    ]
    assert at_timeout
    health = [
        e for e in sample if e.get("httpRequest", {}).get("requestUrl", "").endswith("/health")
    ]
    assert len(health) > 100
    assert any(m.startswith("Memory limit of") for m in messages)
    keys = collections.Counter((e["insertId"], e["timestamp"], e["logName"]) for e in sample)
    dups = [k for k, n in keys.items() if n > 1]
    assert len(dups) >= 2
    for key in dups:
        same = [e for e in sample if (e["insertId"], e["timestamp"], e["logName"]) == key]
        assert all(e == same[0] for e in same)


def test_parameters_change_names_and_window() -> None:
    """project, service, region and start are used throughout."""
    start = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    entries = list(generate(300, project="p1", service="svc", region="europe-west1", start=start))
    assert entries[0]["timestamp"] >= "2024-01-02T03:04:05"
    for e in entries:
        assert e["logName"].startswith("projects/p1/logs/")
        assert e["resource"]["labels"]["service_name"] == "svc"
        assert e["resource"]["labels"]["location"] == "europe-west1"


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("s.ndjson", "ndjson"), ("s.json", "json"), ("s.ndjson.gz", "ndjson"), ("s.json.gz", "json")],
)
def test_write_sample_formats_round_trip(tmp_path: Path, name: str, fmt: str) -> None:
    """Each format reads back to the generated entries, gzip inferred from .gz."""
    path = write_sample(tmp_path / name, entries=400, seed=9, fmt=fmt)
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if name.endswith(".gz") else raw).decode()
    rows = json.loads(text) if fmt == "json" else [json.loads(x) for x in text.splitlines()]
    assert rows == list(generate(400, seed=9))
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")


def test_write_sample_is_byte_identical(tmp_path: Path) -> None:
    """Same arguments give the same bytes, compressed or not."""
    for name in ("a.json.gz", "b.ndjson"):
        one = write_sample(tmp_path / f"1{name}", entries=300, seed=4, fmt="json").read_bytes()
        two = write_sample(tmp_path / f"2{name}", entries=300, seed=4, fmt="json").read_bytes()
        assert one == two


def test_write_sample_rejects_bad_format_and_directory(tmp_path: Path) -> None:
    """An unknown format or a missing directory is a UsageError."""
    with pytest.raises(UsageError, match="format"):
        write_sample(tmp_path / "x", entries=1, fmt="csv")
    with pytest.raises(UsageError, match="does not exist"):
        write_sample(tmp_path / "nope" / "x.ndjson", entries=1)


def test_empty_json_export_is_an_empty_array(tmp_path: Path) -> None:
    """Zero entries in JSON format is a valid empty array."""
    path = write_sample(tmp_path / "e.json", entries=0, fmt="json")
    assert json.loads(path.read_text()) == []


def test_bundled_sample_is_reproducible(tmp_path: Path) -> None:
    """Regenerating with BUNDLED_SAMPLE_ARGS gives the bundled export byte for byte."""
    assert BUNDLED_SAMPLE.is_file()
    regenerated = write_sample(tmp_path / "regenerated.json", **BUNDLED_SAMPLE_ARGS).read_bytes()
    # compare the export itself: gzip streams may differ between zlib builds
    assert gzip.decompress(BUNDLED_SAMPLE.read_bytes()) == regenerated
    assert 3000 <= len(json.loads(regenerated)) <= 5000
    assert BUNDLED_SAMPLE.stat().st_size < 3_000_000


@pytest.mark.usefixtures("only_sample_command")
def test_cli_writes_ndjson_json_and_gz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`uvs-analysis sample` writes each format, inferring json from the name."""
    out = tmp_path / "a.ndjson"
    assert cli.main(["sample", "--entries", "120", "--out", str(out), "--seed", "3"]) == 0
    assert len(out.read_text().splitlines()) == 120
    assert "wrote 120 entries" in capsys.readouterr().out
    js = tmp_path / "b.json"
    assert cli.main(["sample", "--entries", "50", "--out", str(js)]) == 0
    assert len(json.loads(js.read_text())) == 50
    gz = tmp_path / "c.json.gz"
    args = ["sample", "--entries", "50", "--out", str(gz), "--start", "2025-01-01T00:00:00+02:00"]
    assert cli.main(args) == 0
    rows = json.loads(gzip.decompress(gz.read_bytes()))
    assert len(rows) == 50 and rows[0]["timestamp"].startswith("2024-12-31T22:")
    forced = tmp_path / "d.json"
    assert cli.main(["sample", "--entries", "5", "--out", str(forced), "--format", "ndjson"]) == 0
    assert len(forced.read_text().splitlines()) == 5


@pytest.mark.usefixtures("only_sample_command")
def test_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A negative count, a bad --start or a missing directory exit 2 with a clear message."""
    assert cli.main(["sample", "--entries", "-3", "--out", str(tmp_path / "x")]) == 2
    assert "--entries -3 is negative" in capsys.readouterr().err
    bad_start = ["sample", "--entries", "3", "--out", str(tmp_path / "x"), "--start", "soon"]
    assert cli.main(bad_start) == 2
    assert "--start" in capsys.readouterr().err
    assert cli.main(["sample", "--entries", "3", "--out", str(tmp_path / "no" / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_default_start_is_the_documented_one() -> None:
    """The default window starts at 2025-09-10T21:30:00Z."""
    assert DEFAULT_START == datetime(2025, 9, 10, 21, 30, tzinfo=UTC)
    assert next(iter(generate(1)))["timestamp"].startswith("2025-09-10T21:3")
