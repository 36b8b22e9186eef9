"""Write a report directory: index.html (self-contained, relative image links), report.md,
parity.csv, perf.csv and the PNG charts.

The page reads top-down: what ran (profile, sizes, machine, load), a summary per engine that
ran, the engines that did not (once, with the reason), parity, performance per scenario
family, the TensorFlow optimizer oracle and asv history. Column names carry units and say
whether higher or lower is better.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd

from engines import tolerance
from lab.report import charts, ps_chart
from lab.report.history import load_asv_history
from lab.report.style import DOWN, HIGHER, UP
from lab.report.tables import escape, html_table, inline, markdown

REFERENCE = charts.REFERENCE
FIXED_CHARTS = (
    ("parity_matrix.png", "Parity matrix"),
    ("thread_scaling.png", "Thread scaling"),
    ("batch_scaling.png", "Batch-size scaling"),
    ("history.png", "History across commits (asv)"),
    ("ps_scaling.png", "Scaling over parameter-server tasks"),
)
CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222;
       padding: 0 1em; line-height: 1.4; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
.scroll { overflow: auto; max-width: 100%; margin: 0.5em 0 1.5em; border: 1px solid #eee; }
.scroll.tall { max-height: 34em; }
table.data { border-collapse: collapse; font-size: 0.85em; }
table.data th, table.data td { border: 1px solid #ddd; padding: 3px 7px; text-align: left;
                               vertical-align: top; }
table.data th { background: #f3f3f3; position: sticky; top: 0; }
td.status-pass { background: #c8e6c9; } td.status-fail { background: #ffcdd2; }
td.status-known_divergence { background: #ffe0b2; } td.status-skipped { background: #eeeeee; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
code { background: #f5f5f5; padding: 0 3px; border-radius: 3px; }
.note { color: #666; font-style: italic; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; }
dl.facts dt { font-weight: bold; } dl.facts dd { margin: 0; }
"""


# ---- tables -------------------------------------------------------------------------------

def ran_engines(result) -> list[str]:
    return [e["label"] for e in result.engines if e.get("available")]


def not_run(result) -> pd.DataFrame:
    rows = [{"engine": e["label"], "why it did not run": e.get("reason", "")}
            for e in result.engines if not e.get("available")]
    return pd.DataFrame(rows, columns=["engine", "why it did not run"])


def _speedup_stats(perf: pd.DataFrame, engine: str, reference: str):
    """(geometric mean, min, max, count) of reference/engine median time over the
    single-threaded scenario ops both timed stably, and how many ops both timed in all; the
    first is None when no op was timed stably on both sides."""
    df = perf[(perf["threads"] == 1) & (perf["n_ids"] > 0)]
    df = df.assign(_stable=~charts.unstable_mask(df))
    key = ["scenario", "op_index"]
    ref = df[df["engine"] == reference].set_index(key)[["median_s", "_stable"]]
    mine = df[df["engine"] == engine].set_index(key)[["median_s", "_stable"]]
    both = ref.merge(mine, left_index=True, right_index=True,
                     suffixes=("_ref", "_eng")).dropna()
    both = both[(both["median_s_ref"] > 0) & (both["median_s_eng"] > 0)]
    stable = both[both["_stable_ref"].astype(bool) & both["_stable_eng"].astype(bool)]
    if stable.empty:
        return None, len(both)
    s = stable["median_s_ref"] / stable["median_s_eng"]
    return (float(np.exp(np.log(s).mean())), float(s.min()), float(s.max()), len(s)), len(both)


def _speedup_text(perf: pd.DataFrame, engine: str, reference: str) -> str:
    stats, pairs = _speedup_stats(perf, engine, reference)
    if stats is None:
        return f"— (all {pairs} ops unstable)" if pairs else "—"
    gm, lo, hi, n = stats
    stable = "stable " if "unstable" in perf.columns else ""     # else: no flag recorded
    left_out = f"; {pairs - n} unstable left out" if pairs > n else ""
    return f"{gm:.3g}× ({lo:.3g}–{hi:.3g}× over {n} {stable}op{'s' * (n != 1)}{left_out})"


