"""The five-whys tree as a self-contained SVG (no JavaScript, no network, escaped text).

Layout: the problem on the left, one row per hypothesis, its chain of whys to the right.
Colours and line styles carry the status (supported: solid green, open: amber, refuted:
dashed red); investigator overrides carry a tag.
"""

from __future__ import annotations

import textwrap
from html import escape

from uvs_analysis.rca.whys import FiveWhys, WhyNode

__all__ = ["tree_svg"]

_BOX_W, _GAP_X, _GAP_Y, _LINE_H, _PAD = 280, 40, 18, 15, 8
_WRAP = 42
_MAX_LINES = 6
_STYLE = {
    "supported": ("#2e7d32", "#e8f5e9", ""),
    "open": ("#b26a00", "#fff8e1", ""),
    "refuted": ("#c62828", "#fdecea", "6,4"),
}


def tree_svg(tree: FiveWhys) -> str:
    """Render the tree; every node shows its id, status, confidence, evidence and answer."""
    children: dict[str | None, list[WhyNode]] = {}
    for node in tree.nodes:
        children.setdefault(node.parent, []).append(node)
    root = next(n for n in tree.nodes if n.parent is None)
    rows = children.get(root.id, [])
    boxes: list[tuple[WhyNode, int, int, int]] = []  # node, x, y, height
    edges: list[tuple[int, int, int, int, str]] = []
    y = _GAP_Y
    for head in rows:
        chain = [head]
        while True:
            nxt = children.get(chain[-1].id, [])
            if not nxt:
                break
            chain.append(nxt[0])
            for extra in nxt[1:]:  # investigator-added siblings continue the row
                chain.append(extra)
        row_h = max(_height(n) for n in chain)
        for depth, node in enumerate(chain, start=1):
            x = _GAP_X + depth * (_BOX_W + _GAP_X)
            boxes.append((node, x, y, row_h))
        y += row_h + _GAP_Y
    total_h = max(y, _height(root) + 2 * _GAP_Y)
    root_h = _height(root)
    root_y = max(_GAP_Y, (total_h - root_h) // 2)
    boxes.insert(0, (root, _GAP_X, root_y, root_h))
    where = {node.id: (x, yy, h) for node, x, yy, h in boxes}
    for node, x, yy, h in boxes[1:]:
        px, py, ph = where[node.parent or root.id]
        edges.append((px + _BOX_W, py + ph // 2, x, yy + h // 2, node.status))
    width = max(x for _, x, _, _ in boxes) + _BOX_W + _GAP_X
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_h}" '
        f'viewBox="0 0 {width} {total_h}" font-family="sans-serif" font-size="11" '
        'role="img" aria-label="five whys tree">'
    ]
    for x1, y1, x2, y2, status in edges:
        colour, _, dash = _STYLE.get(status, _STYLE["open"])
        mid = (x1 + x2) // 2
        parts.append(
            f'<path d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" fill="none" '
            f'stroke="{colour}" stroke-width="1.5"'
            + (f' stroke-dasharray="{dash}"' if dash else "") + "/>"
        )
    for node, x, yy, h in boxes:
        parts.append(_box(node, x, yy, h))
    parts.append("</svg>")
    return "".join(parts)


def _lines(node: WhyNode) -> list[str]:
    head = f"{node.id} · {node.status} · {node.confidence:.2f}"
    if node.override:
        head += " · override"
    body = textwrap.wrap(node.answer, _WRAP) or [""]
    if len(body) > _MAX_LINES:
        body = [*body[: _MAX_LINES - 1], body[_MAX_LINES - 1][: _WRAP - 1] + "…"]
    evidence = "evidence: " + (", ".join(node.evidence) if node.evidence else "none")
    return [head, *textwrap.wrap(node.question, _WRAP)[:2], *body,
            *textwrap.wrap(evidence, _WRAP)[:2]]


def _height(node: WhyNode) -> int:
    return len(_lines(node)) * _LINE_H + 2 * _PAD


def _box(node: WhyNode, x: int, y: int, h: int) -> str:
    colour, fill, dash = _STYLE.get(node.status, _STYLE["open"])
    lines = _lines(node)
    out = [
        f'<g><title>{escape(node.question)} {escape(node.answer)}</title>'
        f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{h}" rx="6" fill="{fill}" '
        f'stroke="{colour}" stroke-width="1.5"' + (f' stroke-dasharray="{dash}"' if dash else "")
        + "/>"
    ]
    question_lines = len(textwrap.wrap(node.question, _WRAP)[:2])
    for i, line in enumerate(lines):
        weight = ' font-weight="bold"' if i == 0 else ""
        style = ' font-style="italic"' if 0 < i <= question_lines else ""
        fill_text = colour if i == 0 else "#212121"
        out.append(
            f'<text x="{x + _PAD}" y="{y + _PAD + (i + 1) * _LINE_H - 3}" fill="{fill_text}"'
            f"{weight}{style}>{escape(line)}</text>"
        )
    out.append("</g>")
    return "".join(out)
