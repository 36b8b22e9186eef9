"""Write a report directory: index.html (self-contained, relative image links), report.md,
parity.csv, perf.csv and the PNG charts."""
from __future__ import annotations

import os

import pandas as pd

from lab.report import charts, ps_chart
from lab.report.history import load_asv_history
from lab.report.tables import escape, html_table, markdown

CHARTS = (
    ("parity_matrix.png", "Parity matrix"),
    ("throughput.png", "Throughput per engine and op"),
    ("speedup.png", "Speedup against the references"),
    ("thread_scaling.png", "Thread scaling"),
    ("batch_scaling.png", "Batch-size scaling"),
    ("history.png", "History across commits (asv)"),
    ("ps_scaling.png", "Scaling over parameter-server tasks"),
)
CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table.data { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
table.data th, table.data td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; }
table.data th { background: #f3f3f3; }
td.status-pass { background: #c8e6c9; } td.status-fail { background: #ffcdd2; }
td.status-known_divergence { background: #ffe0b2; } td.status-skipped { background: #eeeeee; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.note { color: #666; font-style: italic; }
"""


def summary_table(result) -> pd.DataFrame:
    """Per engine: how many scenarios passed / diverged knowingly / failed / were skipped,
    the worst ulp error, and the median cost relative to dense take (passing pairs only)."""
    s = result.parity_summary
    perf = result.perf_passing()
    rows = []
    for engine in dict.fromkeys(s["engine"]):
        g = s[s["engine"] == engine]
        counts = g["status"].value_counts()
        p = perf[perf["engine"] == engine]["ratio_to_baseline"].dropna()
        rows.append({"engine": engine,
                     "scenarios": len(g),
                     "pass": int(counts.get("pass", 0)),
                     "known_divergence": int(counts.get("known_divergence", 0)),
                     "fail": int(counts.get("fail", 0)),
                     "skipped": int(counts.get("skipped", 0)),
                     "worst_ulp": g["max_ulp"].max(),
                     "median_time_vs_dense_take": p.median() if len(p) else float("nan")})
    return pd.DataFrame(rows)


def oracle_table():
    """(TF optimizer oracle DataFrame, None) or (None, why it is absent)."""
    try:
        from engines.reference import tf_oracle
    except ImportError as exc:
        return None, f"engines.reference.tf_oracle is not available: {exc}"
    try:
        import tensorflow  # noqa: F401
    except ImportError as exc:
        return None, f"TensorFlow does not import here: {exc}"
    try:
        return tf_oracle.optimizer_oracle_table(), None
    except Exception as exc:       # report, do not crash the whole report
        return None, f"optimizer_oracle_table() failed: {type(exc).__name__}: {exc}"


def _perf_view(perf: pd.DataFrame) -> pd.DataFrame:
    cols = ["engine", "scenario", "op", "threads", "n_ids", "median_s", "iqr_s", "ids_per_s",
            "bytes_per_s", "peak_rss_mb", "baseline", "ratio_to_baseline", "parity"]
    return perf[cols]


def write_report(result, out_dir: str, asv_results: str = ".asv/results",
                 with_oracle: bool = True) -> dict:
    """Write every file; returns {'html': path, 'markdown': path, 'images': [...]}."""
    os.makedirs(out_dir, exist_ok=True)
    perf = result.perf_passing()
    result.parity_rows.to_csv(os.path.join(out_dir, "parity.csv"), index=False)
    perf.to_csv(os.path.join(out_dir, "perf.csv"), index=False)
    hist = load_asv_history(asv_results)
    drawers = {
        "parity_matrix.png": lambda p: charts.parity_matrix(result.parity_summary, p),
        "throughput.png": lambda p: charts.throughput(perf, p),
        "speedup.png": lambda p: charts.speedup(perf, p),
        "thread_scaling.png": lambda p: charts.thread_scaling(perf, p),
        "batch_scaling.png": lambda p: charts.batch_scaling(perf, p),
        "history.png": lambda p: charts.history(hist, p),
        "ps_scaling.png": lambda p: ps_chart.ps_scaling(perf, p),
    }
    images, notes = [], {}
    for name, _ in CHARTS:
        path = os.path.join(out_dir, name)
        if os.path.exists(path):
            os.unlink(path)                    # never leave a stale chart from an older run
        why = drawers[name](path)
        if why is None:
            images.append(name)
        else:
            notes[name] = why
    oracle, oracle_note = oracle_table() if with_oracle else (None, "not requested")
    summary = summary_table(result)
    sections = _sections(result, summary, perf, hist, images, notes, oracle, oracle_note)
    html_path = os.path.join(out_dir, "index.html")
    md_path = os.path.join(out_dir, "report.md")
    with open(html_path, "w", encoding="utf-8") as f:
        f.write(_html(result, sections))
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(_markdown(result, sections))
    return {"html": html_path, "markdown": md_path, "images": images, "notes": notes,
            "summary": summary}


def _sections(result, summary, perf, hist, images, notes, oracle, oracle_note) -> list:
    """[(title, text paragraphs, [(kind, payload)])] shared by the HTML and markdown output.
    kind: 'table' (DataFrame), 'image' (file name) or 'note' (text)."""
    s = result.parity_summary
    chart = dict(CHARTS)

    def img(name):
        return ("image", name) if name in images else ("note", f"{chart[name]}: "
                                                               f"{notes.get(name, '')}")
    diverged = s[s["status"] == "known_divergence"][["engine", "scenario", "max_ulp", "note"]]
    failed = result.parity_rows[result.parity_rows["status"] == "fail"]
    skipped = s[s["status"] == "skipped"][["engine", "scenario", "note"]]
    perf_view = _perf_view(perf)
    out = [
        ("Summary", ["Per engine over all scenarios. Performance columns use only "
                     "engine-scenario pairs whose parity passed (or diverged knowingly)."],
         [("table", summary)]),
        ("Parity", ["Every op of every step compared to the numpy reference: storage ops "
                    "bit-exact, optimizer results within 4 ulp (docs/semantics.md §4). "
                    "Known, intended divergences are marked, not failed."],
         [img("parity_matrix.png"), ("table", s)]),
        ("Known divergences", [], [("table", diverged)]),
        ("Failures", ["Every failing step (all rows in parity.csv)."],
         [("table", failed.head(200))]),
        ("Skipped", ["Scenarios an engine could not run, with the reason."],
         [("table", skipped)]),
        ("Performance", ["Median of the measured steps after warm-up; IQR is the spread. "
                         "ratio_to_baseline = engine time / same-run dense-take time "
                         "(save/restore: tofile/fromfile of the same bytes). Shown only for "
                         "engine-scenario pairs that passed parity."],
         [img("throughput.png"), img("speedup.png"), img("thread_scaling.png"),
          img("batch_scaling.png"), ("table", perf_view)]),
        ("Sharded tables (TensorFlow's distributed runtime)",
         ["The sharded_* scenarios on an in-process cluster on loopback: ps = parameter-server "
          "tasks, 0 = no cluster. Engines that cannot shard run one local table. The last "
          "column is the RPC hop: time at ps=1 over time at ps=0. On a small shared machine "
          "this measures overhead, not scaling (docs/tfops.md)."],
         [img("ps_scaling.png"), ("table", ps_chart.rpc_hop_table(perf))]),
        ("TensorFlow optimizer oracle",
         ["TF's own training kernels vs the reference's optimizer math "
          "(engines.reference.tf_oracle)."],
         [("table", oracle)] if oracle is not None else [("note", oracle_note)]),
        ("History", ["From asv's results (.asv/results)."],
         [img("history.png")] + ([("table", hist.groupby(["benchmark"]).agg(
             commits=("commit", "nunique"), latest=("value", "last")).reset_index())]
             if not hist.empty else [])),
    ]
    return out


def _header_facts(result) -> list[tuple[str, str]]:
    m, g = result.meta.get("machine", {}), result.meta.get("git", {})
    engines = ", ".join(e["label"] if e["available"] else f"{e['label']} (unavailable: "
                        f"{e['reason']})" for e in result.engines)
    commit = g.get("commit") or "not a git checkout"
    if g.get("dirty"):
        commit += " (uncommitted changes)"
    return [("created", result.meta.get("created", "")), ("commit", commit),
            ("mode", "quick" if result.meta.get("quick") else "full"),
            ("machine", f"{m.get('processor', '')}, {m.get('cpu_count_logical')} logical "
                        f"CPUs, {m.get('memory_gb')} GB, Python {m.get('python')}"),
            ("engines", engines), ("scenarios", str(len(result.meta.get("scenarios", [])))),
            ("wall time", f"{result.meta.get('wall_seconds', 0):.0f} s")]


def _html(result, sections) -> str:
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             "<title>hashtable-lab report</title>", f"<style>{CSS}</style></head><body>",
             "<h1>hashtable-lab report</h1><ul>"]
    parts += [f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in _header_facts(result)]
    parts.append("</ul><p>Data: <a href='parity.csv'>parity.csv</a>, "
                 "<a href='perf.csv'>perf.csv</a>, <a href='report.md'>report.md</a></p>")
    for title, paras, items in sections:
        parts.append(f"<h2>{escape(title)}</h2>")
        parts += [f"<p>{escape(p)}</p>" for p in paras]
        for kind, payload in items:
            if kind == "image":
                parts.append(f"<img src='{escape(payload)}' alt='{escape(payload)}'>")
            elif kind == "note":
                parts.append(f"<p class='note'>{escape(payload)}</p>")
            else:
                parts.append(html_table(payload, status_col="status"))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _markdown(result, sections) -> str:
    lines = ["# hashtable-lab report", ""]
    lines += [f"- **{k}**: {v}" for k, v in _header_facts(result)]
    lines += ["", "Data: [parity.csv](parity.csv), [perf.csv](perf.csv), "
                  "[index.html](index.html)", ""]
    for title, paras, items in sections:
        lines += [f"## {title}", ""]
        for p in paras:
            lines += [p, ""]
        for kind, payload in items:
            if kind == "image":
                lines += [f"![{payload}]({payload})", ""]
            elif kind == "note":
                lines += [f"_{payload}_", ""]
            else:
                lines += [markdown(payload, max_rows=300), ""]
    return "\n".join(lines)
