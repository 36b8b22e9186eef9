"""The report's PNG charts (matplotlib, Agg backend). Each function writes one file and returns
None, or returns the reason it has nothing to draw (the report prints that instead).

Every chart uses `style`: one colour per engine everywhere, readable log ticks, and says on
each value axis whether higher or lower is better. Performance charts compare like with like:
one figure per scenario family, one bar per scenario variant and engine, never a median over
scenarios of different sizes. Error bars are the 95% confidence interval of the median when
the timing runner recorded one; hatched bars are runs it marked unstable.
"""
from __future__ import annotations

import json
import math
import re
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from lab.report import style
from lab.report.style import engine_color, log_axis

DPI = 110
REFERENCE = "numpy"
HIGHER, LOWER = style.HIGHER, style.LOWER
UNSTABLE_HATCH = "///"


def _save(fig, path: str) -> None:
    # bbox_inches="tight" grows the canvas to fit long tick labels and outside legends.
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


# ---- parity -----------------------------------------------------------------------------

def _cell_text(r) -> str:
    """What a parity cell says; it always agrees with the cell's colour."""
    ulp = r.max_ulp
    has_ulp = isinstance(ulp, (int, float)) and math.isfinite(ulp)
    if r.status == "pass":
        return "exact" if not has_ulp or ulp == 0 else f"≤{ulp:.0f} ulp"
    if r.status == "known_divergence":
        return f"known: {ulp:.0f} ulp" if has_ulp and ulp > 0 else "known"
    if r.status == "fail":
        note = str(r.note or "")
        if "error:" in note:
            return "FAIL: error"
        return f"FAIL: {ulp:.0f} ulp" if has_ulp and ulp > 0 else "FAIL: differs"
    return _short_reason(r.note)


_SHORT_REASONS = (
    (re.compile(r"optimizer (\w+)\b.* not declared"), r"no \1"),
    (re.compile(r"\bop (\w+)\b.* not declared"), r"no \1"),
    (re.compile(r"\bthreads not declared"), "1 thread only"),
    (re.compile(r"hash filter not declared"), "no filters"),
    (re.compile(r"TTL not declared"), "no TTL"),
    (re.compile(r"fused ops not declared"), "no fused ops"),
    (re.compile(r"dedup not declared"), "no dedup"),
    (re.compile(r"multi-segment"), "no segments"),
)


def _short_reason(note) -> str:
    for pattern, short in _SHORT_REASONS:
        m = pattern.search(str(note))
        if m:
            return "not run: " + m.expand(short)
    return "not run"


def parity_matrix(summary: pd.DataFrame, path: str, ran=None,
                  reference: str = REFERENCE) -> str | None:
    """Scenario x engine grid coloured by status, for the engines that ran (`ran`: their
    labels; default: every engine in `summary`), the reference itself left out."""
    engines = [e for e in dict.fromkeys(summary["engine"]) if e != reference
               and (ran is None or e in ran)]
    if summary.empty or not engines:
        return (f"no engine besides the {reference} reference ran" if not summary.empty
                else "no parity results")
    df = summary[summary["engine"].isin(engines)]
    scenarios = list(dict.fromkeys(df["scenario"]))
    fig, ax = plt.subplots(figsize=(3.0 + 1.5 * len(engines), 1.2 + 0.26 * len(scenarios)))
    lookup = {(r.engine, r.scenario): r for r in df.itertuples()}
    for x, eng in enumerate(engines):
        for y, sc in enumerate(scenarios):
            r = lookup.get((eng, sc))
            status = r.status if r is not None else "skipped"
            ax.add_patch(plt.Rectangle((x, y), 1, 1, facecolor=style.STATUS_COLORS[status],
                                       edgecolor="white", linewidth=1.5))
            text = _cell_text(r) if r is not None else "not run"
            ax.text(x + 0.5, y + 0.5, text, ha="center", va="center", fontsize=7,
                    color="white" if status == "fail" else "black",
                    fontweight="bold" if status == "fail" else "normal")
    ax.set_xlim(0, len(engines))
    ax.set_ylim(len(scenarios), 0)
    ax.xaxis.tick_top()
    ax.set_xticks(np.arange(len(engines)) + 0.5, engines)
    ax.set_yticks(np.arange(len(scenarios)) + 0.5, scenarios, fontsize=7)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(f"Parity with the {reference} reference (cell: worst error in float32 ulp; "
                 f"'not run': the engine cannot run that scenario)", fontsize=9, pad=24)
    labels = {"pass": "pass", "known_divergence": "known divergence", "fail": "fail",
              "skipped": "not run (see the report)"}
    ax.legend(handles=[Patch(color=c, label=labels[s]) for s, c in style.STATUS_COLORS.items()],
              loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="status")
    _save(fig, path)
    return None


