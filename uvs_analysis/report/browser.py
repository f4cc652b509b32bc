"""Open an HTML page in headless Chromium and check it: console errors, requests, images.

Drives Debian's ``chromium`` over the DevTools protocol with ``websockets`` (no browser is ever
downloaded). Chromium starts with the offline flags of :data:`BROWSER_FLAGS` and a fresh profile
that is deleted afterwards. Nothing the page asks for leaves the machine: requests to hosts
other than loopback are recorded and failed before they are sent (CDP ``Fetch``), and the host
resolver maps every name and address except ``localhost``, ``127.0.0.1`` and ``[::1]`` to "not
found". A :class:`PageCheck` lists every console error
and uncaught exception, every URL requested, every image with its decoded size, and can save a
full-page screenshot::

    with BrowserCheck() as browser:
        page = browser.check(run_dir / "report.html", out_png=run_dir / "report.png")
    assert page.problems == []
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from uvs_analysis.errors import AnalysisError, BadInputError, DependencyMissingError
from uvs_analysis.report.files import atomic_write_bytes

__all__ = [
    "BROWSER_FLAGS",
    "CHROMIUM_ENV",
    "BrowserCheck",
    "ImageInfo",
    "PageCheck",
    "check_page",
    "find_chromium",
    "is_local_url",
]

#: Flags every check starts Chromium with (the profile directory and port are added per run).
BROWSER_FLAGS: Final = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic",
)
_EXTRA_FLAGS: Final = (
    "--no-default-browser-check", "--disable-extensions", "--disable-dev-shm-usage",
    "--hide-scrollbars", "--mute-audio", "--remote-debugging-port=0",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1 , "
    "EXCLUDE [::1]",
)
#: Environment variable naming the Chromium binary (checked before ``PATH``).
CHROMIUM_ENV: Final = "UVS_CHROMIUM"
_NAMES: Final = ("chromium", "chromium-browser")
_LOCAL_SCHEMES: Final = frozenset({"file", "data", "about", "blob", "chrome-error"})
_NETWORK_SCHEMES: Final = frozenset({"http", "https", "ws", "wss"})
_INSTALL_HINT: Final = ("install Debian's package with 'sudo apt-get install -y chromium' (the "
                        "project's 'make env' does this when it is missing), or name a binary "
                        f"with chromium= or ${CHROMIUM_ENV}; no browser is downloaded")
_INSPECT_JS: Final = """(async () => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map((i) => i.decode().catch(() => null)));
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const svgs = Array.from(document.querySelectorAll('svg'))
    .filter((s) => !(s.parentElement && s.parentElement.closest('svg')));
  return {
    title: document.title,
    text: document.body ? document.body.innerText : '',
    images: imgs.map((i) => [(i.currentSrc || i.src || '').slice(0, 300), i.naturalWidth,
                             i.naturalHeight]),
    svgs: svgs.map((s) => { const r = s.getBoundingClientRect(); return [r.width, r.height]; }),
  };
})()"""

T = TypeVar("T")


def is_local_url(url: str) -> bool:
    """True when fetching ``url`` stays on this machine (file, data, about, blob, loopback)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in _LOCAL_SCHEMES:
        return True
    if scheme not in _NETWORK_SCHEMES:
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _short(url: str) -> str:
    """``data:`` URLs cut to their header (``data:image/png;base64``), others unchanged."""
    if url.startswith("data:"):
        return url.split(",", 1)[0][:100]
    return url


@dataclass(frozen=True)
class ImageInfo:
    """One ``<img>`` of a page after loading.

    Attributes:
        src: its URL (``data:`` URLs cut to their header, e.g. ``data:image/png;base64``).
        natural_width: decoded width in pixels (0: not loaded or not decodable).
        natural_height: decoded height in pixels.
    """

    src: str
    natural_width: int
    natural_height: int

    @property
    def media_type(self) -> str | None:
        """The media type of a ``data:`` image (``image/png``), else None."""
        if not self.src.startswith("data:"):
            return None
        return self.src[5:].split(";", 1)[0].split(",", 1)[0].lower() or None

    @property
    def rendered(self) -> bool:
        """True when the browser decoded the image to a non-empty size."""
        return self.natural_width > 0 and self.natural_height > 0


