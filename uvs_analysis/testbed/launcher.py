"""Start the testbed as a separate process and stop it again, always.

``start_testbed`` runs ``python -m uvs_analysis testbed ...`` on a free 127.0.0.1 port, waits
until it answers (a readiness 503 counts, for the startup-race profile), mints a demo JWT and
puts it in the caller's environment under ``handle.token_env``. The JWT secret reaches the child
through its environment only; the token is never passed on a command line or written to a file.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from uvs_analysis.errors import AnalysisError
from uvs_analysis.testbed.auth import SECRET_ENV, mint_token
from uvs_analysis.testbed.faults import TestbedSettings, parse_faults

__all__ = ["DEFAULT_TOKEN_ENV", "DEMO_USER", "TestbedHandle", "start_testbed"]

DEFAULT_TOKEN_ENV = "UVS_TESTBED_TOKEN"
DEMO_USER = "demo-user-001"


@dataclass(eq=False)
class TestbedHandle:
    """A running testbed process. Use as a context manager or call ``stop()``."""

    __test__ = False

    process: subprocess.Popen[bytes]
    ws_url: str
    http_url: str
    upstream_url: str
    log_file: Path
    token_env: str
    proxied: bool
    workdir: Path
    _secret: str = field(repr=False)
    _token: str = field(repr=False, default="")
    _console: str | None = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        """Process id of the testbed (also its process group id)."""
        return self.process.pid

    @property
    def running(self) -> bool:
        """Whether the testbed process is still alive."""
        return self.process.poll() is None

    def mint_token(self, user_id: str = DEMO_USER, *, ttl_s: float = 3600.0) -> str:
        """A fresh JWT for ``user_id`` that this testbed accepts. Keep it out of outputs."""
        return mint_token(self._secret, user_id, now=time.time(), ttl_s=ttl_s)

    def export_token(self, env_name: str, user_id: str = DEMO_USER) -> str:
        """Mint a token for ``user_id`` into ``os.environ[env_name]``; return ``env_name``."""
        os.environ[env_name] = self.mint_token(user_id)
        return env_name

    def console(self) -> str:
        """What the process wrote on its own stdout/stderr (not the Cloud Run log)."""
        if self._console is not None:
            return self._console
        parts = []
        for name in ("stdout.txt", "stderr.txt"):
            path = self.workdir / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; idempotent. Returns the exit code."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the group: the testbed and its nginx
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        if self._token and os.environ.get(self.token_env) == self._token:
            del os.environ[self.token_env]
        self._token = ""
        if self._console is None:
            self._console = self.console()
            if self.workdir not in self.log_file.parents:  # keep a log file that lives there
                shutil.rmtree(self.workdir, ignore_errors=True)
        atexit.unregister(self.stop)
        return self.process.returncode

    def __enter__(self) -> TestbedHandle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _http_status(url: str, timeout_s: float = 1.0) -> int | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


def start_testbed(
    faults: Sequence[str] = ("healthy",),
    *,
    port: int = 0,
    log_file: Path | None = None,
    time_scale: float = 1.0,
    seed: int = 0,
    log_format: str = "gcp",
    wording: str = "default",
    proxy: bool | None = None,
    extra_env: Mapping[str, str] | None = None,
    event_shape: str = "bridge",
    extra_args: Sequence[str] = (),
    token_env: str = DEFAULT_TOKEN_ENV,
    user_id: str = DEMO_USER,
    startup_timeout_s: float = 30.0,
) -> TestbedHandle:
    """Start the testbed process and wait until it answers; see the module docstring.

    Raises:
        UsageError: a fault name or option is invalid.
        AnalysisError: the process exited or did not answer within ``startup_timeout_s``.
    """
    names = parse_faults(faults)
    TestbedSettings(faults=names, time_scale=time_scale, seed=seed, log_format=log_format,
                    wording=wording, event_shape=event_shape)  # validates before spawning
    workdir = Path(tempfile.mkdtemp(prefix="uvs-testbed-"))
    log_path = Path(log_file) if log_file is not None else workdir / "testbed-logs.ndjson"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.touch()
    secret = secrets.token_urlsafe(32)
    env = {**os.environ, **dict(extra_env or {}), SECRET_ENV: secret}
    env.pop(token_env, None)
    cmd = [sys.executable, "-m", "uvs_analysis", "testbed", "--fault", ",".join(names),
           "--port", str(port), "--log-file", str(log_path), "--time-scale", repr(time_scale),
           "--seed", str(seed), "--log-format", log_format, "--wording", wording,
           "--event-shape", event_shape]
    if proxy is not None:
        cmd.append("--proxy" if proxy else "--no-proxy")
    cmd.extend(extra_args)
    with (workdir / "stdout.txt").open("wb") as out, (workdir / "stderr.txt").open("wb") as err:
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                   env=env, start_new_session=True)
    handle: TestbedHandle | None = None
    try:
        info = _wait_ready(process, workdir, startup_timeout_s)
        handle = TestbedHandle(
            process=process, ws_url=info["ws_url"], http_url=info["http_url"],
            upstream_url=f"http://127.0.0.1:{info['upstream_port']}", log_file=log_path,
            token_env=token_env, proxied="proxy_port" in info, workdir=workdir, _secret=secret)
        atexit.register(handle.stop)
        deadline = time.monotonic() + startup_timeout_s
        while _http_status(handle.http_url + "/health") not in (200, 503):
            if not handle.running or time.monotonic() > deadline:
                raise AnalysisError(
                    f"the testbed at {handle.http_url} did not answer /health",
                    hint="see its console output: " + handle.console()[-500:])
            time.sleep(0.05)
        handle._token = handle.mint_token(user_id)
        os.environ[token_env] = handle._token
        return handle
    except BaseException:
        if handle is not None:
            handle.stop()
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        raise


def _wait_ready(process: subprocess.Popen[bytes], workdir: Path, timeout_s: float
                ) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    stdout = workdir / "stdout.txt"
    while time.monotonic() < deadline:
        for line in stdout.read_text(errors="replace").splitlines():
            if line.startswith("READY "):
                info: dict[str, str] = json.loads(line[6:])
                return info
        if process.poll() is not None:
            err = (workdir / "stderr.txt").read_text(errors="replace").strip()
            raise AnalysisError(
                f"the testbed process exited with code {process.returncode} before listening: "
                f"{err[-800:]}", hint="run the same 'uvs-analysis testbed' command by hand to see")
        time.sleep(0.05)
    raise AnalysisError(f"the testbed did not start listening within {timeout_s:.0f} s",
                        hint="the machine may be overloaded; raise startup_timeout_s")
