"""A deterministic generator of realistic Cloud Run log exports, and the bundled sample.

``generate`` yields Cloud Logging ``LogEntry`` dicts (API JSON, camelCase, as ``gcloud logging read
--format=json`` prints them) for one Cloud Run service over a window that tells a story: a healthy
period with an out-of-memory kill, a deploy (a new revision starts, the old one drains and exits),
then a WebSocket 1011 episode (the database session factory fails, sessions close with 1011
"Service initialization failed" right after accept, clients retry), then recovery. Around it sits
the noise of a real export: misleading startup warnings, stderr tracebacks without severity,
health checks, sessions cut by the request timeout, readiness 503s and a few exact duplicates.
The message texts live in ``uvs_analysis/data/sample_texts.yaml``.

Everything is drawn from one ``random.Random(seed)``: the same arguments give the same entries,
and ``write_sample`` the same bytes. Entries stream in timestamp order with flat memory.
"""

from __future__ import annotations

import gzip as gzip_module
import heapq
import io
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import orjson
import yaml

from uvs_analysis.errors import UsageError

__all__ = [
    "BUNDLED_SAMPLE",
    "BUNDLED_SAMPLE_ARGS",
    "DEFAULT_START",
    "FORMATS",
    "generate",
    "write_sample",
]

DEFAULT_START: Final = datetime(2025, 9, 10, 21, 30, tzinfo=UTC)
FORMATS: Final = ("ndjson", "json")
_DATA: Final = Path(__file__).resolve().parent.parent / "data"
#: The bundled export: a gzipped JSON array as ``gcloud logging read --format=json`` prints it.
BUNDLED_SAMPLE: Final = _DATA / "sample_cloud_run_logs.json.gz"
#: The exact ``write_sample`` arguments that produced ``BUNDLED_SAMPLE``.
BUNDLED_SAMPLE_ARGS: Final[MappingProxyType[str, Any]] = MappingProxyType(
    {"entries": 4000, "seed": 1011, "fmt": "json", "start": DEFAULT_START}
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_S: Final = 1_000_000  # microseconds per second
_ENTRIES_PER_ARRIVAL: Final = 4.0  # sizes the window so that ``entries`` fill it
_LOG_IDS: Final = {
    "request": "run.googleapis.com%2Frequests",
    "stdout": "run.googleapis.com%2Fstdout",
    "stderr": "run.googleapis.com%2Fstderr",
    "system": "run.googleapis.com%2Fvarlog%2Fsystem",
}
_SCALE_EVERY: Final = 18  # mean arrivals between autoscaling decisions
_SITE: Final = "/usr/local/lib/python3.11/site-packages"
_TICKET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# The loguru logger's bogus "error" block on most lines, as seen in real staging exports.
_MISSING_FIELD: Final = {
    "message": "Missing field",
    "severity": "ERROR",
    "traceback": "",
    "type": "str",
}
_SESSION_ASSERTION: Final = {
    "traceback": None,
    "type": "AssertionError",
    "value": "SessionMiddleware must be installed to access request.session",
}


# Public API ---------------------------------------------------------------------------------


def generate(
    entries: int,
    *,
    seed: int = 0,
    start: datetime = DEFAULT_START,
    project: str = "netra-staging",
    service: str = "netra-backend-staging",
    region: str = "us-central1",
    request_timeout_s: float = 300.0,
) -> Iterator[dict[str, Any]]:
    """Yield ``entries`` Cloud Run LogEntry dicts in timestamp order.

    Args:
        entries: how many entries to yield (0 or more).
        seed: seed of the one ``random.Random`` everything is drawn from.
        start: start of the window (aware, or naive meaning UTC).
        project: GCP project id (in ``logName``, ``resource.labels`` and traces).
        service: Cloud Run service name; revisions are named after it.
        region: Cloud Run region (``resource.labels.location``).
        request_timeout_s: the service's request timeout; some sessions end there.

    Raises:
        UsageError: a parameter is out of range.
    """
    if isinstance(entries, bool) or not isinstance(entries, int) or entries < 0:
        raise UsageError(f"entries={entries!r} is not a count", expected="an integer >= 0")
    if not 10.0 <= request_timeout_s <= 3600.0:
        raise UsageError(
            f"request_timeout_s={request_timeout_s!r} is outside Cloud Run's range",
            expected="a timeout between 10 and 3600 seconds",
        )
    for name, value in (("project", project), ("service", service), ("region", region)):
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"{name}={value!r} is empty", expected=f"a Cloud Run {name} name")
    if not isinstance(start, datetime):
        raise UsageError(f"start={start!r} is not a datetime", expected="an aware datetime")
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    return _Simulation(entries, seed, start, project, service, region, request_timeout_s).run()