@dataclass(frozen=True)
class PageCheck:
    """What Chromium saw when it opened a page.

    Attributes:
        path: the file opened.
        url: its ``file://`` URL.
        title: ``document.title``.
        text: ``document.body.innerText`` (what a reader sees as text).
        console_errors: console errors, error log entries and uncaught exceptions, in order.
        requests: every URL the page requested, in order, without repeats.
        images: every ``<img>`` with its decoded size.
        inline_svgs: width and height of every outermost inline ``<svg>``.
        probes: the value of each JavaScript expression asked for, by name.
        content_size: the page's full width and height in CSS pixels.
        screenshot: where the full-page PNG was saved, if asked for.
    """

    path: Path
    url: str
    title: str
    text: str
    console_errors: tuple[str, ...]
    requests: tuple[str, ...]
    images: tuple[ImageInfo, ...]
    inline_svgs: tuple[tuple[float, float], ...] = ()
    probes: Mapping[str, Any] = field(default_factory=dict)
    content_size: tuple[int, int] = (0, 0)
    screenshot: Path | None = None

    @property
    def external_requests(self) -> tuple[str, ...]:
        """Requests that would have left the machine (they were failed instead)."""
        return tuple(u for u in self.requests if not is_local_url(u))

    @property
    def broken_images(self) -> tuple[ImageInfo, ...]:
        """Images the browser could not load or decode."""
        return tuple(i for i in self.images if not i.rendered)

    def images_of(self, media_type: str) -> tuple[ImageInfo, ...]:
        """The ``data:`` images of one media type, e.g. ``image/png`` or ``image/svg+xml``."""
        return tuple(i for i in self.images if i.media_type == media_type.lower())

    @property
    def problems(self) -> list[str]:
        """One line per problem: console errors, external requests, broken images."""
        found = [f"console error: {e}" for e in self.console_errors]
        found += [f"request leaving the machine: {u}" for u in self.external_requests]
        found += [f"image not rendered: {i.src}" for i in self.broken_images]
        return found

    @property
    def ok(self) -> bool:
        """True when there is no problem."""
        return not self.problems


def find_chromium(chromium: str | Path | None = None) -> Path:
    """The Chromium binary: ``chromium`` if given, else ``$UVS_CHROMIUM``, else ``chromium``
    or ``chromium-browser`` on ``PATH``.

    Raises:
        DependencyMissingError: none of them is an executable file.
    """
    wanted = chromium if chromium is not None else os.environ.get(CHROMIUM_ENV) or None
    candidates = [str(wanted)] if wanted is not None else list(_NAMES)
    for name in candidates:
        found = shutil.which(name)
        if found:
            return Path(found)
    if wanted is None:
        what = f"Chromium was not found: neither {' nor '.join(_NAMES)} is on PATH"
    else:
        origin = "the chromium argument" if chromium is not None else f"from ${CHROMIUM_ENV}"
        what = f"Chromium was not found: {str(wanted)!r} ({origin}) is not an executable"
    raise DependencyMissingError(
        what, expected="Debian's chromium package (/usr/bin/chromium)",
        hint=_INSTALL_HINT)


def _run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion, in a worker thread when a loop already runs here
    (e.g. in a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


class _CdpError(Exception):
    """A DevTools command answered with an error."""


class _Cdp:
    """One DevTools connection: numbered commands, events passed to a listener."""

    def __init__(self, ws: ClientConnection, on_event: Callable[[dict[str, Any]], None]) -> None:
        self._ws = ws
        self._on_event = on_event
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def read(self) -> None:
        try:
            async for raw in self._ws:
                msg = orjson.loads(raw)
                if "id" in msg:
                    fut = self._pending.pop(msg["id"], None)
                    if fut is None or fut.done():
                        continue
                    if "error" in msg:
                        fut.set_exception(_CdpError(str(msg["error"].get("message", msg))))
                    else:
                        fut.set_result(msg.get("result", {}))
                else:
                    self._on_event(msg)
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("the DevTools connection closed"))

    async def send(self, method: str, params: Mapping[str, Any] | None = None,
                   session: str | None = None) -> dict[str, Any]:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": dict(params or {})}
        if session is not None:
            message["sessionId"] = session
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = fut
        await self._ws.send(orjson.dumps(message).decode())
        return await fut


