"""Tables for the report: number formatting, and the same table as Markdown (pandas'
to_markdown needs tabulate) or as HTML built here (every cell escaped, inline `code` turned
into <code>, status cells classed for colour, each table in its own scrolling box)."""
from __future__ import annotations

import html
import math
import re

import pandas as pd

STATUSES = ("pass", "fail", "known_divergence", "skipped")
_CODE = re.compile(r"`([^`]+)`")


def fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


_TIME_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))


def duration(seconds, low=None, high=None) -> str:
    """A time in the unit that suits it, three significant digits, with its interval in the
    same unit when given: 0.000245 -> '245 µs', (0.000245, 0.00023, 0.00026) ->
    '245 µs [230–260]'. '' for a missing time."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    scale, unit = next(((s, u) for s, u in _TIME_UNITS if seconds >= s), _TIME_UNITS[-1])
    text = f"{seconds / scale:.3g} {unit}"
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        text += f" [{low / scale:.3g}–{high / scale:.3g}]"
    return text


def inline(text) -> str:
    """Escaped HTML for one line of our prose: `code` spans become <code>."""
    return _CODE.sub(r"<code>\1</code>", html.escape(str(text)))


def escape(text) -> str:
    return html.escape(str(text))


def markdown(df: pd.DataFrame, max_rows: int | None = None) -> str:
    if df.empty:
        return "_(none)_\n"
    shown = df if max_rows is None else df.head(max_rows)
    cols = [str(c) for c in shown.columns]

    def cell(v):
        return fmt(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in shown.itertuples(index=False)]
    if max_rows is not None and len(df) > max_rows:
        lines.append(f"\n_{len(df) - max_rows} more rows in the CSV_")
    return "\n".join(lines) + "\n"


def html_table(df: pd.DataFrame, tall: bool = False, max_rows: int | None = None) -> str:
    """A table in a box that scrolls by itself when the table is wider than the page (or,
    with `tall`, longer than about 30 rows), so the page never overflows."""
    if df.empty:
        return "<p class='note'>(none)</p>"
    shown = df if max_rows is None else df.head(max_rows)
    head = "".join(f"<th>{inline(c)}</th>" for c in shown.columns)
    rows = []
    for row in shown.itertuples(index=False):
        cells = []
        for value in row:
            text = fmt(value)
            cls = f" class='status-{text}'" if text in STATUSES else ""
            cells.append(f"<td{cls}>{inline(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    extra = (f"<p class='note'>{len(df) - max_rows} more rows in the CSV</p>"
             if max_rows is not None and len(df) > max_rows else "")
    box = "scroll tall" if tall else "scroll"
    return (f"<div class='{box}'><table class='data'><thead><tr>{head}</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div>" + extra)