def write_sample(
    path: str | Path,
    *,
    entries: int,
    seed: int = 0,
    fmt: str = "ndjson",
    gzip: bool | None = None,
    **generate_kwargs: Any,
) -> Path:
    """Write a generated export to ``path``, streaming, and return the path.

    Args:
        path: the file to write (its directory must exist).
        entries: how many entries.
        seed: the generator seed.
        fmt: ``"ndjson"`` (one compact entry per line) or ``"json"`` (an indented JSON array
            with sorted keys, as ``gcloud logging read --format=json`` prints it).
        gzip: compress; ``None`` means "if the name ends in .gz". The gzip header carries no
            name and mtime 0, so the same arguments give the same bytes.
        **generate_kwargs: passed to ``generate`` (start, project, service, region,
            request_timeout_s).

    Raises:
        UsageError: an unknown format, a missing directory or a bad generator parameter.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise UsageError(f"format {fmt!r} is unknown", expected="one of " + ", ".join(FORMATS))
    if not path.parent.is_dir():
        raise UsageError(
            f"cannot write {path}: the directory {path.parent} does not exist",
            hint="create the directory first or choose another output path",
        )
    rows = generate(entries, seed=seed, **generate_kwargs)
    compress = path.name.endswith(".gz") if gzip is None else gzip
    with path.open("wb") as raw:
        if compress:
            with gzip_module.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped:
                buffered = io.BufferedWriter(zipped, 1 << 20)  # type: ignore[arg-type]
                _write_rows(buffered, rows, fmt)
                buffered.flush()
        else:
            _write_rows(raw, rows, fmt)
    return path


def _write_rows(out: Any, rows: Iterator[dict[str, Any]], fmt: str) -> None:
    dumps, batch = orjson.dumps, []
    if fmt == "ndjson":
        opt = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
        for row in rows:
            batch.append(dumps(row, option=opt))
            if len(batch) >= 4096:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch))
        return
    opt = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
    sep = b"[\n  "
    for row in rows:
        batch.append(sep + dumps(row, option=opt).replace(b"\n", b"\n  "))
        sep = b",\n  "
        if len(batch) >= 1024:
            out.write(b"".join(batch))
            batch.clear()
    batch.append(b"[]\n" if sep == b"[\n  " else b"\n]\n")
    out.write(b"".join(batch))


# Time, texts --------------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def _second(sec: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))


def _rfc3339(us: int, digits: str = "") -> str:
    sec, frac = divmod(us, _S)
    return f"{_second(sec)}.{frac:06d}{digits}Z"


def _offset_time(us: int) -> str:
    sec, frac = divmod(us, _S)
    return f"{_second(sec)}.{frac:06d}+00:00"


@lru_cache(maxsize=1)
def _texts() -> dict[str, Any]:
    with (_DATA / "sample_texts.yaml").open(encoding="utf-8") as fh:
        texts: dict[str, Any] = yaml.safe_load(fh)
    return texts


# Simulation ---------------------------------------------------------------------------------


@dataclass
class _Instance:
    """One Cloud Run instance (simulation state)."""

    id: str
    revision: str
    pid: int
    stop_us: int | None = None  # a planned kill that cuts its sessions
    busy_until: int = 0
    serving: bool = True


@dataclass
class _Conn:
    """Who is on the other end of a request or session (simulation state)."""

    inst: _Instance
    user: str
    ip: str
    ua: str
    trace: str
    conn: str = ""
    attempt: int = 0


class _Simulation:
    """A discrete-event simulation: arrivals and planned events push entries on a time heap."""

    def __init__(
        self,
        entries: int,
        seed: int,
        start: datetime,
        project: str,
        service: str,
        region: str,
        timeout_s: float,
    ) -> None:
        self.entries, self.rng, self.tx = entries, random.Random(seed), _texts()
        self.project, self.service, self.region = project, service, region
        self.timeout_us = int(timeout_s * _S)
        self.t0 = t0 = (start - _EPOCH) // timedelta(microseconds=1)
        window_s = min(max(entries * 1.5, 1800.0), 6 * 3600.0)
        self.gap_us = _S * window_s * _ENTRIES_PER_ARRIVAL / max(entries, 1)
        w = int(window_s * _S)
        self.t_shift = t0 + int(0.33 * w) + 40 * _S
        self.t_ready = self.t_shift + max(70 * _S, int(0.02 * w))
        self.t_ep0, self.t_ep1 = t0 + int(0.46 * w), t0 + int(0.74 * w)
        self.revs = (f"{service}-00611-cr5", f"{service}-00612-67q")
        self.revision = self.revs[0]
        self.traces = f"projects/{project}/traces/"
        self.hosts = ("api.staging.netrasystems.ai", f"{service}-701982941522.{region}.run.app")
        self.log_names = {k: f"projects/{project}/logs/{v}" for k, v in _LOG_IDS.items()}
        self.heap: list[tuple[int, int, dict[str, Any]]] = []
        self.events: list[tuple[int, int, Callable[[int], None]]] = []
        self.seq = itertools.count()
        rng = self.rng
        self.users = ["demo-user-001", "staging-e2e-user-001", "staging-e2e-user-002"]
        self.users += [self._uuid() for _ in range(37)]
        nets = ("203.0.113", "198.51.100", "192.0.2")
        self.user_ip = {u: f"{rng.choice(nets)}.{rng.randint(1, 254)}" for u in self.users}
        self.instances = [self._new_instance(self.revs[0]) for _ in range(3)]
        self.instances[0].stop_us = t_oom = t0 + int(0.16 * w)
        self._at(t_oom, self._oom)
        self._at(t0 + int(0.33 * w), self._deploy)
        self._at(self.t_shift, self._shift)
        self._at(self.t_ep0, lambda t: self._db_note(t, "WARNING", "db_pool_warning"))
        self._at(self.t_ep1, lambda t: self._db_note(t, "INFO", "db_recovered"))
        self._at(t0 + int(rng.expovariate(1.0) * self.gap_us * _SCALE_EVERY), self._autoscale)
        self.dup_at = {entries * 23 // 100, entries * 61 // 100} if entries >= 10 else set()

    def run(self) -> Iterator[dict[str, Any]]:
        rng, heap, events, pop = self.rng, self.heap, self.events, heapq.heappop
        emitted = 0
        arrival = self.t0 + int(rng.expovariate(1.0) * self.gap_us)
        while emitted < self.entries:
            cursor = min(arrival, events[0][0]) if events else arrival
            while heap and heap[0][0] <= cursor:  # nothing later can come before cursor
                entry = pop(heap)[2]
                copies = 2 if emitted + 1 in self.dup_at or rng.random() < 0.0004 else 1
                for _ in range(copies):  # exports sometimes hold exact duplicates
                    yield entry
                    emitted += 1
                    if emitted >= self.entries:
                        return
            if events and events[0][0] <= arrival:
                t, _, action = pop(events)
                action(t)
                continue
            self._arrival(arrival)
            gap = rng.expovariate(1.0) * self.gap_us
            arrival += int(gap / 1.5 if self._episode(arrival) else gap) + 1

    def _at(self, t: int, action: Callable[[int], None]) -> None:
        heapq.heappush(self.events, (t, next(self.seq), action))

    def _uuid(self) -> str:
        bits = self.rng.getrandbits(128)
        h = f"{bits:032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def _hex(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def _msg(self, key: str, **fields: Any) -> str:
        db = self.tx["messages"]["db_unavailable"]
        text: str = self.tx["messages"][key].format(db_unavailable=db, **fields)
        return text

    def _episode(self, t: int) -> bool:
        return self.t_ep0 <= t < self.t_ep1

    # entry builders

    def _emit(self, t: int, kind: str, inst: _Instance, sev: str | None) -> dict[str, Any]:
        rng = self.rng
        sec, frac = divmod(t, _S)
        receive = t + int(rng.uniform(0.04, 1.2) * _S)
        entry: dict[str, Any] = {
            "insertId": f"{sec:08x}{frac:08x}{rng.getrandbits(32):08x}",
            "labels": {"instanceId": inst.id},
            "logName": self.log_names[kind],
            "receiveTimestamp": _rfc3339(receive, f"{rng.randrange(1000):03d}"),
            "resource": {
                "labels": {
                    "configuration_name": self.service,
                    "location": self.region,
                    "project_id": self.project,
                    "revision_name": inst.revision,
                    "service_name": self.service,
                },
                "type": "cloud_run_revision",
            },
            "timestamp": _rfc3339(t),
        }
        if sev:
            entry["severity"] = sev
        heapq.heappush(self.heap, (t, next(self.seq), entry))
        return entry

    def _text(self, t: int, kind: str, inst: _Instance, text: str, sev: str | None = None) -> None:
        self._emit(t, kind, inst, sev)["textPayload"] = text

    def _stderr(self, t: int, inst: _Instance, lines: list[str]) -> None:
        """Lines of a traceback: mostly one entry each, sometimes a few joined, no severity."""
        i = 0
        while i < len(lines):
            n = 1 if self.rng.random() < 0.6 else self.rng.randint(2, 5)
            self._text(t, "stderr", inst, "\n".join(lines[i : i + n]))
            i, t = i + n, t + self.rng.randint(3, 40)

    def _gunicorn(self, t: int, inst: _Instance, msg: str, master: bool = False) -> None:
        stamp = _second(t // _S).replace("T", " ")
        pid = 1 if master else inst.pid
        level = "ERROR" if msg.startswith("Exception") else "INFO"
        self._text(t, "stderr", inst, f"[{stamp} +0000] [{pid}] [{level}] {msg}")

    def _uvicorn(self, t: int, inst: _Instance, msg: str) -> None:
        """uvicorn's own lines, routed through the app's JSON logger."""
        payload = {"logger": "uvicorn.error", "message": msg, "service": "netra-backend"}
        self._emit(t, "stdout", inst, "INFO")["jsonPayload"] = payload

    def _app1(
        self,
        t: int,
        inst: _Instance,
        sev: str,
        msg: str,
        where: str,
        ctx: dict[str, Any] | None = None,
        c: _Conn | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        """An app log shaped by the backend's ``gcp_json_formatter`` (fields stay in payload)."""
        module, function, line = self.tx["where"][where]
        labels = {"function": function, "line": str(line), "module": module}
        payload: dict[str, Any] = {
            "context": {"name": module, "service": "netra-service", **(ctx or {})},
            "labels": labels,
            "message": msg.replace("\n", "\\n"),
            "timestamp": _offset_time(t - self.rng.randint(20, 400)),
        }
        if c is not None:
            labels["user_id"] = c.user
            if self.rng.random() < 0.5:
                payload["trace"] = self.traces + c.trace
        if error:
            payload["error"] = error
        self._emit(t, "stdout", inst, sev)["jsonPayload"] = payload

    def _app2(
        self,
        t: int,
        inst: _Instance,
        sev: str,
        msg: str,
        logger: str,
        fields: dict[str, Any] | None = None,
        c: _Conn | None = None,
    ) -> None:
        """An app log shaped by the loguru SSOT logger (trace and labels as special fields)."""
        rng = self.rng
        payload: dict[str, Any] = {"logger": logger, "message": msg, "service": "netra-backend"}
        payload.update(fields or {})
        if rng.random() < 0.6:
            stamp = _rfc3339(t - rng.randint(100, 900))
            payload["error"] = dict(_MISSING_FIELD, timestamp=stamp)
        entry = self._emit(t, "stdout", inst, sev)
        entry["jsonPayload"] = payload
        if c is not None:
            entry["trace"] = self.traces + c.trace
            entry["spanId"] = self._hex(64)
            if c.conn:
                entry["labels"].update(connection_id=c.conn, user_id=c.user)

    def _request(
        self,
        t: int,
        c: _Conn,
        path: str,
        status: int,
        latency_s: float,
        method: str = "GET",
        text: str | None = None,
    ) -> None:
        rng = self.rng
        if status == 101:
            size = 129 + int(latency_s * rng.uniform(20, 900))
        else:
            size = rng.randint(60, 4000) if status < 400 else rng.randint(90, 600)
        sev = "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"
        entry = self._emit(t, "request", c.inst, sev)
        host = self.hosts[0] if rng.random() < 0.75 else self.hosts[1]
        entry["httpRequest"] = {
            "latency": f"{latency_s:.6f}{rng.randrange(1000):03d}s",
            "protocol": "HTTP/1.1",
            "remoteIp": c.ip,
            "requestMethod": method,
            "requestSize": str(rng.randint(380, 2600)),
            "requestUrl": f"https://{host}{path}",
            "responseSize": str(size),
            "serverIp": "216.239.32.53",
            "status": status,
            "userAgent": c.ua,
        }
        end = t + int(latency_s * _S) + rng.randint(20_000, 400_000)
        entry["receiveTimestamp"] = _rfc3339(end, f"{rng.randrange(1000):03d}")
        entry["spanId"] = self._hex(64)
        entry["trace"] = self.traces + c.trace
        entry["traceSampled"] = rng.random() < 0.1
        if text:
            entry["textPayload"] = text

    # instances and scenario events

    def _new_instance(self, revision: str) -> _Instance:
        return _Instance("00" + self._hex(440), revision, pid=self.rng.randint(7, 19))

    def _serving(self) -> list[_Instance]:
        return [i for i in self.instances if i.serving and i.revision == self.revision]

    def _start_instance(self, t: int, revision: str, reason: str) -> None:
        rng, tx = self.rng, self.tx
        inst = self._new_instance(revision)
        inst.serving = False
        self.instances.append(inst)
        self._text(t, "system", inst, tx["start_reasons"][reason], "INFO")
        t += int(rng.uniform(1.5, 4.0) * _S)
        for master, msg in tx["gunicorn_boot"]:
            self._gunicorn(t, inst, msg.format(pid=inst.pid), master)
            t += rng.randint(300, 9000)
        for logger, sev, msg in tx["startup_logs"]:
            t += int(rng.expovariate(4.0) * _S)
            self._app2(t, inst, sev, msg.format(service=self.service), logger)
        if rng.random() < 0.7 or reason == "DEPLOYMENT_ROLLOUT":
            self._app1(t + 3000, inst, "WARNING", self._msg("no_app_state"), "validator_wait")
            mark = rng.choice(("[🔴]", "🔴", "?"))
            within = rng.choice((1.2, 2.1, 2.8, round(rng.uniform(0.8, 3.4), 1)))
            tail = rng.choice(tx["messages"]["race_tails"])
            race = self._msg("race_condition", mark=mark, within=within, tail=tail)
            self._app1(t + 3200, inst, "ERROR", race, "validator")
        if rng.random() < 0.5:
            if rng.random() < 0.5:
                msg = self._msg("ssot_violation", n=rng.randint(7, 13))
            else:
                msg = self._msg("ssot_warning", others=rng.sample(tx["managers"], 2))
            self._app1(t + 5000, inst, "WARNING", msg, "manager")
        t += int(rng.uniform(2.0, 9.0) * _S)
        for master, msg in tx["gunicorn_ready"]:
            self._gunicorn(t, inst, msg.format(pid=inst.pid), master)
            t += rng.randint(200, 3000)
        probe = tx["system"]["probe_ok"].format(container=f"{self.service}-1")
        self._text(t + 40_000, "system", inst, probe, "INFO")
        if revision == self.revision:
            self._at(t + 50_000, lambda _t: setattr(inst, "serving", True))

    def _shutdown(self, t: int, inst: _Instance) -> None:
        inst.serving = False
        self._gunicorn(t, inst, "Handling signal: term", master=True)
        for master, msg in self.tx["gunicorn_shutdown"]:
            t += self.rng.randint(500, 40_000)
            self._gunicorn(t, inst, msg.format(pid=inst.pid), master)
        t += self.rng.randint(50_000, 400_000)
        self._text(t, "system", inst, self.tx["system"]["exit"].format(code=0), "WARNING")

    def _autoscale(self, t: int) -> None:
        rng = self.rng
        serving = self._serving()
        if not self.t_shift - 60 * _S <= t < self.t_ready + 60 * _S:  # quiet around the deploy
            idle = [i for i in serving if i.busy_until < t and i.stop_us is None]
            if len(serving) > 2 and idle and (len(serving) > 5 or rng.random() < 0.5):
                victim = rng.choice(idle)
                victim.serving = False
                self._at(t + int(rng.uniform(5, 60) * _S), lambda t2: self._shutdown(t2, victim))
            else:
                self._start_instance(t, self.revision, "AUTOSCALING")
        self._at(t + int(rng.expovariate(1.0) * self.gap_us * _SCALE_EVERY) + _S, self._autoscale)

    def _oom(self, t: int) -> None:
        inst, sys = self.instances[0], self.tx["system"]
        inst.serving = False
        self._text(t, "system", inst, sys["oom"].format(used=self.rng.randint(2049, 2120)), "ERROR")
        t_exit = t + self.rng.randint(200_000, 900_000)
        self._text(t_exit, "system", inst, sys["exit"].format(code=137), "WARNING")
        self._start_instance(t + 2 * _S, self.revs[0], "AUTOSCALING")

    def _deploy(self, t: int) -> None:
        for k in range(2):
            self._start_instance(t + k * 3 * _S, self.revs[1], "DEPLOYMENT_ROLLOUT")

    def _shift(self, t: int) -> None:
        self.revision = self.revs[1]
        for inst in self.instances:
            if inst.revision == self.revision:
                inst.serving = True
            elif inst.serving:  # the old revision drains, then exits
                inst.serving = False
                stop = max(inst.busy_until, t) + int(self.rng.uniform(20, 120) * _S)
                self._at(stop, lambda t2, i=inst: self._shutdown(t2, i))  # type: ignore[misc]

    def _db_note(self, t: int, sev: str, key: str) -> None:
        for inst in self._serving():
            t += self.rng.randint(10_000, 900_000)
            msg = self._msg(key, attempt=self.rng.randint(40, 400))
            self._app1(t, inst, sev, msg, "db")

    # arrivals

    def _arrival(self, t: int) -> None:
        serving = self._serving()
        if not serving:
            return
        rng = self.rng
        user = self.users[0] if rng.random() < 0.25 else rng.choice(self.users)
        r = rng.random()
        if r < 0.55:
            path, ua = rng.choice(self.tx["health_checks"])
            ip = f"35.{rng.choice((187, 191, 203, 238))}.{rng.randrange(256)}.{rng.randint(1, 254)}"
            c = _Conn(rng.choice(serving), "", ip, ua, self._hex(128))
            if self.t_shift <= t < self.t_ready and rng.random() < 0.3:
                self._request(
                    t, c, path, 503, rng.uniform(2.0, 10.0), text=self._msg("platform_503")
                )
            else:
                self._request(t, c, path, 200, rng.uniform(0.0015, 0.03))
            return
        browsers = self.tx["browsers"]
        ua = rng.choice([*browsers, self.tx["e2e_client"]] if r < 0.66 else browsers)
        c = _Conn(rng.choice(serving), user, self.user_ip[user], ua, self._hex(128))
        if r < 0.66:
            self._session(t, c)
        else:
            self._api(t, c)

    def _api(self, t: int, c: _Conn) -> None:
        rng, inst = self.rng, c.inst
        method, path, uses_db = rng.choice(self.tx["api_calls"])
        path = path.format(thread=f"thread_{self._hex(48)}")
        latency, status, text = rng.lognormvariate(-2.6, 0.7), 200, None
        if self.t_shift <= t < self.t_ready and rng.random() < 0.5:
            status, latency, text = 503, rng.uniform(2.0, 10.0), self._msg("platform_503")
        elif self._episode(t) and uses_db and rng.random() < 0.7:
            status, latency = 500, rng.uniform(3.0, 3.4)
            t_err = t + int(latency * _S * 0.9)
            self._app1(t_err, inst, "ERROR", self._msg("request_db_failed"), "db_session", c=c)
            if rng.random() < 0.2:
                self._stderr(t_err + 900, inst, self._db_traceback("db_request"))
        elif rng.random() < 0.04:
            status = rng.choice((401, 404, 422))
        if rng.random() < 0.12:
            t_mid = t + int(latency * _S * 0.3)
            if rng.random() < 0.5:
                error = dict(_SESSION_ASSERTION)
                self._app1(t_mid, inst, "ERROR", self._msg("session_error"), "session", error=error)
            else:
                self._app1(t_mid, inst, "WARNING", self._msg("session_warning"), "session")
        self._request(t, c, path, status, latency, method, text)

    def _session(self, t: int, c: _Conn) -> None:
        rng = self.rng
        if "websockets" in c.ua:
            path = "/api/v1/websocket"
        elif rng.random() < 0.6:
            path = "/ws?ticket=" + "".join(rng.choices(_TICKET, k=43))
        else:
            path = "/ws"
        c.conn = f"main_{self._hex(32)}"
        r = rng.random()
        if self.t_shift <= t < self.t_ready and r < 0.6:
            self._rejected_503(t, c, path)
        elif not self._episode(t) or r >= 0.86:
            self._session_ok(t, c, path)
        elif r < 0.05:
            wait = rng.uniform(3.0, 3.2)  # the readiness guard's timeout, then close before accept
            self._request(t, c, path, 403, wait)
            msg = self._msg("rejected_403", conn=c.conn)
            self._app1(t + int(wait * _S) - 2000, c.inst, "ERROR", msg, "route_main")
        elif r < 0.80:
            self._session_1011(t, c, path)
        else:
            self._session_crash(t, c, path)

    def _accept(self, t: int, c: _Conn, path: str) -> int:
        rng, inst = self.rng, c.inst
        port, ws_path = rng.randint(20000, 60000), path.split("?")[0]
        self._uvicorn(
            t + 900, inst, f"('169.254.1.1', {port}) - \"WebSocket {ws_path}\" [accepted]"
        )
        self._uvicorn(t + 1500, inst, "connection open")
        t += rng.randint(20_000, 120_000)
        ctx = {"connection_id": c.conn}
        msg = self._msg("auth", conn=c.conn, ts=_offset_time(t))
        self._app1(t, inst, "INFO", msg, "route_auth", ctx)
        if rng.random() < 0.04:
            elapsed = f"{rng.uniform(0.05, 0.4):.4f}"
            msg = self._msg("auth_timeout", user=c.user, conn=c.conn, elapsed=elapsed)
            self._app1(t + 5000, inst, "WARNING", msg, "auth")
        return t + rng.randint(5_000, 60_000)

    def _close(self, t: int, c: _Conn, code: int, reason: str) -> None:
        sev = "ERROR" if code == 1011 else "INFO"
        ctx = {"close_code": code, "close_reason": reason, "connection_id": c.conn}
        msg = self._msg("closed", conn=c.conn, code=code, reason=reason)
        self._app1(t, c.inst, sev, msg, "route_close", ctx, c)
        if code == 1011 or self.rng.random() < 0.3:
            fields = {**ctx, "event_type": "websocket_closed", "user_id": c.user}
            logger = "netra_backend.app.websocket_core.unified_manager"
            self._app2(t + 300, c.inst, sev, self._msg("session_closed"), logger, fields, c)
        self._uvicorn(t + 2000, c.inst, "connection closed")

    def _session_ok(self, t: int, c: _Conn, path: str) -> None:
        rng, inst = self.rng, c.inst
        at_timeout = rng.random() < 0.09
        if at_timeout:
            end = t + self.timeout_us + int(rng.uniform(-0.6, 0.3) * _S)
        else:
            end = t + int(min(rng.lognormvariate(3.4, 1.1), self.timeout_us / _S - 5) * _S)
        cut = inst.stop_us is not None and end > inst.stop_us
        if inst.stop_us is not None and cut:
            end = max(inst.stop_us, t + 200_000) + rng.randint(1000, 30_000)
        inst.busy_until = max(inst.busy_until, end)
        self._request(t, c, path, 101, (end - t) / _S)
        at = self._accept(t, c, path)
        msg = self._msg("established", conn=c.conn, user8=c.user[:8])
        self._app1(at, inst, "INFO", msg, "route_main", {"connection_id": c.conn}, c)
        at, runs = at + rng.randint(500_000, 6_000_000), 0
        while at + 4 * _S < end and runs < 3 and rng.random() < 0.6:
            at = self._agent_run(at, c, end) + int(rng.expovariate(0.05) * _S)
            runs += 1
        if rng.random() < 0.03:
            self._app1(min(at, end - 1000), inst, "ERROR", self._msg("state_error"), "route_main")
        if cut:
            return  # the instance was killed: no close, no goodbye
        if at_timeout:
            ctx = {"close_code": 1006, "connection_id": c.conn}
            msg = self._msg("disconnected", conn=c.conn)
            self._app1(end + rng.randint(1000, 50_000), inst, "INFO", msg, "route_main", ctx, c)
            self._uvicorn(end + 60_000, inst, "connection closed")
        else:
            code = 1000 if rng.random() < 0.7 else 1001
            reason = "main cleanup" if code == 1000 else "going away"
            self._close(end - rng.randint(1000, 20_000), c, code, reason)

    def _agent_run(self, t: int, c: _Conn, end: int) -> int:
        rng, inst, msg = self.rng, c.inst, self._msg
        demo = c.user == "demo-user-001"
        thread = f"{'demo-thread' if demo else 'thread'}_{self._hex(48)}"
        run = f"{'demo-run' if demo else 'run'}_{self._hex(48)}"
        ids = {"connection_id": c.conn, "run_id": run, "thread_id": thread, "user_id": c.user}
        log = "netra_backend.app.services.agent_websocket_bridge"
        handler = "netra_backend.app.websocket_core.ssot_agent_message_handler"
        text = msg("start_agent", user8=c.user[:8], thread=thread)
        self._app2(t, inst, "INFO", text, handler, {**ids, "event_type": "start_agent"}, c)
        if demo and rng.random() < 0.5:
            text = msg("thread_mismatch", run=run, thread=thread)
            self._app2(t + 800, inst, "WARNING", text, "netra_backend.app.core.unified_id_manager")
        flow = self.tx["flows"]["full" if rng.random() < 0.3 else "uvs"]
        for agent, tool in flow:
            t += rng.randint(50_000, 900_000)
            if t >= end:
                break
            fields = {**ids, "agent_name": agent}
            text = msg("agent_started", agent=agent, run=run)
            self._app2(t, inst, "INFO", text, log, {**fields, "event_type": "agent_started"}, c)
            if tool and rng.random() < 0.35:
                t += rng.randint(200_000, 2_500_000)
                text = msg("tool_executing", tool=tool, agent=agent)
                more = {**fields, "event_type": "tool_executing", "tool_name": tool}
                self._app2(t, inst, "INFO", text, log, more, c)
            t += int(rng.lognormvariate(0.8, 0.6) * _S)
            ms = rng.randint(400, 9000)
            text = msg("agent_completed", agent=agent, ms=ms, run=run)
            more = {**fields, "event_type": "agent_completed", "execution_time_ms": ms}
            self._app2(t, inst, "INFO", text, log, more, c)
        if rng.random() < 0.05:
            logger = "netra_backend.app.agents.reporting_sub_agent"
            self._app2(t + 500, inst, "WARNING", msg("uvs_fallback", run=run), logger, ids, c)
        return t

    def _session_1011(self, t: int, c: _Conn, path: str) -> None:
        rng, inst, ctx = self.rng, c.inst, {"connection_id": c.conn}
        length = int(rng.uniform(0.25, 2.8) * _S)
        self._request(t, c, path, 101, length / _S)
        at = min(self._accept(t, c, path) + rng.randint(20_000, 400_000), t + length - 80_000)
        self._app1(at, inst, "ERROR", self._msg("db_unavailable"), "db", c=c)
        if rng.random() < 0.2:
            self._stderr(at + 900, inst, self._db_traceback("db_websocket"))
        at += rng.randint(2_000, 20_000)
        if rng.random() < 0.25:  # the exception path: _handle_connection_error
            self._app1(at, inst, "ERROR", self._msg("connection_error"), "route_error", ctx, c)
            reason = "main mode error"
        else:
            msg = self._msg("manager_failure", user8=c.user[:8], conn=c.conn)
            self._app1(at, inst, "CRITICAL", msg, "route_main", ctx, c)
            if rng.random() < 0.6:
                blob = orjson.dumps(self._context(c, at), option=orjson.OPT_INDENT_2).decode()
                logger = "netra_backend.app.routes.websocket_ssot"
                msg = self._msg("search_context", blob=blob)
                self._app2(at + 200, inst, "CRITICAL", msg, logger, ctx, c)
            self._app1(at + 400, inst, "ERROR", self._msg("manager_failed"), "route_main", ctx)
            reason = "Service initialization failed"
        self._close(t + length - rng.randint(1000, 40_000), c, 1011, reason)
        if c.attempt < 4 and rng.random() < 0.6:  # the client retries with backoff
            retry = _Conn(inst, c.user, c.ip, c.ua, self._hex(128), attempt=c.attempt + 1)
            backoff = int(rng.uniform(0.5, 2.0) * 2**c.attempt * _S)
            self._at(t + length + backoff, lambda t2: self._retry(t2, retry))

    def _retry(self, t: int, c: _Conn) -> None:
        serving = self._serving()
        if serving:
            c.inst = self.rng.choice(serving)
            self._session(t, c)

    def _context(self, c: _Conn, t: int) -> dict[str, Any]:
        return {
            "connection_id": c.conn,
            "user_id": f"{c.user[:8]}...",
            "websocket_state": "connected",
            "error_type": "DatabaseUnavailableError",
            "error_message": self._msg("db_unavailable"),
            "golden_path_impact": "CRITICAL - chat functionality unavailable for this user",
            "elapsed_s": round(self.rng.uniform(0.1, 2.0), 3),
            "environment": "staging",
            "timestamp": _offset_time(t),
        }

    def _session_crash(self, t: int, c: _Conn, path: str) -> None:
        rng, inst = self.rng, c.inst
        length = int(rng.uniform(0.3, 1.5) * _S)
        self._request(t, c, path, 101, length / _S)
        at = min(self._accept(t, c, path), t + length - 60_000)
        self._app1(
            at, inst, "ERROR", self._msg("loop_error"), "route_main", {"connection_id": c.conn}
        )
        self._gunicorn(at + 3000, inst, "Exception in ASGI application")
        proto = rng.choice(("websockets_impl.py", "wsproto_impl.py"))
        lines = [ln.format(site=_SITE, proto=proto) for ln in self.tx["tracebacks"]["asgi"]]
        self._stderr(at + 3500, inst, ["Traceback (most recent call last):", *lines])

    def _rejected_503(self, t: int, c: _Conn, path: str) -> None:
        rng = self.rng
        if rng.random() < 0.75:  # the readiness middleware answers before the upgrade
            self._request(t, c, path, 503, rng.uniform(0.002, 0.02))
            failed = rng.choice(
                ([], ["agent_supervisor"], ["agent_supervisor", "websocket_bridge"])
            )
            state = rng.choice(("unknown", "initializing"))
            msg = self._msg("rejecting", state=state, failed=failed, path=path.split("?")[0])
            self._app1(t + 900, c.inst, "WARNING", msg, "readiness")
        else:
            self._request(t, c, path, 503, rng.uniform(2.0, 10.0), text=self._msg("platform_503"))

    def _db_traceback(self, head: str) -> list[str]:
        tb, db = self.tx["tracebacks"], self._msg("db_unavailable")
        lines = ["Traceback (most recent call last):", *tb[head], *tb["db_common"]]
        lines += [self.rng.choice(tb["db_causes"]), *tb["db_tail"]]
        return [ln.format(site=_SITE, db_unavailable=db) for ln in lines]