# ---- helpers for the performance charts ---------------------------------------------------

def _has(df: pd.DataFrame, *cols) -> bool:
    return all(c in df.columns for c in cols)


def unstable_mask(df: pd.DataFrame) -> pd.Series:
    """True for the timing rows the runner marked unstable (none when it recorded no flag)."""
    if "unstable" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["unstable"].fillna(False).astype(bool)


def throughput_ci(df: pd.DataFrame):
    """(low, high) ids/s from the CI of the median seconds, or None when not recorded."""
    if not _has(df, "ci_low_s", "ci_high_s"):
        return None
    lo = df["n_ids"] / df["ci_high_s"]
    hi = df["n_ids"] / df["ci_low_s"]
    return lo.where(df["ci_high_s"] > 0), hi.where(df["ci_low_s"] > 0)


def ratio_ci(df: pd.DataFrame):
    if not _has(df, "ratio_ci_low", "ratio_ci_high"):
        return None
    return df["ratio_ci_low"], df["ratio_ci_high"]


def params_label(params_json: str, drop=("threads",), plain: str = "") -> str:
    """'batch_size=1,000, dim=8' for a variant; `plain` when it has no parameters."""
    params = {k: v for k, v in json.loads(params_json or "{}").items() if k not in drop}
    if not params:
        return plain
    return ", ".join(f"{k}={v:,}" if isinstance(v, int) and not isinstance(v, bool)
                     else f"{k}={v}" for k, v in params.items())


