"""``run_report``: one papermill execution of the report notebook into its own run directory.

Order of work: validate the params file against the notebook (nothing runs on bad params),
take the incident's lock, execute in a hidden ``DIR/<incident>/.<run_id>.tmp`` directory (the
notebook's ``output_dir``), then write the executed notebook, the offline HTML, ``summary.json``
and ``run.log``, mask every secret, and rename the directory to ``DIR/<incident>/<run_id>``.
A reader never sees a half-written run directory; the index is rebuilt after every run.

Files are created readable by the user only (umask 077 for the run, files 0600, dirs 0700).
Tokens reach the notebook only through environment variables named in ``*_env`` parameters;
their values, in every wire form, are masked in every file the run leaves.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets as _secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

import orjson

from uvs_analysis.errors import BadInputError, DependencyMissingError, UsageError
from uvs_analysis.replay.redact import Redactor
from uvs_analysis.report.compare import compare_previous
from uvs_analysis.report.files import (
    atomic_write_json,
    atomic_write_text,
    incident_lock,
    private_dir,
    scrub_tree,
)
from uvs_analysis.report.index import ANALYSED, find_previous, write_index
from uvs_analysis.report.outcome import (
    INVESTIGATION,
    annotate_notebook,
    judge_run,
    load_notebook,
    outcome_message,
    redact_notebook,
    redact_value,
    write_notebook,
)
from uvs_analysis.report.params import (
    load_params_file,
    notebook_parameters,
    secret_env_names,
    validate_params,
)
from uvs_analysis.report.render import render_html
from uvs_analysis.report.versions import collect_versions

__all__ = [
    "DEFAULT_KERNEL",
    "DEFAULT_OUT",
    "RunOutcome",
    "default_notebook",
    "new_run_id",
    "run_report",
]

DEFAULT_KERNEL: Final = "uvs-analysis"
DEFAULT_OUT: Final = Path("outputs/reports")
_INCIDENT_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_RESULT: Final = ".worker-result.json"


@dataclass(frozen=True)
class RunOutcome:
    """How a report run ended.

    Attributes:
        status: ``complete``, ``failed``, ``partial`` or ``interrupted``.
        exit_code: 0 when complete, else 1.
        run_dir: the run directory (None when the run stopped before it had one).
        summary: the content of ``summary.json``.
        message: one line for people (status and, when failed, the failing cell).
    """

    status: str
    exit_code: int
    run_dir: Path | None
    summary: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def default_notebook() -> Path:
    """``notebooks/report.ipynb`` of the checkout the package is installed from.

    Resolved from the package's own location (``<root>/uvs_analysis/..``), so it does not
    depend on the current directory; pass ``notebook=`` (``--notebook``) otherwise.
    """
    return Path(__file__).resolve().parents[2] / "notebooks" / "report.ipynb"


def new_run_id(started: datetime, suffix: str) -> str:
    """``YYYYMMDDTHHMMSSZ-<suffix>``: sorts by start time, unique by its random suffix."""
    return f"{started.astimezone(UTC):%Y%m%dT%H%M%SZ}-{suffix}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _random_suffix() -> str:
    return _secrets.token_hex(3)


class _RunLog:
    """``run.log``: timestamped, redacted lines; safe to write from two threads."""

    def __init__(self, path: Path, redactor: Redactor, clock: Callable[[], datetime],
                 echo: Callable[[str], None] | None) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._fh = os.fdopen(fd, "a", encoding="utf-8")
        self._redactor = redactor
        self._clock = clock
        self._echo = echo
        self._lock = threading.Lock()

    def _write(self, text: str) -> None:
        with self._lock:
            self._fh.write(text + "\n")
            self._fh.flush()

    def __call__(self, line: str, *, echo: bool = False) -> None:
        text = self._redactor.text(line.rstrip("\n"))
        self._write(f"{self._clock().isoformat(timespec='seconds')} runner: {text}")
        if echo and self._echo is not None:
            self._echo(text)

    def raw(self, line: str) -> None:
        """A line from the worker (it carries its own timestamp)."""
        self._write(self._redactor.text(line.rstrip("\n")))

    def close(self) -> None:
        with self._lock:
            self._fh.close()


class _Stop:
    """Set by SIGTERM/SIGINT while a run is in progress."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name = ""

    @contextlib.contextmanager
    def catching(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        sigs = (signal.SIGTERM, signal.SIGINT)
        previous = {s: signal.getsignal(s) for s in sigs}

        def handler(signum: int, _frame: Any) -> None:
            self.signal_name = signal.Signals(signum).name
            self.event.set()

        for s in sigs:
            signal.signal(s, handler)
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


def _check_kernel(name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise DependencyMissingError(f"the Jupyter kernel '{name}' is not installed",
                                     expected="the project's kernel, registered in .venv",
                                     hint="run 'make env'") from None


def _prepare(params_path: Path, notebook: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    declared = notebook_parameters(notebook)
    if "incident_id" not in declared:
        raise UsageError(f"report notebook {notebook} declares no 'incident_id' parameter",
                         expected="'incident_id: str = None' in its parameters cell")
    raw = load_params_file(params_path)
    values = validate_params(raw, declared, source=params_path)
    incident = values.get("incident_id")
    if not isinstance(incident, str) or not _INCIDENT_RE.fullmatch(incident):
        raise BadInputError(f"params file {params_path}, key 'incident_id': {incident!r} cannot "
                            "name a directory",
                            expected="1-100 letters, digits, '.', '_' or '-', not starting "
                                     "with '.' or '-' (e.g. ws-1011-2026-03)")
    return raw, values


def run_report(
    params_path: Path | str,
    *,
    out_dir: Path | str = DEFAULT_OUT,
    notebook: Path | str | None = None,
    clock: Callable[[], datetime] = _utc_now,
    suffix: Callable[[], str] = _random_suffix,
    lock_timeout_s: float = 600.0,
    kernel_name: str = DEFAULT_KERNEL,
    show_code: bool = False,
    execution_timeout_s: float | None = None,
    environ: Mapping[str, str] | None = None,
    echo: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Validate ``params_path``, execute the report notebook and write its run directory.

    Args:
        params_path: the params YAML file.
        out_dir: where ``<incident_id>/<run_id>/`` and ``index.html`` go.
        notebook: the report notebook (default: ``default_notebook()``).
        clock: returns the current UTC time (run id, started/finished, log lines).
        suffix: returns the run id's random suffix.
        lock_timeout_s: how long to wait for another run of the same incident.
        kernel_name: the Jupyter kernel to execute with.
        show_code: include code cells in the HTML report.
        execution_timeout_s: per-cell timeout (None: no limit).
        environ: the environment for the notebook (default: ``os.environ``); the values of
            the variables named in ``*_env`` parameters are masked in every output.
        echo: receives progress lines for people (e.g. written to stderr).

    Returns:
        The run's outcome; ``exit_code`` 0 only when complete.

    Raises:
        BadInputError: bad params (exit 2), nothing was run.
        DependencyMissingError: the kernel is not installed (exit 2).
        LockTimeoutError: another run of the incident held the lock too long (exit 1).
    """
    params_path = Path(params_path)
    out = Path(out_dir).absolute()
    nb_path = Path(notebook).absolute() if notebook is not None else default_notebook()
    raw, values = _prepare(params_path, nb_path)
    _check_kernel(kernel_name)
    env = dict(os.environ if environ is None else environ)
    secret_values = [env[n] for n in secret_env_names(values) if env.get(n)]
    redactor = Redactor(secret_values)
    incident = str(values["incident_id"])
    stop = _Stop()
    old_umask = os.umask(0o077)
    try:
        with stop.catching():
            incident_dir = private_dir(out / incident)
            try:
                with incident_lock(incident_dir / ".lock", timeout_s=lock_timeout_s,
                                   cancelled=stop.event,
                                   on_wait=(lambda: echo(f"waiting for another run of "
                                                         f"{incident} (lock)"))
                                   if echo else None):
                    outcome = _run_locked(
                        raw, values, params_path=params_path, incident_dir=incident_dir,
                        nb_path=nb_path, clock=clock, suffix=suffix, kernel_name=kernel_name,
                        show_code=show_code, execution_timeout_s=execution_timeout_s, env=env,
                        redactor=redactor, secret_values=secret_values, stop=stop, echo=echo)
            except InterruptedError:
                return RunOutcome("interrupted", 1, None, {},
                                  f"interrupted ({stop.signal_name}) while waiting for the lock")
            write_index(out)
        return outcome
    finally:
        os.umask(old_umask)


def _new_workdir(incident_dir: Path, started: datetime, suffix: Callable[[], str]) -> tuple[
        str, Path]:
    for _ in range(100):
        run_id = new_run_id(started, suffix())
        work = incident_dir / f".{run_id}.tmp"
        if (incident_dir / run_id).exists():
            continue
        try:
            work.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return run_id, work
    raise RuntimeError("could not find a free run id")  # pragma: no cover


def _run_locked(
    raw: dict[str, Any],
    values: dict[str, Any],
    *,
    params_path: Path,
    incident_dir: Path,
    nb_path: Path,
    clock: Callable[[], datetime],
    suffix: Callable[[], str],
    kernel_name: str,
    show_code: bool,
    execution_timeout_s: float | None,
    env: dict[str, str],
    redactor: Redactor,
    secret_values: list[str],
    stop: _Stop,
    echo: Callable[[str], None] | None,
) -> RunOutcome:
    started = clock()
    run_id, work = _new_workdir(incident_dir, started, suffix)
    started_iso = started.astimezone(UTC).isoformat()
    log = _RunLog(work / "run.log", redactor, clock, echo)
    try:
        log(f"run {run_id} of incident {values['incident_id']}: notebook {nb_path}, "
            f"params {params_path}, kernel {kernel_name}", echo=True)
        parameters = {**values, "output_dir": str(work), "run_id": run_id,
                      "started": started_iso}
        spec = {
            "input": str(nb_path), "output": str(work / "report.ipynb"),
            "parameters": parameters, "kernel_name": kernel_name, "cwd": str(nb_path.parent),
            "result": str(work / _RESULT), "execution_timeout": execution_timeout_s,
        }
        interrupted, returncode = _execute(spec, env=env, log=log, stop=stop)
        finished = clock()
        result = _read_json(work / _RESULT)
        (work / _RESULT).unlink(missing_ok=True)
        investigation = _read_json(work / INVESTIGATION)
        nb = load_notebook(work / "report.ipynb")
        status, failed_cell, error = judge_run(interrupted, returncode, result, investigation, nb,
                                            stop.signal_name)
        log(f"notebook finished: {status}" + (f" at cell {failed_cell['index']} "
                                              f"({failed_cell['ename']})" if failed_cell else ""))
        summary: dict[str, Any] = {
            "incident_id": values["incident_id"],
            "run_id": run_id,
            "started": started_iso,
            "finished": finished.astimezone(UTC).isoformat(),
            "status": status,
            "failed_cell": failed_cell,
            "error": error,
            "versions": collect_versions(),
            "params": raw,
            "params_file": str(params_path.absolute()),
            "notebook": str(nb_path),
            "kernel": kernel_name,
            "run_dir": str(incident_dir / run_id),
        }
        for key, value in (investigation or {}).items():
            if key not in summary and key != "compare_previous":
                summary[key] = value
        previous = find_previous(incident_dir, run_id)
        summary["compare_previous"] = (compare_previous(summary, previous)
                                       if status in ANALYSED else None)
        if nb is not None:
            nb = annotate_notebook(nb, summary)
            redact_notebook(nb, redactor)
            write_notebook(nb, work / "report.ipynb")
            try:
                page = render_html(nb, show_code=show_code,
                                   title=f"{values['incident_id']} {run_id}")
                atomic_write_text(work / "report.html", page)
            except Exception as exc:  # nbconvert failures must not lose the run
                log(f"HTML export failed: {type(exc).__name__}: {exc}")
                summary["error"] = summary["error"] or {
                    "kind": "render", "ename": type(exc).__name__, "evalue": str(exc)}
                if status == "complete":
                    summary["status"] = status = "failed"
        summary = redact_value(summary, redactor)
        atomic_write_json(work / "summary.json", summary)
        (work / INVESTIGATION).unlink(missing_ok=True)
        log(f"wrote {incident_dir / run_id}")
    finally:
        log.close()
    scrub_tree(work, secret_values)
    final = incident_dir / run_id
    work.rename(final)
    return RunOutcome(status, 0 if status == "complete" else 1, final, summary,
                      outcome_message(status, summary))


def _pump(stream: IO[bytes], log: _RunLog) -> None:
    for line in iter(stream.readline, b""):
        log.raw(line.decode("utf-8", "replace"))
    stream.close()


def _execute(spec: dict[str, Any], *, env: dict[str, str], log: _RunLog,
             stop: _Stop) -> tuple[bool, int]:
    """Run the worker; returns (interrupted, returncode)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvs_analysis.report.worker"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, cwd=spec["cwd"], env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    pump = threading.Thread(target=_pump, args=(proc.stdout, log), daemon=True)
    pump.start()
    try:
        proc.stdin.write(json.dumps(spec).encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    interrupted = False
    while True:
        try:
            returncode = proc.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            if stop.event.is_set() and not interrupted:
                interrupted = True
                log(f"{stop.signal_name or 'stop'} received: stopping the notebook run",
                    echo=True)
                _terminate(proc)
    pump.join(timeout=15)
    return interrupted, returncode


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