def _unstable_count(perf: pd.DataFrame, engine: str) -> str:
    rows = perf[perf["engine"] == engine]
    if rows.empty:
        return "—"
    if "unstable" not in rows.columns:
        return "not recorded"
    return f"{int(charts.unstable_mask(rows).sum())} of {len(rows)}"


UNSTABLE_COLUMN = "unstable timings (left out of the speedup)"


def summary_table(result, reference: str = REFERENCE) -> pd.DataFrame:
    """One row per engine that ran: parity counts, worst error, how many of its timing rows
    are unstable, and the speedup over the reference (geometric mean over the scenario ops
    both timed stably, with its range)."""
    s = result.parity_summary
    perf = result.perf_passing()
    rows = []
    for engine in ran_engines(result):
        g = s[s["engine"] == engine]
        counts = g["status"].value_counts()
        worst = g["max_ulp"].max()
        clean = counts.get("fail", 0) == 0 and counts.get("known_divergence", 0) == 0
        if isinstance(worst, float) and math.isfinite(worst) and worst > 0:
            worst_text = f"{worst:.0f}"
        else:                  # no ulp measured: storage ops only, exact unless one failed
            worst_text = "exact" if clean else "—"
        speed = ("— (the reference)" if engine == reference
                 else _speedup_text(perf, engine, reference))
        rows.append({
            "engine": engine + (" (reference, vs its own second run)"
                                if engine == reference else ""),
            "scenarios compared": int(len(g) - counts.get("skipped", 0)),
            "pass": int(counts.get("pass", 0)),
            "known divergence": int(counts.get("known_divergence", 0)),
            "fail": int(counts.get("fail", 0)),
            "could not run": int(counts.get("skipped", 0)),
            "worst error (float32 ulp) " + DOWN: worst_text,
            UNSTABLE_COLUMN: _unstable_count(perf, engine),
            f"speedup over {reference} (geometric mean over stable ops; × {HIGHER})": speed,
        })
    return pd.DataFrame(rows)


def unstable_sentence(perf: pd.DataFrame, target: float | None = None,
                      reference: str = REFERENCE) -> str:
    """How many timing rows are unstable and what the summary does with them ("" when
    nothing was timed)."""
    if perf.empty:
        return ""
    if "unstable" not in perf.columns:
        return ("This run's timing rows carry no stability flag (recorded before the timing "
                "runner kept confidence intervals): the speedup uses every op.")
    n, k = len(perf), int(charts.unstable_mask(perf).sum())
    if "measure" in perf.columns and (perf["measure"] == "simulated").all():
        return (f"All {n} rows are simulated costs (callgrind counts): they carry no sampling "
                f"noise, so none is unstable.")
    precision = f"±{target:.0%}" if target else "the precision target"
    if k == 0:
        return (f"All {n} timing rows are stable: each is known to {precision} "
                f"(95% confidence).")
    return (f"{k} of {n} timing rows are unstable: their 95% confidence interval is wider "
            f"than {precision} (a busy machine makes timings noisy). The speedup leaves them "
            f"out: it uses only the ops timed stably on both the engine and `{reference}`.")


def _reason(note: str) -> str:
    return str(note).removeprefix("engine unavailable: ")


def could_not_run(result) -> pd.DataFrame:
    """Scenarios an engine that ran could not run, grouped by engine and reason."""
    s = result.parity_summary
    ran = set(ran_engines(result))
    skipped = s[(s["status"] == "skipped") & s["engine"].isin(ran)]
    rows = []
    for (engine, note), g in skipped.groupby(["engine", "note"], sort=False):
        names = list(g["scenario"])
        rows.append({"engine": engine, "reason": _reason(note), "scenarios": len(names),
                     "which": ", ".join(names)})
    return pd.DataFrame(rows, columns=["engine", "reason", "scenarios", "which"])


