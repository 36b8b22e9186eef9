"""The report's PNG charts (matplotlib, Agg backend). Each function writes one file and
returns None, or returns the reason it has nothing to draw (the report prints that instead)."""
from __future__ import annotations

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

STATUS_COLORS = {"pass": "#4caf50", "known_divergence": "#ff9800", "fail": "#e53935",
                 "skipped": "#bdbdbd"}
DPI = 110


def _save(fig, path: str) -> None:
    # bbox_inches="tight" grows the canvas to fit long tick labels and outside legends.
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def _engine_colors(engines) -> dict:
    cmap = plt.get_cmap("tab10")
    return {e: cmap(i % 10) for i, e in enumerate(engines)}


def parity_matrix(summary: pd.DataFrame, path: str) -> str | None:
    """Engine x scenario grid coloured by status, annotated with the worst ulp error."""
    if summary.empty:
        return "no parity results"
    engines = list(dict.fromkeys(summary["engine"]))
    scenarios = list(dict.fromkeys(summary["scenario"]))
    fig, ax = plt.subplots(figsize=(2.0 + 1.9 * len(engines), 1.5 + 0.32 * len(scenarios)))
    lookup = {(r.engine, r.scenario): r for r in summary.itertuples()}
    for x, eng in enumerate(engines):
        for y, sc in enumerate(scenarios):
            r = lookup.get((eng, sc))
            status = r.status if r is not None else "skipped"
            ax.add_patch(plt.Rectangle((x, y), 1, 1, facecolor=STATUS_COLORS[status],
                                       edgecolor="white", linewidth=1.5))
            if r is not None and status in ("pass", "fail", "known_divergence"):
                ulp = r.max_ulp
                label = "exact" if ulp == 0 else (f"{ulp:.0f} ulp" if np.isfinite(ulp)
                                                  else "inf ulp")
                ax.text(x + 0.5, y + 0.5, label, ha="center", va="center", fontsize=7)
    ax.set_xlim(0, len(engines))
    ax.set_ylim(len(scenarios), 0)
    ax.set_xticks(np.arange(len(engines)) + 0.5, engines, rotation=20, ha="right")
    ax.set_yticks(np.arange(len(scenarios)) + 0.5, scenarios, fontsize=7)
    ax.set_xlabel("engine")
    ax.set_ylabel("scenario")
    ax.set_title("Parity vs the numpy reference (cell text: worst error in float32 ulp)")
    ax.legend(handles=[Patch(color=c, label=s) for s, c in STATUS_COLORS.items()],
              loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="status")
    _save(fig, path)
    return None


def _grouped_bars(ax, table: pd.DataFrame, colors: dict, log: bool = True):
    """Bars for a (category x engine) table."""
    cats, engines = list(table.index), list(table.columns)
    width = 0.8 / max(len(engines), 1)
    for i, eng in enumerate(engines):
        ax.bar(np.arange(len(cats)) + (i - (len(engines) - 1) / 2) * width,
               table[eng].to_numpy(dtype=float), width, label=eng, color=colors[eng])
    ax.set_xticks(np.arange(len(cats)), cats, rotation=20, ha="right")
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="engine", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))


def throughput(perf: pd.DataFrame, path: str) -> str | None:
    """Median ids/s per op and engine (one thread, over every scenario running the op)."""
    df = perf[(perf["threads"] == 1) & perf["ids_per_s"].notna()]
    if df.empty:
        return "no timed ops with ids"
    table = df.pivot_table(index="op", columns="engine", values="ids_per_s", aggfunc="median")
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(table) + 3), 4.8))
    _grouped_bars(ax, table, _engine_colors(sorted(table.columns)))
    ax.set_xlabel("op")
    ax.set_ylabel("throughput (ids/s, log scale)")
    ax.set_title("Throughput per engine and op (1 thread; median over scenarios)")
    _save(fig, path)
    return None


