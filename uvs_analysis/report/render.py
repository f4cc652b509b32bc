"""The executed report as one self-contained, offline HTML page (nbconvert).

nbconvert's templates load require.js, MathJax and (when a diagram is present) Mermaid from a
CDN. The report must render with no network, so a small template extending ``lab`` drops those
script blocks and the widget loader. Charts stay in: PNG and SVG outputs are embedded as
``data:`` URIs. HTML in Markdown cells and in ``text/html``/``text/markdown`` outputs is
sanitized with an allowlist (headings, tables, lists, links, ``data:`` images): anything else,
``<script>`` included, is shown as text. Mermaid and LaTeX outputs are shown as their source;
render diagrams to SVG or PNG in the notebook.
"""

from __future__ import annotations

import importlib
import re
from html.parser import HTMLParser
from typing import Any, Final

__all__ = ["OFFLINE_TEMPLATE", "clean_html", "external_references", "render_html"]

#: Extends nbconvert's ``lab`` template with every CDN script removed.
OFFLINE_TEMPLATE: Final = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
"""
_TEMPLATE_NAME: Final = "uvs_offline.html.j2"

_TAGS: Final = frozenset({
    "a", "abbr", "acronym", "b", "blockquote", "br", "caption", "code", "col", "colgroup",
    "dd", "del", "details", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "s", "samp", "small", "span",
    "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
    "u", "ul",
})
_COMMON_ATTRS: Final = frozenset({"class", "id", "title", "align", "colspan", "rowspan",
                                  "border", "style"})
_STYLE_BLOCK_RE: Final = re.compile(r"(?is)<style\b[^>]*>.*?</style\s*>")
_CSS_URL_RE: Final = re.compile(
    r"(?i)(?:url\(\s*['\"]?|@import\s+['\"]?)\s*((?:https?:)?//[^)'\"\s]+)")


def _allow_attribute(tag: str, name: str, value: str) -> bool:
    if name in _COMMON_ATTRS:
        return True
    if tag == "a" and name == "href":
        return value.startswith(("#", "http://", "https://", "mailto:"))
    if tag == "img" and name == "src":
        return value.startswith("data:image/")
    return tag == "img" and name in {"alt", "width", "height"}


def clean_html(element: Any) -> str:
    """Sanitize HTML from a Markdown cell or an output: allowlisted tags and attributes stay,
    ``<style>`` blocks (such as pandas' scoped table CSS) are dropped, anything else
    (``<script>``, ``<iframe>``, event handlers, remote images) is shown as text or removed."""
    bleach: Any = importlib.import_module("bleach")
    css: Any = importlib.import_module("bleach.css_sanitizer")
    text = element.decode() if isinstance(element, bytes) else str(element)
    text = _STYLE_BLOCK_RE.sub("", text)
    return str(bleach.clean(
        text,
        tags=_TAGS,
        attributes=_allow_attribute,
        protocols={"http", "https", "mailto", "data"},
        css_sanitizer=css.CSSSanitizer(),
    ))


def render_html(nb: Any, *, show_code: bool = False, title: str = "report") -> str:
    """``nb`` (a NotebookNode) as an offline HTML page.

    Args:
        nb: the executed notebook.
        show_code: include code cells' input (hidden by default; outputs are always shown).
        title: the page title when the notebook metadata has none.
    """
    from jinja2 import DictLoader

    nbconvert: Any = importlib.import_module("nbconvert")
    exporter = nbconvert.HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({_TEMPLATE_NAME: OFFLINE_TEMPLATE})],
        template_file=_TEMPLATE_NAME,
        exclude_input=not show_code,
        exclude_input_prompt=not show_code,
        exclude_output_prompt=True,
        sanitize_html=True,
        filters={"clean_html": clean_html},
    )
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    return str(body)


class _RefFinder(HTMLParser):
    """Collects URLs a browser would fetch on its own (not plain ``<a href>`` links)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            value = (value or "").strip()
            if tag == "a" and name == "href":
                continue
            if name in {"src", "href", "srcset", "data", "poster", "action", "background",
                        "xlink:href"} and re.match(r"(?i)(https?:)?//", value):
                self.found.append(f"<{tag} {name}={value}>")
            if name == "style":
                self._css(value)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._css(data)

    def _css(self, css: str) -> None:
        for match in _CSS_URL_RE.finditer(css):
            self.found.append(f"css {match.group(1)}")


def external_references(page: str) -> list[str]:
    """Every resource in ``page`` that would be fetched from the network when it is opened
    (``src``/``href`` of scripts, links, images, frames; CSS ``url()``/``@import``); plain
    ``<a href>`` links are not counted. Empty for an offline page."""
    finder = _RefFinder()
    finder.feed(page)
    finder.close()
    return finder.found