def parity_view(result, statuses) -> pd.DataFrame:
    s = result.parity_summary
    ran = set(ran_engines(result))
    df = s[s["engine"].isin(ran) & s["status"].isin(statuses)]
    return pd.DataFrame({
        "engine": df["engine"], "scenario": df["scenario"], "status": df["status"],
        "worst error (ulp) " + DOWN: df["max_ulp"],
        "worst rel. error": df["max_rel_err"], "worst abs. error": df["max_abs_err"],
        "declared bound": df["bound"] if "bound" in df else "",
        "ops compared": df["steps_compared"], "note": df["note"]})


def failing_steps(result) -> pd.DataFrame:
    rows = result.parity_rows
    df = rows[(rows["status"] == "fail") & rows["engine"].isin(ran_engines(result))]
    return pd.DataFrame({"engine": df["engine"], "scenario": df["scenario"],
                         "step": df["step"], "op": df["op"],
                         "error (ulp) " + DOWN: df["max_ulp"],
                         "abs. error": df["max_abs_err"], "note": df["note"]})


def _ms(v) -> float:
    return v * 1e3 if v is not None and v == v else float("nan")


def perf_view(perf: pd.DataFrame) -> pd.DataFrame:
    """The timing rows for people: units in the column names, and the direction."""
    has_ci = {"ci_low_s", "ci_high_s"} <= set(perf.columns)
    out = pd.DataFrame({
        "engine": perf["engine"], "scenario": perf["scenario"], "op": perf["op"],
        "threads": perf["threads"], "ids per call": perf["n_ids"],
        f"median time (ms) {DOWN}": perf["median_s"].map(_ms)})
    if has_ci:
        out["95% CI of the median (ms)"] = [
            f"{_ms(lo):.4g}–{_ms(hi):.4g}" if lo == lo and hi == hi else ""
            for lo, hi in zip(perf["ci_low_s"], perf["ci_high_s"])]
    else:
        out["spread: IQR (ms)"] = perf["iqr_s"].map(_ms)
    out[f"throughput (M ids/s) {UP}"] = perf["ids_per_s"] / 1e6
    out[f"time ÷ baseline (×) {DOWN}"] = perf["ratio_to_baseline"]
    if {"ratio_ci_low", "ratio_ci_high"} <= set(perf.columns):
        out["95% CI of the ratio (×)"] = [
            f"{lo:.3g}–{hi:.3g}" if lo == lo and hi == hi else ""
            for lo, hi in zip(perf["ratio_ci_low"], perf["ratio_ci_high"])]
    out["baseline"] = perf["baseline"]
    if "measure" in perf.columns:            # "wall" clock or "simulated" device time
        out["timed by"] = perf["measure"]
    if "unstable" in perf.columns:
        out["unstable"] = perf["unstable"].fillna(False).astype(bool)
    out["peak RSS (MB)"] = perf["peak_rss_mb"]
    return out.reset_index(drop=True)


def sizes_view(meta: dict) -> pd.DataFrame:
    rows = meta.get("sizes") or []
    return pd.DataFrame([{"scenario": r["scenario"], "table entries before step 0":
                          r["prefill"], "ids per call": r["batch_size"], "steps": r["steps"],
                          "warm-up steps": r["warmup"], "threads": r["threads"]}
                         for r in rows])


def load_from_rows(perf: pd.DataFrame) -> dict | None:
    """The machine's load from the timing rows (`load_avg`, when the runner recorded it),
    for runs whose own sampler did not (`hashlab bench` JSON)."""
    if "load_avg" not in perf.columns or perf["load_avg"].dropna().empty:
        return None
    v = perf["load_avg"].dropna().astype(float)
    return {"min": float(v.min()), "median": float(v.median()), "max": float(v.max()),
            "samples": int(len(v))}


def oracle_table():
    """(TF optimizer oracle DataFrame, None) or (None, why it is absent)."""
    import importlib.util
    if importlib.util.find_spec("tensorflow") is None:
        return None, "TensorFlow is not installed here (the `tf` extra)"
    try:
        from engines.reference import tf_oracle
        return tf_oracle.optimizer_oracle_table(), None
    except Exception as exc:       # report, do not crash the whole report
        return None, f"optimizer_oracle_table() failed: {type(exc).__name__}: {exc}"


# ---- writing ----------------------------------------------------------------------------