def speedup(perf: pd.DataFrame, path: str, reference: str = "numpy") -> str | None:
    """Left: speedup over the numpy engine on the same scenario op. Right: engine time over
    dense-take (or tofile/fromfile) time in the same run."""
    # ops without ids (size) take microseconds: their ratios are noise
    df = perf[(perf["threads"] == 1) & (perf["n_ids"] > 0)]
    if df.empty:
        return "no timed ops"
    key = ["scenario", "op_index"]
    ref = df[df["engine"] == reference].set_index(key)["median_s"]
    others = df[df["engine"] != reference]
    colors = _engine_colors(sorted(df["engine"].unique()))   # same colour in both panels
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 4.8))
    fig.subplots_adjust(wspace=0.5)
    if len(ref) and len(others):
        joined = others.join(ref.rename("ref_s"), on=key).dropna(subset=["ref_s"])
        joined = joined.assign(speedup=joined["ref_s"] / joined["median_s"])
        table = joined.pivot_table(index="op", columns="engine", values="speedup",
                                   aggfunc="median")
        if not table.empty:
            _grouped_bars(ax1, table, colors)
            ax1.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    if not ax1.has_data():
        ax1.text(0.5, 0.5, f"no engine besides {reference} passed parity with timings",
                 ha="center", va="center", transform=ax1.transAxes)
        ax1.set_xticks([])
        ax1.set_yticks([])
    ax1.set_xlabel("op")
    ax1.set_ylabel(f"speedup over the {reference} engine (x, log)")
    ax1.set_title(f"Speedup vs the {reference} reference engine (median)")
    ratios = df.dropna(subset=["ratio_to_baseline"]).pivot_table(
        index="op", columns="engine", values="ratio_to_baseline", aggfunc="median")
    if not ratios.empty:
        _grouped_bars(ax2, ratios, colors)
        ax2.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax2.set_xlabel("op")
    ax2.set_ylabel("engine time / baseline time (x, log; lower is better)")
    ax2.set_title("Cost vs dense take (save/restore: tofile/fromfile)")
    _save(fig, path)
    return None


def thread_scaling(perf: pd.DataFrame, path: str) -> str | None:
    """ids/s against threads, one line per engine and scenario op that ran at >1 thread."""
    df = perf.dropna(subset=["ids_per_s"]).copy()
    df["family"] = [f"{b}{_without(p, 'threads')}:{op}" for b, p, op in
                    zip(df["base_scenario"], df["params"], df["op"])]
    lines = [(key, g.sort_values("threads")) for key, g in df.groupby(["engine", "family"])
             if g["threads"].nunique() > 1]
    if not lines:
        return ("no engine ran a scenario at more than one thread count (only engines "
                "declaring `threads` do)")
    fig, ax = plt.subplots(figsize=(9, 5))
    for (engine, family), g in lines:
        ax.plot(g["threads"], g["ids_per_s"], marker="o", label=f"{engine}: {family}")
    ax.set_xticks(sorted(df["threads"].unique()))
    ax.set_xlabel("threads")
    ax.set_ylabel("throughput (ids/s)")
    ax.set_title("Thread scaling")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)
    return None


def _without(params_json: str, key: str) -> str:
    import json
    params = {k: v for k, v in json.loads(params_json or "{}").items() if k != key}
    return ("[" + ",".join(f"{k}={v}" for k, v in params.items()) + "]") if params else ""


def batch_scaling(perf: pd.DataFrame, path: str, base: str = "lookup_sweep") -> str | None:
    """Lookup ids/s against batch size, one panel per dim, one line per engine."""
    df = perf[(perf["base_scenario"] == base) & perf["ids_per_s"].notna()]
    if df.empty or df["batch_size"].nunique() < 2:
        return f"the {base} scenario was not timed at two or more batch sizes"
    dims = sorted(d for d in df["dim"].dropna().unique())
    colors = _engine_colors(list(dict.fromkeys(df["engine"])))
    fig, axes = plt.subplots(1, len(dims), figsize=(3.4 * len(dims) + 1, 4.2), sharey=True,
                             squeeze=False)
    for ax, dim in zip(axes[0], dims):
        for engine, g in df[df["dim"] == dim].groupby("engine"):
            g = g.sort_values("batch_size")
            ax.plot(g["batch_size"], g["ids_per_s"], marker="o", label=engine,
                    color=colors[engine])
        ax.set_xscale("log")
        ax.set_yscale("log")
        sizes = sorted(df["batch_size"].unique())
        ax.set_xticks(sizes, [f"{int(b):,}" for b in sizes], minor=False)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"dim {int(dim)}")
        ax.set_xlabel("batch size (ids per call, log)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("lookup throughput (ids/s, log)")
    axes[0][-1].legend(title="engine", fontsize=8)
    fig.suptitle("Lookup batch-size scaling")
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
    for (bench, params), g in series:
        g = g.assign(x=g["commit"].map(pos)).sort_values("x")
        ax.plot(g["x"], g["value"] * 1e3, marker="o",
                label=f"{bench.split('.')[-1]} ({params})")
    ax.set_xticks(range(len(order)), list(order.index), rotation=30, ha="right")
    ax.set_xlabel("commit (oldest to newest)")
    ax.set_ylabel("time per call (ms, log)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title(f"asv history ({len(series)} of "
                 f"{hist.groupby(['benchmark', 'params']).ngroups} series)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)
    return None
