"""The bad-input corpus (tests/corpus/, see its README) driven through the real CLI.

Each case runs ``python -m uvs_analysis ...`` in a subprocess as a user would and checks the
user-facing contract: bad input exits 2 with a message that names the file (or line, or key)
and says what was expected; a file with skipped records exits 0 and accounts for every record;
a replay target that misbehaves exits 0 with every attempt recorded under the expected outcome;
no traceback ever reaches the user. Replay targets are tiny servers on 127.0.0.1 started here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.parse
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.utils import accept_key

from uvs_analysis.cli import build_parser
from uvs_analysis.replay.cli import build_spec
from uvs_analysis.replay.runner import run_replay

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).parent / "corpus"
LOGS, PARAMS, HAR = CORPUS / "logs", CORPUS / "params", CORPUS / "har"
EXPECTED_EXPORT = "Expected a Cloud Logging export"


# Running the CLI


@dataclass(frozen=True)
class Run:
    """One finished CLI run."""

    code: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.out)
        return data


def cli(*args: str, timeout: float = 120.0) -> Run:
    """Run ``python -m uvs_analysis ARGS`` and check that no traceback reached the user."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONIOENCODING="utf-8")
    done = subprocess.run([sys.executable, "-m", "uvs_analysis", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT, check=False)
    run = Run(done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in run.out and "Traceback" not in run.err, run.err[-3000:]
    return run


def logs_json(path: Path, *extra: str) -> dict[str, Any]:
    """``logs PATH --json`` that must succeed; checks the accounting and the bad records."""
    run = cli("logs", str(path), "--json", *extra)
    assert run.code == 0, run.err
    data = run.json()
    assert data["read"] == (data["entries"] + data["bad_lines"] + data["duplicates"]
                            + data["filtered_out"])
    assert len(data["bad_records"]) == min(data["bad_lines"], 20)
    for bad in data["bad_records"]:
        assert bad["source"] == str(path) and bad["line"] >= 1 and bad["reason"]
    return data


def lines_of(path: Path) -> list[Any]:
    """The NDJSON records of a corpus file, read the plain way (the reference)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# Logs


def test_truncated_gzip_keeps_every_complete_line() -> None:
    """A gzip cut at two thirds: every complete line loads, the cut line is one bad record."""
    path = LOGS / "truncated.ndjson.gz"
    text = zlib.decompressobj(31).decompress(path.read_bytes())
    complete = text.count(b"\n")
    data = logs_json(path)
    assert data["entries"] == complete and data["bad_lines"] == 1
    (bad,) = data["bad_records"]
    assert bad["line"] == complete + 1 and "gzip stream ends early" in bad["reason"]


def test_array_cut_midway_keeps_the_complete_elements() -> None:
    """A gcloud array cut inside an element: the elements before it load, the cut is recorded."""
    path = LOGS / "array_cut.json"
    text, decoder, whole = path.read_text(), json.JSONDecoder(), 0
    at = text.index("[") + 1
    while True:
        at = len(text) - len(text[at:].lstrip(" \n,"))
        try:
            _, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            break
        whole += 1
    data = logs_json(path)
    assert data["entries"] == whole and data["bad_lines"] == 1
    (bad,) = data["bad_records"]
    assert bad["line"] == whole + 1 and "cut off" in bad["reason"]
    assert f"element {whole + 1} (line " in bad["reason"]


@pytest.mark.parametrize(("name", "expected"), [
    ("wrong_types.ndjson", {2: "field 'logName' is a JSON number, expected a string",
                            4: "field 'resource' is a JSON string, expected an object",
                            5: "field 'timestamp' is not a time, expected an RFC 3339 string",
                            6: "it is a JSON array, expected a LogEntry object"}),
    ("missing_timestamp.ndjson", {2: "it has no timestamp"}),
    ("out_of_range_timestamps.ndjson", {2: "not within 1677-2262", 3: "not within 1677-2262"}),
])
def test_bad_records_are_counted_with_line_and_reason(name: str, expected: dict[int, str]) -> None:
    """Records of the wrong shape are skipped, each named by its line with what was expected."""
    path = LOGS / name
    data = logs_json(path)
    assert data["read"] == len(lines_of(path))
    assert data["bad_lines"] == len(expected)
    got = {bad["line"]: bad["reason"] for bad in data["bad_records"]}
    assert set(got) == set(expected)
    for line, reason in expected.items():
        assert reason in got[line]
    assert data["entries"] == data["read"] - len(expected)


def test_timestamps_with_offsets_are_converted_to_utc(tmp_path: Path) -> None:
    """+02:00, -05:00, +05:30 and Z timestamps all load, each as the same instant in UTC."""
    path = LOGS / "timestamp_offsets.ndjson"
    want = {r["insertId"]: datetime.fromisoformat(r["timestamp"]).astimezone(UTC)
            for r in lines_of(path)}
    out = tmp_path / "rows.parquet"
    data = logs_json(path, "--out", str(out))
    assert data["entries"] == len(want) and data["bad_lines"] == 0
    assert data["window"]["first"] == min(want.values()).isoformat()
    assert data["window"]["last"] == max(want.values()).isoformat()
    frame = pd.read_parquet(out)
    got = dict(zip(frame["insert_id"], frame["timestamp"], strict=True))
    assert got == {key: pd.Timestamp(value) for key, value in want.items()}


def test_duplicate_insert_ids_are_counted_once() -> None:
    """Exact repeats (insertId, timestamp, logName) load once and are counted; a reused
    insertId with another timestamp is another entry."""
    path = LOGS / "duplicate_insert_ids.ndjson"
    keys = Counter((r["insertId"], r["timestamp"], r["logName"]) for r in lines_of(path))
    data = logs_json(path)
    assert data["entries"] == len(keys)
    assert data["duplicates"] == sum(n - 1 for n in keys.values()) > 0
    assert len({k[0] for k in keys}) < len(keys), "the corpus file reuses an insertId"


def test_empty_file_is_an_export_with_no_entries() -> None:
    """An empty file is a valid export: exit 0, nothing read, nothing lost."""
    data = logs_json(LOGS / "empty.json")
    assert (data["read"], data["entries"], data["bad_lines"]) == (0, 0, 0)


@pytest.mark.slow
def test_a_10_mb_record_loads_whole(tmp_path: Path) -> None:
    """One 10 MB stderr ERROR record in a gcloud array loads beside a small one, its message
    intact, and goes through the error signatures."""
    small, _, base = lines_of(LOGS / "missing_timestamp.ndjson")
    big = base | {"insertId": "big", "severity": "ERROR",
                  "textPayload": "websocket frame dump " + "x" * (10 << 20)}
    path = tmp_path / "big_record.json"
    path.write_text(json.dumps([small, big], indent=2))
    out = tmp_path / "rows.parquet"
    data = logs_json(path, "--out", str(out))
    assert (data["entries"], data["bad_lines"]) == (2, 0)
    assert [s["count"] for s in data["top_signatures"]] == [1]
    frame = pd.read_parquet(out).set_index("insert_id")
    assert frame.loc["big", "message"] == big["textPayload"]


@pytest.mark.parametrize(("name", "words"), [
    ("binary_junk.json", ["is not a log export", "it starts with"]),
    ("other_json.json", ["is not a log export", "line 1"]),
    ("other_json_array.json", ["is not a log export", "element 1", "'id', 'title'"]),
    ("no_such_export.json", ["does not exist", "check the path"]),
])
def test_files_that_are_not_exports_exit_2(name: str, words: list[str]) -> None:
    """Binary junk, other JSON and a missing path exit 2 naming the file and the expectation."""
    path = LOGS / name
    run = cli("logs", str(path), "--json")
    assert run.code == 2 and run.out == ""
    assert run.err.startswith("uvs-analysis logs: error: ") and str(path) in run.err
    assert EXPECTED_EXPORT in run.err
    for word in words:
        assert word in run.err


# Params


@pytest.mark.parametrize(("name", "words"), [
    ("unknown_key.yaml", ["line 4, key 'atempts'", "is not a parameter", "Expected one of:",
                          "attempts"]),
    ("wrong_type.yaml", ["line 3, key 'attempts'", "str value 'twenty'",
                         "Expected an integer"]),
    ("missing_required.yaml", ["required key 'incident_id' is missing",
                               "Expected 'incident_id:' set to a string"]),
    ("token_literal.yaml", ["line 3, key 'subprotocol'", "looks like a secret (a JWT",
                            "Expected no credentials in params"]),
    ("no_such_params.yaml", ["does not exist", "Expected a YAML file"]),
])
def test_bad_params_exit_2_before_anything_runs(tmp_path: Path, name: str,
                                               words: list[str]) -> None:
    """Each bad params file exits 2 naming the file, line and key, and nothing is written."""
    path = PARAMS / name
    out = tmp_path / "reports"
    run = cli("report", "-f", str(path), "--out", str(out))
    assert run.code == 2 and run.out == ""
    assert f"params file {path}" in run.err
    for word in words:
        assert word in run.err
    assert not out.exists()


def test_token_literal_in_params_is_not_echoed(tmp_path: Path) -> None:
    """The refusal of a token literal never prints the token itself."""
    path = PARAMS / "token_literal.yaml"
    literal = path.read_text().rsplit("jwt.", 1)[1].strip()
    run = cli("report", "-f", str(path), "--out", str(tmp_path / "reports"))
    assert run.code == 2 and "looks like a secret" in run.err
    assert literal not in run.err and literal.split(".")[1] not in run.err


def test_rules_dir_that_does_not_exist_exits_2_before_anything_runs(tmp_path: Path) -> None:
    """A rules_dir that does not exist is refused up front (exit 2), naming the path."""
    out = tmp_path / "reports"
    run = cli("report", "-f", str(PARAMS / "missing_rules_dir.yaml"), "--out", str(out))
    missing = (PARAMS / "no-such-rules").resolve()
    assert run.code == 2
    assert f"directory {missing} does not exist" in run.err
    assert "Expected an existing directory" in run.err
    assert not out.exists() or not any(out.rglob("summary.json"))


def test_log_export_that_does_not_exist_exits_2(tmp_path: Path) -> None:
    """A logs_source path that does not exist is refused up front (exit 2), naming the path."""
    params = tmp_path / "p.yaml"
    params.write_text("incident_id: corpus-missing-export\nlogs_source: gone/export.json\n")
    run = cli("report", "-f", str(params), "--out", str(tmp_path / "reports"))
    assert run.code == 2
    assert f"log export {tmp_path / 'gone' / 'export.json'} does not exist" in run.err


# HAR


@pytest.mark.parametrize(("name", "words"), [
    ("malformed.har", ["is not valid JSON", "Expected a JSON HAR export"]),
    ("no_websocket.har", ["has no WebSocket entry among its 3 entries",
                          "Expected an entry with \"_resourceType\": \"websocket\""]),
    ("binary_not_base64.har", ["WebSocket entry 0, message 3 is a binary frame whose data is "
                               "not base64", "Expected binary frame data base64-encoded"]),
])
def test_bad_har_exits_2(name: str, words: list[str]) -> None:
    """A cut HAR, a HAR without WebSocket entries and a binary frame that is not base64 exit
    2 naming the file (and the message)."""
    path = HAR / name
    run = cli("replay", "--har", str(path), "--json")
    assert run.code == 2 and run.out == ""
    assert f"HAR file {path}" in run.err
    for word in words:
        assert word in run.err
    if name == "malformed.har":
        try:
            json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            assert f"line {exc.lineno}, column {exc.colno}" in run.err
        else:
            pytest.fail("the corpus HAR must be malformed")


# Replay targets: tiny servers on 127.0.0.1


class Servers:
    """A websockets server (behaviour chosen by path) and raw TCP servers, on one loop thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.received: list[bytes | str] = []
        self.sent: Counter[str] = Counter()
        self._servers: list[Any] = []
        self.ws_port = self._serve(lambda: serve(self._ws, "127.0.0.1", 0, max_size=2**23,
                                                 ping_interval=None))

    def call(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)  # type: ignore[arg-type]

    def _serve(self, starting: Callable[[], Awaitable[Any]]) -> int:
        """Start a server inside the loop (``starting`` makes its awaitable there)."""

        async def start() -> Any:
            return await starting()

        server = self.call(start())
        self._servers.append(server)
        port: int = next(iter(server.sockets)).getsockname()[1]
        return port

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.ws_port}{path}"

    async def _ws(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        parts = urllib.parse.urlsplit(ws.request.path)
        path, query = parts.path, dict(urllib.parse.parse_qsl(parts.query))
        if path == "/binary":  # answer the HAR's binary frames, then finish the run
            await ws.send(json.dumps({"type": "connection_established"}))
            for _ in range(2):
                message = await ws.recv()
                self.received.append(message)
                await ws.send(message)
            await ws.send(json.dumps({"type": "agent_completed", "agent_name": "reporting"}))
            await ws.wait_closed()
        elif path == "/big":  # one message over the client's 1 MiB max_size
            await ws.send("x" * (2 << 20))
            await ws.wait_closed()
        elif path.startswith("/rawclose/"):  # a Close frame the library would refuse to send
            payload = bytes.fromhex(path.rsplit("/", 1)[1])
            await ws.send(json.dumps({"type": "connection_established"}))
            ws.transport.write(bytes([0x88, len(payload)]) + payload)
            await asyncio.sleep(1.0)
            ws.transport.abort()
        elif path == "/flood":
            n = int(query["n"])
            for i in range(n):
                await ws.send('{"type":"heartbeat","n":' + str(i) + "}")
                self.sent["flood"] += 1
            await ws.close(1000, "flood done")

    def raw(self, answer: Callable[[bytes], bytes] | None) -> int:
        """A TCP server answering each request with ``answer(request)``; None never answers."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                request = await reader.read(65536)
                while request[:1] == b"G" and b"\r\n\r\n" not in request:  # an HTTP request
                    more = await reader.read(65536)
                    if not more:
                        break
                    request += more
                if answer is None:
                    await asyncio.sleep(30)
                else:
                    writer.write(answer(request))
                    await writer.drain()
                    await asyncio.sleep(0.5)
            except ConnectionError:
                pass
            finally:
                writer.close()

        return self._serve(lambda: asyncio.start_server(handle, "127.0.0.1", 0))

    def stop(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    """The corpus's replay targets, for this module."""
    handle = Servers()
    try:
        yield handle
    finally:
        handle.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def upgrade_then(garbage: bytes) -> Callable[[bytes], bytes]:
    """A valid 101 answer to the request (right Sec-WebSocket-Accept) followed by ``garbage``."""

    def answer(request: bytes) -> bytes:
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept_key(key.decode()).encode() + b"\r\n\r\n" + garbage)

    return answer


def replay(url: str, *extra: str, timeout: float = 120.0) -> dict[str, Any]:
    """``replay URL --json``: exits 0 whatever the target did, every attempt recorded."""
    run = cli("replay", url, "--json", "--retries", "0", "--open-timeout", "2",
              "--run-timeout", "20", *extra, timeout=timeout)
    assert run.code == 0, run.err
    data = run.json()
    assert sum(data["outcomes"].values()) == data["attempts"]
    assert sum(data["outcome_labels"].values()) == data["attempts"]
    return data


def test_closed_port_every_attempt_and_retry_recorded() -> None:
    """Nothing listening: both attempts and their retries are recorded as connect_failed."""
    data = replay(f"ws://127.0.0.1:{closed_port()}/ws", "--attempts", "2", "--retries", "1")
    assert data["outcomes"] == {"connect_failed": 2} and data["tries"] == 4
    assert data["persistent"] == 2


@pytest.mark.parametrize(("target", "label"), [
    ("tls_plain", "tls_failure"),
    ("silent", "handshake_timeout"),
    ("refused_403", "handshake_refused/403"),
    ("garbage_frames", "abnormal_closure/1006"),
    ("over_max_size", "abnormal_closure/1006"),
])
def test_misbehaving_targets_are_recorded(servers: Servers, target: str, label: str) -> None:
    """TLS against plain HTTP, a silent server, a non-101 answer, garbage instead of frames
    and a frame over max_size: exit 0, the attempt recorded under its outcome."""
    urls = {
        "tls_plain": lambda: f"wss://127.0.0.1:{servers.raw(lambda _: PLAIN_400)}/ws",
        "silent": lambda: f"ws://127.0.0.1:{servers.raw(None)}/ws",
        "refused_403": lambda: f"ws://127.0.0.1:{servers.raw(lambda _: FORBIDDEN)}/ws",
        "garbage_frames": lambda: f"ws://127.0.0.1:{servers.raw(upgrade_then(GARBAGE))}/ws",
        "over_max_size": lambda: servers.url("/big"),
    }
    data = replay(urls[target]())
    assert data["outcome_labels"] == {label: 1}


PLAIN_400 = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
FORBIDDEN = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden"
GARBAGE = b"\xff\xff\xff\xff not a websocket frame"


@pytest.mark.parametrize(("code", "rule"), [
    (1004, "reserved_code_on_wire"), (1005, "reserved_code_on_wire"),
    (1006, "reserved_code_on_wire"), (1015, "reserved_code_on_wire"),
    (999, "code_out_of_range"), (2000, "code_out_of_range"),
])
def test_invalid_and_reserved_close_codes_are_findings(servers: Servers, code: int,
                                                       rule: str) -> None:
    """A Close frame with a code a server must not send: abnormal closure, the code named."""
    data = replay(servers.url(f"/rawclose/{code.to_bytes(2, 'big').hex()}"))
    assert data["outcomes"] == {"abnormal_closure": 1}
    assert [(f["rule"], f["code"]) for f in data["conformance"]] == [(rule, code)]


@pytest.mark.slow
def test_hundred_thousand_frames_are_all_read(servers: Servers) -> None:
    """A server sending 100,000 frames then closing 1000: the client reads every frame up to
    the Close and records the attempt."""
    before = servers.sent["flood"]
    data = replay(servers.url("/flood?n=100000"), "--run-timeout", "120", timeout=300)
    assert servers.sent["flood"] - before == 100_000
    assert data["outcome_labels"] == {"closed_before_first_event/1000": 1}
    assert data["close_codes"] == {"1000": 1}


def test_har_with_binary_frames_replays_them_as_binary(servers: Servers) -> None:
    """The HAR's binary (opcode 2) frames are sent as the same bytes, in binary frames."""
    path = HAR / "binary_frames.har"
    har = json.loads(path.read_text())
    sent = [base64.b64decode(m["data"]) for e in har["log"]["entries"]
            for m in e.get("_webSocketMessages", []) if m["type"] == "send"]
    before = len(servers.received)
    data = replay(servers.url("/binary"), "--har", str(path))
    assert data["outcomes"] == {"completed": 1}
    assert servers.received[before:] == sent


def test_name_that_fails_to_resolve_is_dns_failure() -> None:
    """A name that does not resolve (resolver hook, no DNS traffic): every attempt dns_failure."""
    asked: list[tuple[str, int]] = []

    async def failing(host: str, port: int) -> list[tuple[Any, ...]]:
        asked.append((host, port))
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    args = build_parser().parse_args(["replay", "ws://agent-backend.invalid/ws", "--retries", "1",
                                      "--attempts", "2", "--json"])
    result = run_replay(build_spec(args), attempts=args.attempts, resolver=failing,
                        sleep=lambda _: asyncio.sleep(0))
    summary = result.summary()
    assert summary["outcomes"] == {"dns_failure": 2} and summary["tries"] == 4
    assert asked == [("agent-backend.invalid", 80)] * 4


def test_corpus_files_are_small_and_listed_in_the_readme() -> None:
    """Every committed corpus file is under 50 KB and has a row in the README table."""
    readme = (CORPUS / "README.md").read_text()
    files = [p for p in CORPUS.rglob("*") if p.is_file() and p.name != "README.md"]
    assert files
    for path in files:
        assert path.stat().st_size < 50_000, path
        assert f"`{path.relative_to(CORPUS)}`" in readme, path
