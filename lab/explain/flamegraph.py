"""Flame graph SVGs from folded stacks (`lab.explain.folded`), plain or differential.

A flame graph draws every stack as a tower of frames, the root at the bottom; a frame's width
is its share of the total (its inclusive cost or sample count), callees sit on top of their
callers, and siblings are sorted by name (so two graphs of the same code line up). Hovering a
frame shows its name, value and share (the SVG `<title>`); the files are static SVG with no
script, so any browser, image viewer or report page shows them.

`differential(base, head)` draws the head's stacks with each frame coloured by how much its
inclusive value changed on that path from base to head: red where it grew, blue where it
shrank, the deeper the colour the larger the change relative to the largest one; white where
nothing changed. Widths are the head's (a path that vanished has no width); the title says
so. This is the layout of Brendan Gregg's differential flame graphs, drawn by our own code:
no maintained Python package renders folded stacks to SVG.
"""
from __future__ import annotations

import hashlib
from html import escape

from lab.explain.folded import SEP

WIDTH = 1200
FRAME_H = 16
TOP = 48                          # title and subtitle
BOTTOM = 24                       # legend
MIN_PX = 0.3                      # frames narrower than this are not drawn
FONT_PX = 11
CHAR_PX = 6.6                     # average glyph width of the font at FONT_PX


class _Node:
    __slots__ = ("name", "value", "base", "children")

    def __init__(self, name: str):
        self.name, self.value, self.base, self.children = name, 0.0, 0.0, {}


def _tree(head: dict, base: dict | None = None) -> _Node:
    root = _Node("all")
    for which, folded in (("value", head), ("base", base or {})):
        for stack, v in folded.items():
            if v <= 0:
                continue
            node = root
            setattr(node, which, getattr(node, which) + v)
            for frame in stack.split(SEP):
                node = node.children.setdefault(frame, _Node(frame))
                setattr(node, which, getattr(node, which) + v)
    return root


def _depth(node: _Node) -> int:
    return 1 + max((_depth(c) for c in node.children.values() if c.value > 0), default=0)


def _warm(name: str) -> str:
    """flamegraph.pl's palette: warm colours, stable per name; Python frames in aqua."""
    h = hashlib.md5(name.encode()).digest()
    if ".py:" in name or name.endswith(".py)"):
        return f"rgb({50 + h[0] % 60},{160 + h[1] % 60},{160 + h[2] % 60})"
    return f"rgb({205 + h[0] % 50},{80 + h[1] % 150},{h[2] % 55})"


def _diff_colour(delta: float, scale: float) -> str:
    if scale <= 0 or delta == 0:
        return "rgb(250,250,250)"
    t = min(abs(delta) / scale, 1.0)
    fade = int(250 - 210 * t)
    return f"rgb(250,{fade},{fade})" if delta > 0 else f"rgb({fade},{fade},250)"


def _fmt(value: float) -> str:
    for bound, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= bound:
            return f"{value / bound:.3g}{suffix}"
    return f"{value:.3g}"


def _label(name: str, px: float) -> str:
    fits = int((px - 4) / CHAR_PX)
    if fits < 3:
        return ""
    return name if len(name) <= fits else name[:fits - 2] + ".."


def render(folded: dict, title: str, unit: str, subtitle: str = "",
           base: dict | None = None) -> str:
    """The SVG text; `base` given: a differential graph of `folded` (the head) against it."""
    root = _tree(folded, base)
    whole = root.value
    rows = max(_depth(root), 1)
    height = TOP + rows * FRAME_H + BOTTOM
    scale = 0.0
    if base is not None:
        stack = [root]
        while stack:
            node = stack.pop()
            scale = max(scale, abs(node.value - node.base))
            stack.extend(node.children.values())
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" font-family="Verdana, DejaVu Sans, sans-serif" '
             f'font-size="{FONT_PX}">',
             f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="rgb(248,248,240)"/>',
             f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="15">'
             f'{escape(title)}</text>',
             f'<text x="{WIDTH / 2}" y="36" text-anchor="middle" fill="rgb(90,90,90)">'
             f'{escape(subtitle)}</text>']
    if whole <= 0:
        parts.append(f'<text x="{WIDTH / 2}" y="{TOP + 14}" text-anchor="middle">'
                     f'no samples</text>')
    else:
        px_per = (WIDTH - 20) / whole
        todo = [(root, 10.0, 0)]
        while todo:
            node, x, depth = todo.pop()
            w = node.value * px_per
            if w < MIN_PX:
                continue
            y = height - BOTTOM - (depth + 1) * FRAME_H
            share = 100.0 * node.value / whole
            tip = f"{node.name}: {_fmt(node.value)} {unit} ({share:.2f}%)"
            if base is not None:
                delta = node.value - node.base
                fill = _diff_colour(delta, scale)
                change = (f"{node.value / node.base:.3f}x" if node.base > 0 else "new")
                tip += f"; base {_fmt(node.base)}, {'+' if delta >= 0 else ''}{_fmt(delta)} " \
                       f"({change})"
            else:
                fill = "rgb(230,230,230)" if node is root else _warm(node.name)
            parts.append(f'<g><title>{escape(tip)}</title><rect x="{x:.2f}" y="{y}" '
                         f'width="{w:.2f}" height="{FRAME_H - 1}" rx="2" fill="{fill}"/>')
            text = _label(node.name, w)
            if text:
                parts.append(f'<text x="{x + 3:.2f}" y="{y + FRAME_H - 4}">{escape(text)}'
                             f'</text>')
            parts.append("</g>")
            cx = x
            for name in sorted(node.children):
                child = node.children[name]
                todo.append((child, cx, depth + 1))
                cx += child.value * px_per
    legend = (f"total {_fmt(whole)} {unit}" if base is None else
              f"head total {_fmt(whole)} {unit}, base {_fmt(root.base)}; widths: head; red: "
              f"grew, blue: shrank (deepest at the largest change, {_fmt(scale)} {unit})")
    parts.append(f'<text x="10" y="{height - 7}" fill="rgb(90,90,90)">{escape(legend)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write(path: str, folded: dict, title: str, unit: str, subtitle: str = "",
          base: dict | None = None) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(folded, title, unit, subtitle, base))
    return path
