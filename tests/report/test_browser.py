"""Reports in a real headless Chromium (Debian's chromium over the DevTools protocol): the demo
report and the index render their charts and five-whys diagram with no console error and no
request leaving the machine; log text carrying <script> shows as text and never runs; the
checker itself catches console errors, remote requests and broken images. A missing browser
fails these tests; they are never skipped."""

from __future__ import annotations

import asyncio
import base64
import stat
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from uvs_analysis.errors import BadInputError, DependencyMissingError
from uvs_analysis.report.browser import (
    CHROMIUM_ENV,
    BrowserCheck,
    PageCheck,
    check_page,
    find_chromium,
    is_local_url,
)
from uvs_analysis.report.runner import RunOutcome, run_report

ROOT = Path(__file__).resolve().parents[2]
DEMO_PARAMS = ROOT / "params" / "demo.yaml"
XSS_NB = Path(__file__).parent / "data" / "browser_test.ipynb"
PROBES = {"pwned": "typeof window.__pwned",
          "links": "Array.from(document.links, (a) => a.href)"}
LOG_SCRIPT = "<script>window.__pwned = 'log'</script> upstream closed"


def _png(width: int = 1, height: int = 1) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + b"\xc6\x28\x28" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _assert_clean(page: PageCheck) -> None:
    assert page.problems == [], page.problems
    offline = [u for u in page.requests if not u.startswith(("file:", "data:"))]
    assert offline == [], f"only file: and data: requests are allowed, got {offline}"
    assert page.probes["pwned"] == "undefined", "a script planted in the page ran"


def _assert_links_exist(page: PageCheck) -> None:
    files = [u for u in page.probes["links"] if u.startswith("file:")]
    assert files, "the index links no report"
    for url in files:
        assert Path(unquote(urlsplit(url).path)).is_file(), url


def _assert_screenshot(path: Path, page: PageCheck) -> None:
    assert page.screenshot == path
    width, height = _png_size(path)
    assert width >= page.content_size[0] and height == min(page.content_size[1], 16000)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserCheck]:
    """One headless Chromium for the module; a missing browser fails here, never skips."""
    try:
        checker = BrowserCheck(timeout_s=60.0)
    except DependencyMissingError as exc:
        pytest.fail(f"headless Chromium is required for the browser tests: {exc}")
    with checker:
        yield checker


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunOutcome]:
    """The demo report (testbed, dependency-down), without the handshake matrix."""
    base = tmp_path_factory.mktemp("demo")
    params = yaml.safe_load(DEMO_PARAMS.read_text())
    params.update(matrix=False, cache_dir=str(base / "cache"))
    (base / "demo.yaml").write_text(yaml.safe_dump(params))
    outcome = run_report(base / "demo.yaml", out_dir=base / "out")
    assert outcome.status == "complete", outcome.message
    return base / "out", outcome


@pytest.fixture(scope="module")
def xss_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunOutcome]:
    """A report whose logs, Markdown, outputs and root cause carry <script> text."""
    base = tmp_path_factory.mktemp("xss")
    (base / "p.yaml").write_text(yaml.safe_dump({"incident_id": "inc-xss"}))
    outcome = run_report(base / "p.yaml", out_dir=base / "out", notebook=XSS_NB)
    assert outcome.status == "complete", outcome.message
    return base / "out", outcome


def test_demo_report_renders_offline(browser: BrowserCheck,
                                     demo_run: tuple[Path, RunOutcome]) -> None:
    """The demo report.html shows its charts and five-whys diagram, logs no console error,
    requests nothing beyond file: and data:, and gets a full-page screenshot."""
    run_dir = demo_run[1].run_dir
    assert run_dir is not None
    page = browser.check(run_dir / "report.html", out_png=run_dir / "report.png", probes=PROBES)
    _assert_clean(page)
    charts = page.images_of("image/png")
    assert len(charts) >= 3 and all(c.natural_width > 100 for c in charts), charts
    diagrams = page.images_of("image/svg+xml")
    assert diagrams and all(d.natural_width > 200 and d.natural_height > 50 for d in diagrams)
    for heading in ("1. Verdict", "3. Timeline", "5. Five whys", "Run record"):
        assert heading in page.text, heading
    assert "dependency-down" in page.text
    _assert_screenshot(run_dir / "report.png", page)
    assert page.content_size[1] > 2000, "a full-page screenshot, not just the viewport"