def _draw(drawer, path: str):
    if os.path.exists(path):
        os.unlink(path)                        # never leave a stale chart from an older run
    return drawer(path)


def write_report(result, out_dir: str, asv_results: str = ".asv/results",
                 with_oracle: bool = True) -> dict:
    """Write every file; returns {'html', 'markdown', 'data' (the data files' names),
    'images', 'notes', 'summary', 'unstable' (the sentence on unstable timings)}."""
    data = result.write_files(out_dir)
    perf = result.perf_passing()
    for stale in os.listdir(out_dir):          # family charts of an older run
        if stale.startswith("family_") and stale.endswith(".png"):
            os.unlink(os.path.join(out_dir, stale))
    hist = load_asv_history(asv_results)
    machine = result.meta.get("machine", {})
    load = result.meta.get("load") or load_from_rows(result.perf)
    drawers = {
        "parity_matrix.png": lambda p: charts.parity_matrix(result.parity_summary, p,
                                                            ran=ran_engines(result)),
        "thread_scaling.png": lambda p: charts.thread_scaling(perf, p, machine, load),
        "batch_scaling.png": lambda p: charts.batch_scaling(perf, p),
        "history.png": lambda p: charts.history(hist, p),
        "ps_scaling.png": lambda p: ps_chart.ps_scaling(perf, p),
    }
    images, notes = [], {}
    for name, _ in FIXED_CHARTS:
        why = _draw(drawers[name], os.path.join(out_dir, name))
        (images.append(name) if why is None else notes.__setitem__(name, why))
    families = []
    for base in dict.fromkeys(perf["base_scenario"]):
        name = f"family_{base}.png"
        why = charts.family(perf, base, os.path.join(out_dir, name))
        if why is None:
            images.append(name)
            families.append((base, name))
        else:
            notes[name] = why
    oracle, oracle_note = oracle_table() if with_oracle else (None, "not requested")
    summary = summary_table(result)
    unstable = unstable_sentence(perf, (result.meta.get("sampling") or {}).get("target"))
    sections = _sections(result, summary, unstable, perf, hist, images, notes, families,
                         oracle, oracle_note)
    links = explanation_links(result, out_dir)
    if links:
        sections.append(("Explanations (`hashlab explain`)",
                         ["Where each op's cost goes, per engine: counted per id beside the "
                          "baseline, flame graphs, memory (docs/investigating.md). Made "
                          "separately; each page says when and on which commit."],
                         [("links", links)]))
    html_path = os.path.join(out_dir, "index.html")
    md_path = os.path.join(out_dir, "report.md")
    with open(html_path, "w", encoding="utf-8") as f:
        f.write(_html(result, sections))
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(_markdown(result, sections))
    return {"html": html_path, "markdown": md_path, "data": data, "images": images,
            "notes": notes, "summary": summary, "unstable": unstable}


def explanation_links(result, out_dir: str) -> list[str]:
    """[(scenario, relative link to its index.html)] for the report's scenarios that have an
    explanation beside the report folder (`hashlab explain` writes reports/explain/SCENARIO/
    by default)."""
    root = os.path.join(os.path.dirname(os.path.abspath(out_dir)), "explain")
    names = dict.fromkeys(result.perf["base_scenario"]) if len(result.perf) else {}
    names.update(dict.fromkeys(s.split("[", 1)[0] for s in result.meta.get("scenarios", [])))
    links = []
    for name in names:
        page = os.path.join(root, str(name), "index.html")
        if os.path.exists(page):
            rel = os.path.relpath(page, os.path.abspath(out_dir))
            links.append((str(name), rel))
    return links


