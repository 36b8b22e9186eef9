"""The PS-scaling chart and table: the `sharded_*` scenarios against the number of
parameter-server tasks (0 = the op library without a cluster, "local").

The chart has one panel per scenario and one line per engine and op, in the report's style
(`style`): each engine in its own colour, the same in every panel and every other chart; each
op in its own line style and marker, the same in every panel; error bars for the 95%
confidence interval of the median; unstable timings circled; log axes labelled with their
units and direction. Engines that cannot shard ran one local table at every ps value, so their
lines are the single-process baseline; the step from local to ps=1 is the cost of the RPC hop.
What an in-process cluster on a small machine can and cannot say: docs/tfops.md.
"""
from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lab.report import charts
from lab.report.style import DOWN, HIGHER, engine_color, log_axis
from lab.report.tables import duration

OP_STYLES = (("-", "o"), ("--", "s"), (":", "D"), ("-.", "^"), ((0, (5, 1, 1, 1)), "v"))


def _ps_of(params_json: str):
    return json.loads(params_json or "{}").get("ps")


def _sharded(perf: pd.DataFrame) -> pd.DataFrame:
    """The rows of scenarios that swept `ps`, with `ps` and `_series`: the op (and the
    variant's other parameters, if any), which the chart gives one line style."""
    df = perf.copy()
    df["ps"] = [_ps_of(p) for p in df["params"]]
    df = df[df["ps"].notna()]
    variant = [charts.params_label(p, drop=("ps",)) for p in df["params"]]
    return df.assign(_series=[f"{op} ({v})" if v else op for op, v in zip(df["op"], variant)])


def _ps_label(ps) -> str:
    return "local" if ps == 0 else str(int(ps))


def ps_scaling(perf: pd.DataFrame, path: str) -> str | None:
    """Write the chart to path; or return why there is nothing to draw."""
    df = _sharded(perf.dropna(subset=["ids_per_s"]))
    if df.empty:
        return "no scenario swept `ps` (the sharded_* scenarios do)"
    bases = sorted(df["base_scenario"].unique())
    engines = list(dict.fromkeys(df["engine"]))
    ops = list(dict.fromkeys(df["_series"]))
    op_style = {op: OP_STYLES[i % len(OP_STYLES)] for i, op in enumerate(ops)}
    ci_all = charts.throughput_ci(df)
    fig, axes = plt.subplots(1, len(bases), figsize=(5.6 * len(bases) + 0.6, 4.8),
                             squeeze=False, layout="constrained")
    for ax, base in zip(axes[0], bases):
        sub = df[df["base_scenario"] == base]
        seen = list(sub["ids_per_s"])
        for (engine, op, _), g in sub.groupby(["engine", "_series", "op_index"], sort=False):
            g = g.sort_values("ps")
            color = engine_color(engine)
            linestyle, marker = op_style[op]
            ax.plot(g["ps"], g["ids_per_s"], color=color, linestyle=linestyle, marker=marker,
                    label=f"{engine}: {op}")
            ci = charts.throughput_ci(g)
            if ci is not None:
                lo, hi = ci
                ok = lo.notna() & hi.notna()
                ax.errorbar(g["ps"][ok], g["ids_per_s"][ok],
                            yerr=[(g["ids_per_s"] - lo)[ok].clip(lower=0),
                                  (hi - g["ids_per_s"])[ok].clip(lower=0)],
                            fmt="none", ecolor=color, elinewidth=1, capsize=3)
                seen += list(lo[ok]) + list(hi[ok])
            shaky = g[charts.unstable_mask(g)]
            if len(shaky):
                ax.scatter(shaky["ps"], shaky["ids_per_s"], s=110, facecolors="none",
                           edgecolors="black", linewidths=0.8, zorder=3)
        ticks = sorted(sub["ps"].unique())
        ax.set_xticks(ticks, [_ps_label(t) for t in ticks])
        log_axis(ax, "y", "si", seen)
        ax.set_xlabel("parameter-server tasks (in-process cluster on loopback)", fontsize=8)
        ax.set_ylabel(f"throughput (ids/s, log)\n→ {HIGHER}", fontsize=8)
        sizes = sorted(set(sub["n_ids"])) if "n_ids" in sub.columns else []
        per_call = f": {int(sizes[0]):,} ids per call" if len(sizes) == 1 else ""
        ax.set_title(f"{base}{per_call}", fontsize=9)
        ax.grid(alpha=0.3, which="both")
    handles = [Patch(color=engine_color(e), label=e) for e in engines]
    handles += [Line2D([], [], color="black", linestyle=op_style[op][0],
                       marker=op_style[op][1], label=f"op: {op}") for op in ops]
    if charts.unstable_mask(df).any():
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=10,
                              markerfacecolor="none", markeredgecolor="black",
                              label="circled: unstable (timing spread too wide to trust)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4),
               fontsize=8, frameon=False)
    fig.suptitle("Scaling over parameter-server tasks "
                 f"({charts.ci_note(ci_all is not None)})", fontsize=10)
    charts._save(fig, path)
    return None


HOP = f"RPC hop: time at ps=1 ÷ local (×) {DOWN}"


def rpc_hop_table(perf: pd.DataFrame) -> pd.DataFrame:
    """Per engine, scenario and op of the sharded runs: the median time per call at each ps
    value with its 95% CI, in readable units, and the RPC hop, the ratio of the time at ps=1
    to the local one (what going through the runtime and gRPC costs)."""
    df = _sharded(perf)
    if df.empty:
        return pd.DataFrame()
    has_ci = {"ci_low_s", "ci_high_s"} <= set(df.columns)
    ps_values = sorted(df["ps"].unique())
    columns = {ps: f"{'local (ps=0)' if ps == 0 else f'ps={int(ps)}'}: time per call"
                   + (" [95% CI]" if has_ci else "") + f" {DOWN}" for ps in ps_values}
    rows = []
    for (engine, base, op, _), g in df.groupby(["engine", "base_scenario", "_series",
                                                "op_index"], sort=False):
        row = {"engine": engine, "scenario": base, "op": op}
        median = {}
        for ps, at in g.groupby("ps"):
            r = at.iloc[0]
            median[ps] = r["median_s"]
            row[columns[ps]] = duration(r["median_s"], r["ci_low_s"] if has_ci else None,
                                        r["ci_high_s"] if has_ci else None)
        if 0 in median and 1 in median and median[0] > 0:
            row[HOP] = median[1] / median[0]
        rows.append(row)
    out = pd.DataFrame(rows)
    return out[["engine", "scenario", "op"] + [columns[p] for p in ps_values]
               + ([HOP] if HOP in out.columns else [])]