def test_demo_index_renders_offline(browser: BrowserCheck,
                                    demo_run: tuple[Path, RunOutcome]) -> None:
    """index.html renders its sparkline with no console error or remote request, and its
    links lead to existing reports."""
    out = demo_run[0]
    page = browser.check(out / "index.html", out_png=out / "index.png", probes=PROBES)
    _assert_clean(page)
    assert "demo-database-down" in page.text and "dependency-down" in page.text
    assert page.inline_svgs and all(w > 0 and h > 0 for w, h in page.inline_svgs)
    _assert_links_exist(page)
    _assert_screenshot(out / "index.png", page)


def test_script_in_logs_shows_as_text(browser: BrowserCheck,
                                      xss_run: tuple[Path, RunOutcome]) -> None:
    """<script> and onerror payloads from log messages, Markdown, HTML and printed output are
    visible as text in report.html and none of them runs."""
    run_dir = xss_run[1].run_dir
    assert run_dir is not None
    page = browser.check(run_dir / "report.html", out_png=run_dir / "report.png", probes=PROBES)
    _assert_clean(page)
    assert page.text.count(LOG_SCRIPT) >= 5, page.text
    assert "<script>window.__pwned = 'markdown'</script>" in page.text
    assert "<img src=x onerror=\"window.__pwned = 'img'\"> done" in page.text
    assert [i.natural_width for i in page.images_of("image/svg+xml")] == [240]
    assert page.images_of("image/png") and not page.broken_images


def test_script_in_root_cause_shows_as_text_in_index(browser: BrowserCheck,
                                                     xss_run: tuple[Path, RunOutcome]) -> None:
    """A root-cause statement carrying <script> shows as text in index.html and does not run."""
    out = xss_run[0]
    page = browser.check(out / "index.html", out_png=out / "index.png", probes=PROBES)
    _assert_clean(page)
    assert LOG_SCRIPT in page.text
    _assert_links_exist(page)


@pytest.fixture
def local_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 serving a 3x2 PNG for any path; yields its base URL and
    the paths it was asked for."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            body = _png(3, 2)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", paths
    finally:
        server.shutdown()
        server.server_close()


def test_checker_catches_errors_remote_requests_and_broken_images(
        browser: BrowserCheck, tmp_path: Path, local_server: tuple[str, list[str]]) -> None:
    """A page with a CDN script, a remote image, a console error, an uncaught exception and a
    broken image fails the check; remote requests are failed before they leave, loopback ones
    are served, and scripts do run (so an absent marker means escaping, not disabled JS)."""
    base, served = local_server
    cdn = "https://cdn.example.invalid/require.min.js"
    remote = "http://img.example.invalid/chart.png"
    page_file = tmp_path / "bad.html"
    page_file.write_text(f"""<!DOCTYPE html><html><head><title>bad</title>
<script src="{cdn}"></script></head><body><p>hello</p>
<img src="{remote}"><img src="{base}/local.png"><img src="data:image/png;base64,AAAA">
<script>window.__ran = 1; console.error("boom from console"); throw new Error("uncaught boom");
</script></body></html>""")
    page = browser.check(page_file, probes={"ran": "window.__ran"})
    assert page.probes == {"ran": 1}
    assert not page.ok
    assert set(page.external_requests) == {cdn, remote}
    for url in (cdn, remote):
        assert any(url in e and "ERR_BLOCKED_BY_CLIENT" in e for e in page.console_errors), url
    assert any("console.error: boom from console" in e for e in page.console_errors)
    assert any(e.startswith("uncaught Error: uncaught boom") for e in page.console_errors)
    assert served == ["/local.png"]
    local = next(i for i in page.images if i.src.startswith(base))
    assert (local.natural_width, local.natural_height) == (3, 2)
    assert {i.src for i in page.broken_images} == {remote, "data:image/png;base64"}
    assert f"request leaving the machine: {cdn}" in page.problems