def _remote_text(arg: Mapping[str, Any]) -> str:
    if "value" in arg:
        return str(arg["value"])
    return str(arg.get("description") or arg.get("type", ""))


def _exception_text(details: Mapping[str, Any]) -> str:
    exc = details.get("exception") or {}
    text = exc.get("description") or details.get("text") or "exception"
    where = details.get("url") or ""
    line = details.get("lineNumber")
    return f"{text}" + (f" ({where}:{line + 1})" if where and line is not None else "")


class _PageEvents:
    """Collects what one page session reports."""

    def __init__(self) -> None:
        self.session: str | None = None
        self.errors: list[str] = []
        self.requests: dict[str, None] = {}
        self.loaded: set[str] = set()
        self.load_seen = asyncio.Event()
        self.on_paused: Callable[[dict[str, Any]], None] = lambda _params: None

    def __call__(self, msg: dict[str, Any]) -> None:
        if self.session is None or msg.get("sessionId") != self.session:
            return
        method = msg.get("method", "")
        params = msg.get("params", {})
        if method == "Page.lifecycleEvent" and params.get("name") == "load":
            self.loaded.add(str(params.get("loaderId")))
            self.load_seen.set()
        elif method == "Runtime.exceptionThrown":
            self.errors.append("uncaught " + _exception_text(params.get("exceptionDetails", {})))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in {"error", "assert"}:
            args = " ".join(_remote_text(a) for a in params.get("args", []))
            self.errors.append(f"console.{params['type']}: {args}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            url = f" ({_short(entry['url'])})" if entry.get("url") else ""
            self.errors.append(f"{entry.get('source', 'log')}: {entry.get('text', '')}{url}")
        elif method == "Network.requestWillBeSent":
            self.requests[_short(str(params.get("request", {}).get("url", "")))] = None
        elif method == "Network.webSocketCreated":
            self.requests[_short(str(params.get("url", "")))] = None
        elif method == "Fetch.requestPaused":
            self.requests[_short(str(params.get("request", {}).get("url", "")))] = None
            self.on_paused(params)


class BrowserCheck:
    """A headless Chromium with a fresh profile, started once and used for several pages.

    Args:
        chromium: the binary (default: ``find_chromium()``).
        window: viewport width and height in CSS pixels.
        timeout_s: how long starting the browser, and checking one page, may take.
        max_screenshot_height: full-page screenshots are cut at this height (CSS pixels).

    Raises:
        DependencyMissingError: Chromium is not installed (on creation).
    """

    def __init__(self, chromium: str | Path | None = None, *, window: tuple[int, int] = (1280, 900),
                 timeout_s: float = 60.0, max_screenshot_height: int = 16000) -> None:
        self.chromium = find_chromium(chromium)
        self.window = window
        self.timeout_s = timeout_s
        self.max_screenshot_height = max_screenshot_height
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        self._endpoint = ""

    @property
    def endpoint(self) -> str:
        """The browser's DevTools WebSocket URL (empty until started)."""
        return self._endpoint

    @property
    def profile_dir(self) -> Path | None:
        """The fresh profile directory of the running browser (deleted on close)."""
        return self._tmp / "profile" if self._tmp is not None else None

    @property
    def running(self) -> bool:
        """True while the Chromium process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> BrowserCheck:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Start Chromium and wait for its DevTools port.

        Raises:
            AnalysisError: Chromium exited or gave no DevTools port within ``timeout_s``.
        """
        if self._proc is not None:
            return
        self._tmp = Path(tempfile.mkdtemp(prefix="uvs-chromium-"))
        profile = self._tmp / "profile"
        profile.mkdir(mode=0o700)
        log_path = self._tmp / "chromium.log"
        width, height = self.window
        cmd = [str(self.chromium), *BROWSER_FLAGS, *_EXTRA_FLAGS, f"--user-data-dir={profile}",
               f"--window-size={width},{height}", "about:blank"]
        with log_path.open("wb") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while True:
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) >= 2:
                self._endpoint = f"ws://127.0.0.1:{lines[0]}{lines[1]}"
                return
            code = self._proc.poll()
            if code is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
                self.close()
                state = f"exited with code {code}" if code is not None else \
                    f"gave no DevTools port within {self.timeout_s:g} s"
                raise AnalysisError(
                    f"Chromium ({self.chromium}) {state}; its last output: " + " | ".join(tail),
                    expected="a headless Chromium that opens its DevTools port",
                    hint="run it by hand with --headless --remote-debugging-port=0 to see why")
            time.sleep(0.05)

    def close(self) -> None:
        """Stop Chromium (its whole process group) and delete the profile."""
        proc, self._proc = self._proc, None
        if proc is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._endpoint = ""

    def check(self, path: Path | str, *, out_png: Path | str | None = None,
              probes: Mapping[str, str] | None = None) -> PageCheck:
        """Open ``path`` and report what the browser saw (see :meth:`acheck`)."""
        return _run_sync(lambda: self.acheck(path, out_png=out_png, probes=probes))

    async def acheck(self, path: Path | str, *, out_png: Path | str | None = None,
                     probes: Mapping[str, str] | None = None) -> PageCheck:
        """Open ``path`` in a new tab, wait for it and its images to load, and report.

        Args:
            path: an HTML file.
            out_png: where to save a full-page PNG screenshot (mode 0600), if anywhere.
            probes: JavaScript expressions to evaluate after loading, by name (e.g.
                ``{"pwned": "typeof window.__pwned"}``); their JSON values go to ``probes``.

        Raises:
            BadInputError: ``path`` is not a file, or a probe threw.
            AnalysisError: the page did not load within ``timeout_s``.
        """
        file = Path(path)
        if not file.is_file():
            raise BadInputError(f"{file}: no such file", expected="an HTML file to open")
        if not self._endpoint:
            self.start()
        url = file.resolve().as_uri()
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._open(file, url, out_png, probes or {})
        except TimeoutError:
            raise AnalysisError(f"{file}: the page did not finish loading in Chromium within "
                                f"{self.timeout_s:g} s",
                                hint="open it by hand, or raise timeout_s") from None
        except (_CdpError, ConnectionError, OSError, WebSocketException) as exc:
            raise AnalysisError(f"{file}: Chromium's DevTools connection failed: {exc}",
                                hint="check that Chromium still runs") from None

    async def _open(self, file: Path, url: str, out_png: Path | str | None,
                    probes: Mapping[str, str]) -> PageCheck:
        events = _PageEvents()
        async with connect(self._endpoint, max_size=None, ping_interval=None,
                           open_timeout=self.timeout_s) as ws:
            cdp = _Cdp(ws, events)
            reader = asyncio.create_task(cdp.read())
            try:
                target = await cdp.send("Target.createTarget", {"url": "about:blank"})
                target_id = target["targetId"]
                attached = await cdp.send("Target.attachToTarget",
                                          {"targetId": target_id, "flatten": True})
                events.session = session = attached["sessionId"]
                try:
                    return await self._inspect(cdp, events, session, file, url, out_png, probes)
                finally:
                    with contextlib.suppress(_CdpError, ConnectionError):
                        await cdp.send("Target.closeTarget", {"targetId": target_id})
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    async def _inspect(self, cdp: _Cdp, events: _PageEvents, session: str, file: Path, url: str,
                       out_png: Path | str | None, probes: Mapping[str, str]) -> PageCheck:
        async def send(method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
            return await cdp.send(method, params, session)

        async def release(paused: dict[str, Any]) -> None:
            req_id = paused["requestId"]
            with contextlib.suppress(_CdpError, ConnectionError):
                if is_local_url(str(paused.get("request", {}).get("url", ""))):
                    await send("Fetch.continueRequest", {"requestId": req_id})
                else:
                    await send("Fetch.failRequest",
                               {"requestId": req_id, "errorReason": "BlockedByClient"})

        released: list[asyncio.Task[None]] = []
        events.on_paused = lambda params: released.append(asyncio.create_task(release(params)))
        try:
            await send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]})
            for domain in ("Runtime", "Log", "Network", "Page"):
                await send(f"{domain}.enable")
            await send("Page.setLifecycleEventsEnabled", {"enabled": True})
            nav = await send("Page.navigate", {"url": url})
            if nav.get("errorText"):
                raise BadInputError(f"{file}: Chromium could not open it ({nav['errorText']})",
                                    expected="a readable HTML file")
            loader = str(nav.get("loaderId"))
            while loader not in events.loaded:
                events.load_seen.clear()
                await events.load_seen.wait()
            info = await self._evaluate(send, _INSPECT_JS, file, "page inspection")
            values = {name: await self._evaluate(send, expr, file, f"probe {name!r}")
                      for name, expr in probes.items()}
            metrics = await send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
            content = (int(size.get("width", 0)), int(size.get("height", 0)))
            shot = await self._screenshot(send, content, out_png) if out_png else None
        finally:
            events.on_paused = lambda _params: None
            if released:
                await asyncio.gather(*released, return_exceptions=True)
        return PageCheck(
            path=file, url=url, title=str(info.get("title", "")), text=str(info.get("text", "")),
            console_errors=tuple(events.errors), requests=tuple(events.requests),
            images=tuple(ImageInfo(_short(str(src)), int(w), int(h))
                         for src, w, h in info.get("images", [])),
            inline_svgs=tuple((float(w), float(h)) for w, h in info.get("svgs", [])),
            probes=values, content_size=content, screenshot=shot)

    @staticmethod
    async def _evaluate(send: Callable[..., Coroutine[Any, Any, dict[str, Any]]], expression: str,
                        file: Path, what: str) -> Any:
        answer = await send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                 "returnByValue": True})
        if "exceptionDetails" in answer:
            raise BadInputError(f"{file}: the {what} threw in the page: "
                                f"{_exception_text(answer['exceptionDetails'])}",
                                expected="a JavaScript expression that evaluates without error")
        return answer.get("result", {}).get("value")

    async def _screenshot(self, send: Callable[..., Coroutine[Any, Any, dict[str, Any]]],
                          content: tuple[int, int], out_png: Path | str) -> Path:
        width = max(content[0], self.window[0])
        height = min(max(content[1], 1), self.max_screenshot_height)
        shot = await send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        target = Path(out_png)
        try:
            atomic_write_bytes(target, base64.b64decode(shot["data"]))
        except OSError as exc:
            raise BadInputError(f"out_png {target}: the screenshot could not be written "
                                f"({exc.strerror or exc})",
                                expected="a path in an existing, writable directory") from None
        return target


def check_page(path: Path | str, *, chromium: str | Path | None = None,
               out_png: Path | str | None = None, probes: Mapping[str, str] | None = None,
               timeout_s: float = 60.0) -> PageCheck:
    """Open one page in a fresh headless Chromium and report what it saw.

    Args:
        path: the HTML file.
        chromium: the Chromium binary (default: ``find_chromium()``).
        out_png: where to save a full-page screenshot, if anywhere.
        probes: JavaScript expressions to evaluate after loading, by name.
        timeout_s: how long starting the browser, and loading the page, may take.

    Raises:
        DependencyMissingError: Chromium is not installed.
        BadInputError: ``path`` is not a file.
        AnalysisError: the browser did not start or the page did not load in time.
    """
    with BrowserCheck(chromium, timeout_s=timeout_s) as browser:
        return browser.check(path, out_png=out_png, probes=probes)

