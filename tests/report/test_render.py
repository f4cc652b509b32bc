"""Offline, sanitized HTML export of an executed notebook."""

from __future__ import annotations

import importlib
from typing import Any

import nbformat as _nbformat
import pandas as pd

from uvs_analysis.report.render import clean_html, external_references, render_html

nbformat: Any = _nbformat
v4: Any = _nbformat.v4
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5E"
       "rkJggg==")


def _notebook() -> Any:
    code = v4.new_code_cell("secret_code_marker = 1")
    frame = pd.DataFrame({"signature": ["<script>alert('cell')</script>", "db down"]})
    code.outputs = [
        v4.new_output("stream", name="stdout", text="<script>alert('stream')</script>\n"),
        v4.new_output("display_data", data={"text/html": frame.to_html(), "text/plain": "t"}),
        v4.new_output("display_data", data={"image/png": PNG, "text/plain": "chart"}),
        v4.new_output("display_data", data={
            "text/html": "<img src='https://cdn.example/x.png'><iframe src='https://x'></iframe>"
                         "<b onclick='steal()'>b</b>", "text/plain": "x"}),
        v4.new_output("display_data", data={"text/vnd.mermaid": "graph TD; A-->B",
                                         "text/plain": "graph"}),
    ]
    return v4.new_notebook(cells=[
        v4.new_markdown_cell("# Verdict\n\n<script>alert('md')</script>\n\nSee "
                          "[docs](https://cloud.google.com/run/docs)"),
        code,
    ])


def test_default_nbconvert_export_is_not_offline() -> None:
    """The checker finds the CDN scripts that nbconvert's default template loads."""
    nbconvert: Any = importlib.import_module("nbconvert")
    page, _ = nbconvert.HTMLExporter().from_notebook_node(_notebook())
    refs = external_references(page)
    assert any("require" in r for r in refs) and any("mathjax" in r.lower() for r in refs)


def test_report_html_is_offline_and_sanitized() -> None:
    """The report page fetches nothing from the network, keeps charts and tables, hides code,
    and shows <script> from Markdown and outputs as text."""
    page = render_html(_notebook())
    assert external_references(page) == []
    assert "<script>alert" not in page and "<iframe" not in page and "onclick" not in page
    assert "&lt;script&gt;alert('md')" in page or "&lt;script&gt;alert(&#x27;md" in page
    assert "&lt;script&gt;alert(" in page.split("jp-RenderedText", 1)[1]
    assert 'src="data:image/png;base64,' in page
    assert "<table" in page and "db down" in page and "<style scoped" not in page
    assert 'href="https://cloud.google.com/run/docs"' in page
    assert "secret_code_marker" not in page
    assert "secret_code_marker" in render_html(_notebook(), show_code=True)


def test_external_references_sees_css_and_links() -> None:
    """Stylesheets, CSS url() and @import count as fetches; plain <a href> links do not."""
    page = ('<link rel="stylesheet" href="https://cdn/x.css"><style>@import "https://f/a.css";'
            'body{background:url(https://i/bg.png)}</style><a href="https://ok/">ok</a>'
            '<img src="//cdn/y.png">')
    refs = external_references(page)
    assert len(refs) == 4 and not any("ok/" in r for r in refs)


def test_clean_html_allowlist() -> None:
    """Tables, headings and data: images stay; scripts, handlers and remote images do not."""
    out = clean_html("<h2 id='a'>T</h2><table><tr><th>x</th></tr></table>"
                     "<img src='data:image/png;base64,AA'><img src='http://x/y.png'>"
                     "<script>bad()</script><a href='javascript:bad()'>l</a>")
    assert "<h2" in out and "<th>x</th>" in out and "data:image/png" in out
    assert "http://x/y.png" not in out and "<script>" not in out and "javascript:" not in out


def test_render_roundtrip_from_file(tmp_path: Any) -> None:
    """A notebook read back from disk renders the same way (NotebookNode input)."""
    path = tmp_path / "nb.ipynb"
    nbformat.write(_notebook(), path)
    page = render_html(nbformat.read(path, as_version=4))
    assert external_references(page) == []