def _speedups(df: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Rows of the non-reference engines with `speedup` = reference median / engine median
    for the same scenario op (and its CI bounds when both sides have one)."""
    key = ["scenario", "op_index"]
    ref = df[df["engine"] == reference].set_index(key)
    cols = {"median_s": "ref_s"}
    if _has(ref, "ci_low_s", "ci_high_s"):
        cols.update({"ci_low_s": "ref_ci_low_s", "ci_high_s": "ref_ci_high_s"})
    others = df[df["engine"] != reference].join(ref[list(cols)].rename(columns=cols), on=key)
    others = others.dropna(subset=["ref_s"])
    others = others.assign(speedup=others["ref_s"] / others["median_s"])
    if "ref_ci_low_s" in others.columns and _has(others, "ci_low_s", "ci_high_s"):
        others = others.assign(speedup_lo=others["ref_ci_low_s"] / others["ci_high_s"],
                               speedup_hi=others["ref_ci_high_s"] / others["ci_low_s"])
    return others


def _hbars(ax, df: pd.DataFrame, value: str, lo=None, hi=None, engines=(), cats=(),
           origin: float | None = None):
    """Horizontal grouped bars: one group per category (top to bottom), one bar per engine.
    `origin`: ratios start their bars there (1×), so a bar below it points left.
    Returns every plotted value and error-bar end (for the axis limits)."""
    n = max(len(engines), 1)
    height = 0.8 / n
    seen = []
    unstable = unstable_mask(df)
    for i, eng in enumerate(engines):
        for y, cat in enumerate(cats):
            rows = df[(df["engine"] == eng) & (df["_cat"] == cat)]
            if rows.empty:
                continue
            row = rows.iloc[0]
            v = float(row[value])
            if not (math.isfinite(v) and v > 0):
                continue
            pos = y + (i - (n - 1) / 2) * height
            shaky = bool(unstable.loc[rows.index[0]])
            ax.barh(pos, v if origin is None else v - origin, height * 0.92,
                    left=origin, color=engine_color(eng),
                    edgecolor="black" if shaky else "none", linewidth=0.4,
                    hatch=UNSTABLE_HATCH if shaky else None)
            seen.append(v)
            if lo is not None and hi is not None:
                a, b = float(lo.loc[rows.index[0]]), float(hi.loc[rows.index[0]])
                if math.isfinite(a) and math.isfinite(b) and 0 < a <= b:
                    ax.errorbar(v, pos, xerr=[[max(v - a, 0)], [max(b - v, 0)]], fmt="none",
                                ecolor="black", elinewidth=0.8, capsize=2)
                    seen += [a, b]
    ax.set_yticks(range(len(cats)), cats, fontsize=8)
    ax.set_ylim(len(cats) - 0.5, -0.5)
    ax.grid(axis="x", which="both", alpha=0.25)
    return seen


def _legend(fig, engines, any_unstable: bool) -> None:
    handles = [Patch(color=engine_color(e), label=e) for e in engines]
    if any_unstable:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch=UNSTABLE_HATCH,
                             label="unstable (timing spread too wide to trust)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6),
               fontsize=8, frameon=False)


def ci_note(has_ci: bool) -> str:
    return ("error bars: 95% confidence interval of the median" if has_ci
            else "no confidence intervals in this run's data")


# ---- per scenario family ------------------------------------------------------------------

def family(perf: pd.DataFrame, base: str, path: str,
           reference: str = REFERENCE) -> str | None:
    """One scenario family (a catalog scenario and its variants), single-threaded: per op,
    throughput, time relative to the same-run baseline, and speedup over the reference."""
    df = perf[(perf["base_scenario"] == base) & (perf["threads"] == 1) & (perf["n_ids"] > 0)]
    if df.empty:
        return f"{base}: nothing timed at one thread"
    df = df.assign(_cat=[params_label(p, plain=base) for p in df["params"]])
    cats = list(dict.fromkeys(df["_cat"]))
    engines = list(dict.fromkeys(df["engine"]))
    ops = list(dict.fromkeys(zip(df["op_index"], df["op"])))
    names = [op for _, op in ops]
    speed = _speedups(df, reference)
    metrics = [("throughput", f"throughput (ids/s, log)\n→ {HIGHER}"),
               ("cost", f"time ÷ baseline time (×, log)\n← {LOWER}")]
    if not speed.empty:
        metrics.append(("speedup", f"speedup over {reference} (×, log)\n→ {HIGHER}"))
    rows_h = 1.1 + 0.17 * len(cats) * max(len(engines), 1)
    fig, axes = plt.subplots(len(ops), len(metrics), squeeze=False, layout="constrained",
                             figsize=(4.6 * len(metrics) + 2.2, rows_h * len(ops) + 1.2),
                             sharey="row")
    for r, (index, op) in enumerate(ops):
        part = df[df["op_index"] == index]
        sizes = sorted(set(part["n_ids"]))
        unit = "entries" if op in ("save", "restore") else "ids"
        per_call = (f"{int(sizes[0]):,} {unit} per call" if len(sizes) == 1
                    else f"{int(sizes[0]):,}–{int(sizes[-1]):,} {unit} per call")
        title = f"{op}" + (f" (op {index + 1})" if names.count(op) > 1 else "")
        baseline = part["baseline"].dropna().iloc[0] if part["baseline"].notna().any() else None
        for c, (metric, xlabel) in enumerate(metrics):
            ax = axes[r][c]
            if metric == "throughput":
                ci = throughput_ci(part)
                seen = _hbars(ax, part, "ids_per_s", *(ci or (None, None)), engines, cats)
                # room on the left, so the slowest bar is still a visible bar
                log_axis(ax, "x", "si", seen + [min(seen) / 3] if seen else seen)
            elif metric == "cost":
                ci = ratio_ci(part)
                seen = _hbars(ax, part, "ratio_to_baseline", *(ci or (None, None)), engines,
                              cats, origin=1.0)
                log_axis(ax, "x", "times", seen + [1.0])
                ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
                if baseline:
                    xlabel = xlabel.replace("baseline", str(baseline).replace("_", " "))
            else:
                sp = speed[speed["op_index"] == index]
                lo = sp["speedup_lo"] if "speedup_lo" in sp.columns else None
                hi = sp["speedup_hi"] if "speedup_hi" in sp.columns else None
                seen = _hbars(ax, sp, "speedup", lo, hi,
                              [e for e in engines if e != reference], cats, origin=1.0)
                log_axis(ax, "x", "times", seen + [1.0])
                ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_title(f"{title}: {per_call}", fontsize=9)
            if c:
                ax.tick_params(labelleft=False)
    fig.suptitle(f"{base}: one thread, per variant and op "
                 f"({ci_note(throughput_ci(df) is not None)})", fontsize=11)
    _legend(fig, engines, bool(unstable_mask(df).any()))
    _save(fig, path)
    return None


# ---- scaling ----------------------------------------------------------------------------

def thread_scaling(perf: pd.DataFrame, path: str, machine: dict,
                   load: dict | None) -> str | None:
    """ids/s against threads, one line per engine and scenario op that ran at >1 thread,
    with the machine's cores and its load during the run written on the chart."""
    df = perf.dropna(subset=["ids_per_s"])
    df = df[df["n_ids"] > 0].copy()
    df["series"] = [" ".join(x for x in (b, params_label(p), op) if x) for b, p, op in
                    zip(df["base_scenario"], df["params"], df["op"])]
    lines = [(key, g.sort_values("threads")) for key, g in df.groupby(["engine", "series"])
             if g["threads"].nunique() > 1]
    if not lines:
        return ("no engine ran a scenario at more than one thread count (only engines "
                "declaring `threads` do)")
    fig, ax = plt.subplots(figsize=(10, 5.2))
    markers = "osD^v<>ph"
    seen = []
    for i, ((engine, series), g) in enumerate(lines):
        color = engine_color(engine)
        ax.plot(g["threads"], g["ids_per_s"], marker=markers[i % len(markers)], color=color,
                label=f"{engine}: {series}", linestyle=("-", "--", ":", "-.")[i % 4])
        ci = throughput_ci(g)
        if ci is not None:
            lo, hi = ci
            ax.vlines(g["threads"], lo, hi, color=color, linewidth=1)
            seen += [v for v in list(lo) + list(hi) if v == v]
        seen += list(g["ids_per_s"])
        first = g.iloc[0]
        ideal = first["ids_per_s"] * g["threads"] / first["threads"]
        ax.plot(g["threads"], ideal, color=color, linewidth=0.6, alpha=0.5, linestyle=":")
        seen += list(ideal)
    threads = sorted(df["threads"].unique())
    ax.set_xticks(threads)
    ax.set_xlabel("threads")
    log_axis(ax, "y", "si", seen)
    ax.set_ylabel(f"throughput (ids/s, log) — {HIGHER}")
    ax.grid(alpha=0.3, which="both")
    logical, physical = machine.get("cpu_count_logical"), machine.get("cpu_count_physical")
    facts = f"machine: {logical} logical CPUs" + (f" ({physical} physical cores)"
                                                  if physical else "")
    if load:
        facts += (f"; load average (1 min) during the run: {load['min']:.1f}–{load['max']:.1f}"
                  f", median {load['median']:.1f}")
        if logical and load["median"] >= max(logical - 1, 1):
            facts += (f". With a load of {load['median']:.1f} on {logical} CPUs the machine was "
                      f"busy: an extra thread competed for a core already in use instead of "
                      f"adding one, so these lines understate scaling on an idle machine")
    ax.set_title("Thread scaling (thin dotted lines: perfect linear scaling from 1 thread)",
                 fontsize=10)
    ax.text(0.0, -0.16, "\n".join(textwrap.wrap(facts, 120)), transform=ax.transAxes,
            fontsize=8, va="top")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    _save(fig, path)
    return None


def batch_scaling(perf: pd.DataFrame, path: str, base: str = "lookup_sweep") -> str | None:
    """Lookup ids/s against batch size, one panel per dim, one line per engine."""
    df = perf[(perf["base_scenario"] == base) & perf["ids_per_s"].notna()
              & (perf["threads"] == 1)]
    if df.empty or df["batch_size"].nunique() < 2:
        return f"the {base} scenario was not timed at two or more batch sizes"
    dims = sorted(d for d in df["dim"].dropna().unique())
    fig, axes = plt.subplots(1, len(dims), figsize=(3.6 * len(dims) + 1, 4.4), sharey=True,
                             squeeze=False)
    sizes = sorted(df["batch_size"].unique())
    ci_all = throughput_ci(df)
    seen = list(df["ids_per_s"]) + ([v for s in ci_all for v in s if v == v]
                                    if ci_all is not None else [])
    for ax, dim in zip(axes[0], dims):
        for engine, g in df[df["dim"] == dim].groupby("engine", sort=False):
            g = g.sort_values("batch_size")
            color = engine_color(engine)
            ax.plot(g["batch_size"], g["ids_per_s"], marker="o", label=engine, color=color)
            ci = throughput_ci(g)
            if ci is not None:
                ax.vlines(g["batch_size"], ci[0], ci[1], color=color, linewidth=1)
            shaky = g[unstable_mask(g)]
            if len(shaky):
                ax.scatter(shaky["batch_size"], shaky["ids_per_s"], s=90, facecolors="none",
                           edgecolors="black", linewidths=0.8, zorder=3)
        log_axis(ax, "x", "si", sizes)
        ax.set_xticks(sizes, [f"{int(b):,}" for b in sizes])
        log_axis(ax, "y", "si", seen)
        ax.set_title(f"dim {int(dim)}", fontsize=9)
        ax.set_xlabel("batch size (ids per call, log)", fontsize=8)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel(f"lookup throughput (ids/s, log)\n→ {HIGHER}")
    axes[0][-1].legend(title="engine", fontsize=8)
    fig.suptitle(f"Lookup batch-size scaling ({base}, one thread; circled: unstable)",
                 fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return None


def history(hist: pd.DataFrame, path: str, max_series: int = 8) -> str | None:
    """asv results across commits: one line per benchmark/parameter series."""
    if hist.empty:
        return "no asv results found (run `asv run` to record history)"
    hist = hist[hist["benchmark"].str.contains(".time_")]
    if hist.empty or hist["commit"].nunique() < 1:
        return "asv results hold no time_ benchmarks"
    order = hist.groupby("commit")["date"].min().sort_values()
    pos = {c: i for i, c in enumerate(order.index)}
    series = list(hist.groupby(["benchmark", "params"]))[:max_series]
    fig, ax = plt.subplots(figsize=(10, 5))
    for i, ((bench, params), g) in enumerate(series):
        g = g.assign(x=g["commit"].map(pos)).sort_values("x")
        # asv's first parameter is the engine: its colour; the line style tells series apart
        ax.plot(g["x"], g["value"] * 1e3, marker="osD^v"[i % 5], linestyle=("-", "--", ":")[i % 3],
                label=f"{bench.split('.')[-1]} ({params})",
                color=engine_color(str(params).split(",")[0].strip()))
    ax.set_xticks(range(len(order)), list(order.index), rotation=30, ha="right")
    ax.set_xlabel("commit (oldest to newest)")
    log_axis(ax, "y", "plain", [v * 1e3 for (_, _), g in series for v in g["value"]])
    ax.set_ylabel(f"time per call (ms, log) — {LOWER}")
    ax.set_title(f"asv history ({len(series)} of "
                 f"{hist.groupby(['benchmark', 'params']).ngroups} series)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    _save(fig, path)
    return None
