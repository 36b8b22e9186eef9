"""Tables for the report: markdown (written here; pandas' to_markdown needs tabulate) and
HTML (pandas to_html), with numbers formatted for reading."""
from __future__ import annotations

import html
import math

import pandas as pd


def fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


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


def html_table(df: pd.DataFrame, css_class: str = "data", status_col: str | None = None,
               max_rows: int | None = None) -> str:
    if df.empty:
        return "<p><em>(none)</em></p>"
    shown = df if max_rows is None else df.head(max_rows)
    body = shown.to_html(index=False, classes=css_class, na_rep="", border=0, escape=True,
                         formatters={c: fmt for c in shown.columns})
    if status_col is not None:
        for status in ("pass", "fail", "known_divergence", "skipped"):
            body = body.replace(f"<td>{status}</td>",
                                f'<td class="status-{status}">{status}</td>')
    extra = (f"<p><em>{len(df) - max_rows} more rows in the CSV</em></p>"
             if max_rows is not None and len(df) > max_rows else "")
    return body + extra


def escape(text) -> str:
    return html.escape(str(text))