def _sections(result, summary, unstable, perf, hist, images, notes, families, oracle,
              oracle_note) -> list:
    """[(title, paragraphs, [(kind, payload)])] shared by the HTML and Markdown output.
    kind: 'table' / 'tall' (DataFrame), 'image' (file name), 'note' or 'list' (text), 'links'
    ([(text, href)])."""
    titles = dict(FIXED_CHARTS)

    def img(name):
        return (("image", name) if name in images
                else ("note", f"{titles.get(name, name)}: {notes.get(name, '')}"))
    resized = result.meta.get("resized") or []
    not_passed = parity_view(result, ("fail", "known_divergence"))
    steps_failed = failing_steps(result).head(200)
    has_ci = {"ci_low_s", "ci_high_s"} <= set(perf.columns)
    out = [
        ("Summary", [f"Engines that ran, over every scenario. The speedup compares median "
                     f"times with the `{REFERENCE}` reference on the same scenario op "
                     f"(one thread; pairs that passed parity only)."]
         + ([unstable] if unstable else []),
         [("table", summary)]),
        ("Engines not run", ["Listed once here; they appear nowhere else in the report."],
         [("table", not_run(result))]),
        ("What ran, at which size",
         [f"Profile `{result.meta.get('profile', 'custom')}`: "
          f"{result.meta.get('profile_description', '')}"]
         + (["Scenarios run at another size than the catalog's (their names carry the "
             "change):"] if resized else []),
         ([("list", resized)] if resized else []) + [("tall", sizes_view(result.meta))]),
        ("Parity", [f"Every op of every step compared with the `{REFERENCE}` reference: "
                    f"storage ops bit-exact, optimizer results within {tolerance.MAX_ULP} "
                    f"ulp (docs/semantics.md). Known, intended divergences are marked, not "
                    f"failed, as long as they stay within the bound their engine declares "
                    f"(shown beside the measured worst error below); beyond it they fail. "
                    f"The full engine × scenario table is in `parity.csv`."],
         [img("parity_matrix.png")]),
        ("Failures and known divergences",
         ["Every engine-scenario pair that did not pass, then every failing step."]
         if len(not_passed) else [], [("table", not_passed), ("tall", steps_failed)]
         if len(not_passed) else [("note", "None: every pair that ran passed.")]),
        ("Scenarios an engine could not run", ["Grouped by the reason the engine gives."],
         [("table", could_not_run(result))]),
        ("Performance",
         ["Timing runs each scenario again after parity: warm-up steps, then the median of "
          "the measured steps. `time ÷ baseline` divides by the same-run time of a dense "
          "numpy `take` of the same rows (save/restore: `tofile`/`fromfile` of the same "
          "bytes), so it stays comparable on a busy machine. Shown only for pairs that "
          "passed parity. "
          + ("Error bars and intervals: the 95% confidence interval of the median; "
             "hatched bars and `unstable` rows: the runner found the spread too wide to "
             "trust." if has_ci else
             "This run's timing data holds no confidence intervals: the spread column is "
             "the interquartile range.")],
         [img("thread_scaling.png"), img("batch_scaling.png")]
         + [("image", name) for _, name in families]
         + [("note", f"{n}: {why}") for n, why in notes.items() if n.startswith("family_")]
         + [("tall", perf_view(perf))]),
        ("Sharded tables (TensorFlow's distributed runtime)",
         ["The sharded_* scenarios on an in-process cluster on loopback: ps = parameter-server "
          "tasks, local = the same op library without a cluster. Engines that cannot shard "
          "run one local table. The table gives the median time per call at each ps value "
          "with its 95% confidence interval; its last column is the RPC hop, the time at "
          "ps=1 over the local time. On a small shared machine this measures overhead, not "
          "scaling (docs/tfops.md)."],
         [img("ps_scaling.png"), ("table", ps_chart.rpc_hop_table(perf))]),
        ("TensorFlow optimizer oracle",
         ["TF's own training kernels against the reference's optimizer math "
          "(`engines.reference.tf_oracle`)."],
         [("table", oracle)] if oracle is not None else [("note", oracle_note)]),
        ("History", ["From asv's results (`.asv/results`)."],
         [img("history.png")] + ([("table", hist.groupby(["benchmark"]).agg(
             commits=("commit", "nunique"), latest_seconds=("value", "last")).reset_index())]
             if not hist.empty else [])),
    ]
    return out


