"""`index.html` of an explanation folder: the figures of `explain.json` as tables, and every
flame graph SVG of the folder (the HTML report links this page)."""
from __future__ import annotations

from html import escape

from lab.explain.summary import LABELS, memory_text, ms, num

CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1250px}"
       "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
       "padding:2px 8px;text-align:right}th{background:#f3f3f3}td.l{text-align:left}"
       "img{max-width:100%;border:1px solid #ddd;margin:.5em 0}code{font-size:90%}")


def _counted_table(c: dict) -> str:
    mine, theirs = c["engine"].get("per_unit", {}), c["baseline_figures"].get("per_unit", {})
    rows = [f"<tr><th>per {escape(c['unit'])}</th><th>engine</th><th>baseline "
            f"({escape(str(c.get('baseline')))})</th><th>engine / baseline</th></tr>"]
    for name, label in LABELS.items():
        a, b = mine.get(name), theirs.get(name)
        ratio = f"{a / b:.2f}x" if a is not None and b else "-"
        rows.append(f"<tr><td class='l'>{label}</td><td>{num(a)}</td><td>{num(b)}</td>"
                    f"<td>{ratio}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _functions(fns: list) -> str:
    if not fns:
        return ""
    rows = ["<tr><th>share</th><th>function</th><th>where</th></tr>"]
    rows += [f"<tr><td>{f['share']:.1%}</td><td class='l'><code>{escape(f['name'])}</code></td>"
             f"<td class='l'>{escape(f['where'])}</td></tr>" for f in fns]
    return "<table>" + "".join(rows) + "</table>"


def render(data: dict) -> str:
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>hashlab explain {escape(data['scenario'])}</title><style>{CSS}</style>"
             "</head><body>", f"<h1>hashlab explain {escape(data['scenario'])}</h1>",
             f"<p>{escape(data['created'])}, commit {escape(str(data['git'].get('commit')))}"
             f"{' (uncommitted changes)' if data['git'].get('dirty') else ''}; "
             f"{escape(str(data['machine'].get('cpu_model') or data['machine'].get('processor')))}"
             f"; {data['seconds']:.0f} s. Data: <a href='explain.json'>explain.json</a>.</p>"]
    for variant in data["variants"]:
        for eng in variant["engines"]:
            parts.append(f"<h2>{escape(variant['scenario'])} on {escape(eng['engine'])}</h2>")
            for what in ("count_error", "sample_error", "memory_error"):
                if eng.get(what):
                    parts.append(f"<p>{escape(what.replace('_', ' '))}: "
                                 f"{escape(str(eng[what]))}</p>")
            for op in eng["ops"]:
                parts.append(f"<h3>op {op['index']}: {escape(op['op'])}</h3>")
                c = op.get("counted")
                if c:
                    parts.append(f"<p>Counted under callgrind's cache model, mean of "
                                 f"{c['calls']} call(s) of {c['units_per_call']:,.0f} "
                                 f"{escape(c['unit'])}s:</p>" + _counted_table(c))
                    parts.append(_functions(c.get("top_functions", [])))
                    if c.get("svg"):
                        parts.append(f"<p><img src='{escape(c['svg'])}' "
                                     f"alt='{escape(c['svg'])}'></p>")
                w = op.get("wall")
                if w:
                    parts.append(f"<p>Wall clock while sampled: {ms(w['engine_s'])} a call, "
                                 f"baseline {ms(w['baseline_s'])} ({w['calls']} calls).</p>")
                if op.get("memory"):
                    parts.append(f"<p>Memory per call (median): "
                                 f"{escape(memory_text(op['memory']))}.</p>")
            if eng.get("wall_svg"):
                parts.append(f"<h3>Wall clock, every op</h3><p><img src='"
                             f"{escape(eng['wall_svg'])}' alt='{escape(eng['wall_svg'])}'>"
                             f"</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