def test_check_from_a_running_event_loop(browser: BrowserCheck, tmp_path: Path) -> None:
    """check() works where an event loop already runs (as in a notebook); acheck() awaits."""
    page_file = tmp_path / "ok.html"
    page_file.write_text(f'<html><body><p>fine</p><img src="data:image/png;base64,'
                         f'{base64.b64encode(_png(4, 5)).decode()}"></body></html>')

    async def both() -> tuple[PageCheck, PageCheck]:
        return browser.check(page_file), await browser.acheck(page_file)

    sync_page, async_page = asyncio.run(both())
    for page in (sync_page, async_page):
        assert page.ok and page.text.strip() == "fine"
        assert [(i.natural_width, i.natural_height) for i in page.images_of("image/png")] == \
            [(4, 5)]


def test_fresh_profile_removed_and_browser_stopped(tmp_path: Path) -> None:
    """Each BrowserCheck starts Chromium on a fresh profile and deletes it and stops the
    process on close; check_page does the same for one page."""
    page_file = tmp_path / "p.html"
    page_file.write_text("<html><body>one page</body></html>")
    with BrowserCheck() as checker:
        profile = checker.profile_dir
        assert profile is not None and (profile / "DevToolsActivePort").is_file()
        assert checker.running and checker.endpoint.startswith("ws://127.0.0.1:")
    assert not checker.running and not profile.exists()
    assert check_page(page_file, out_png=tmp_path / "p.png").text.strip() == "one page"
    assert _png_size(tmp_path / "p.png")[0] > 0


def test_missing_chromium_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Chromium that is not installed raises DependencyMissingError naming what was tried
    and how to install it (exit code 2)."""
    with pytest.raises(DependencyMissingError) as caught:
        find_chromium("/nonexistent/chromium")
    assert "/nonexistent/chromium" in str(caught.value) and "apt-get install" in str(caught.value)
    assert caught.value.exit_code == 2
    monkeypatch.setenv(CHROMIUM_ENV, "/nonexistent/other-chromium")
    with pytest.raises(DependencyMissingError, match=f"other-chromium.*{CHROMIUM_ENV}"):
        BrowserCheck()


def test_missing_page_or_screenshot_dir_is_bad_input(browser: BrowserCheck,
                                                    tmp_path: Path) -> None:
    """A page that does not exist, or a screenshot path in a missing directory, is named in a
    BadInputError."""
    with pytest.raises(BadInputError, match=r"nope\.html: no such file"):
        browser.check(tmp_path / "nope.html")
    page_file = tmp_path / "ok.html"
    page_file.write_text("<p>ok</p>")
    with pytest.raises(BadInputError, match=r"out_png .*missing/ok\.png.*existing, writable"):
        browser.check(page_file, out_png=tmp_path / "missing" / "ok.png")


@pytest.mark.parametrize(("url", "local"), [
    ("file:///tmp/report.html", True),
    ("data:image/png;base64,AAAA", True),
    ("http://127.0.0.1:8080/x", True),
    ("ws://localhost/ws", True),
    ("http://[::1]/x", True),
    ("https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.6/require.min.js", False),
    ("wss://api.example.com/ws", False),
    ("http://10.0.0.1/x", False),
    ("ftp://example.com/x", False),
])
def test_is_local_url(url: str, local: bool) -> None:
    """Only file/data/about/blob URLs and loopback hosts count as staying on the machine."""
    assert is_local_url(url) is local