def _header_facts(result) -> list[tuple[str, str]]:
    m, g = result.meta.get("machine", {}), result.meta.get("git", {})
    commit = g.get("commit") or "not a git checkout"
    if g.get("dirty"):
        commit += " (uncommitted changes)"
    load = result.meta.get("load") or load_from_rows(result.perf)
    load_text = (f"{load['min']:.1f}–{load['max']:.1f} (median {load['median']:.1f}; "
                 f"1-minute load average, sampled during the run)" if load else "not recorded")
    return [("created", result.meta.get("created", "")), ("commit", commit),
            ("profile", result.meta.get("profile", "custom")),
            ("machine", f"{m.get('processor', '')}, {m.get('cpu_count_logical')} logical "
                        f"CPUs ({m.get('cpu_count_physical')} cores), {m.get('memory_gb')} GB, "
                        f"Python {m.get('python')}"),
            ("machine load", load_text),
            ("engines run", ", ".join(ran_engines(result)) or "none"),
            ("scenarios", str(len(result.meta.get("scenarios", [])))),
            ("parity + timing", f"{result.meta.get('wall_seconds', 0):.0f} s wall time")]


def _html(result, sections) -> str:
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             "<title>hashtable-lab report</title>", f"<style>{CSS}</style></head><body>",
             "<h1>hashtable-lab report</h1><dl class='facts'>"]
    parts += [f"<dt>{escape(k)}</dt><dd>{inline(v)}</dd>" for k, v in _header_facts(result)]
    parts.append("</dl><p>Data: <a href='parity.csv'>parity.csv</a>, "
                 "<a href='perf.csv'>perf.csv</a>, <a href='bench.json'>bench.json</a>, "
                 "<a href='report.md'>report.md</a></p>")
    for title, paras, items in sections:
        parts.append(f"<h2>{escape(title)}</h2>")
        parts += [f"<p>{inline(p)}</p>" for p in paras]
        for kind, payload in items:
            if kind == "image":
                parts.append(f"<p><img src='{escape(payload)}' alt='{escape(payload)}'></p>")
            elif kind == "note":
                parts.append(f"<p class='note'>{inline(payload)}</p>")
            elif kind == "list":
                parts.append("<ul>" + "".join(f"<li>{inline(x)}</li>" for x in payload)
                             + "</ul>")
            elif kind == "links":
                parts.append("<ul>" + "".join(f"<li><a href='{escape(href)}'>{escape(text)}"
                                              f"</a></li>" for text, href in payload)
                             + "</ul>")
            else:
                parts.append(html_table(payload, tall=kind == "tall"))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _markdown(result, sections) -> str:
    lines = ["# hashtable-lab report", ""]
    lines += [f"- **{k}**: {v}" for k, v in _header_facts(result)]
    lines += ["", "Data: [parity.csv](parity.csv), [perf.csv](perf.csv), "
                  "[bench.json](bench.json), [index.html](index.html)", ""]
    for title, paras, items in sections:
        lines += [f"## {title}", ""]
        for p in paras:
            lines += [p, ""]
        for kind, payload in items:
            if kind == "image":
                lines += [f"![{payload}]({payload})", ""]
            elif kind == "note":
                lines += [f"_{payload}_", ""]
            elif kind == "list":
                lines += [f"- {x}" for x in payload] + [""]
            elif kind == "links":
                lines += [f"- [{text}]({href})" for text, href in payload] + [""]
            else:
                lines += [markdown(payload, max_rows=300), ""]
    return "\n".join(lines)


def report_kind(meta: dict) -> str:
    """What kind of run a report folder holds (its profile and any narrowing), so one kind
    never silently replaces another."""
    kind = meta.get("profile") or ("quick" if meta.get("quick") else "custom")
    if meta.get("selection"):
        kind += " (" + "; ".join(f"{k}: {', '.join(v)}"
                                 for k, v in sorted(meta["selection"].items())) + ")"
    return kind


def existing_kind(out_dir: str) -> str | None:
    """The kind of report already in `out_dir`, or None when there is none."""
    path = os.path.join(out_dir, "bench.json")
    try:
        with open(path, encoding="utf-8") as f:
            return report_kind(json.load(f))
    except (OSError, ValueError):
        return None
