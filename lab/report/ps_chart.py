"""The PS-scaling chart: throughput of the `sharded_*` scenarios against the number of
parameter-server tasks (0 = the op library without a cluster), one panel per scenario, one
line per engine and op. Engines that cannot shard ran one local table at every ps value, so
their lines are the single-process baseline; the step from ps=0 to ps=1 is the cost of the RPC
hop. What an in-process cluster on a small machine can and cannot say: docs/tfops.md."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

DPI = 110


def _ps_of(params_json: str):
    return json.loads(params_json or "{}").get("ps")


def ps_scaling(perf: pd.DataFrame, path: str) -> str | None:
    """Write the chart to path; or return why there is nothing to draw."""
    df = perf.dropna(subset=["ids_per_s"]).copy()
    df["ps"] = [_ps_of(p) for p in df["params"]]
    df = df[df["ps"].notna()]
    if df.empty:
        return "no scenario swept `ps` (the sharded_* scenarios do)"
    bases = sorted(df["base_scenario"].unique())
    fig, axes = plt.subplots(1, len(bases), figsize=(6.5 * len(bases), 4.8), squeeze=False)
    for ax, base in zip(axes[0], bases):
        sub = df[df["base_scenario"] == base]
        for (engine, op), g in sub.groupby(["engine", "op"]):
            g = g.sort_values("ps")
            ax.plot(g["ps"], g["ids_per_s"], marker="o", label=f"{engine}: {op}")
        ticks = sorted(sub["ps"].unique())
        ax.set_xticks(ticks, ["local" if t == 0 else str(int(t)) for t in ticks])
        ax.set_yscale("log")
        ax.set_xlabel("parameter-server tasks (in-process cluster on loopback)")
        ax.set_ylabel("throughput (ids/s)")
        ax.set_title(base)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Scaling over parameter-server tasks")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return None


def rpc_hop_table(perf: pd.DataFrame) -> pd.DataFrame:
    """Per engine, scenario and op of the sharded runs: median seconds per call at each ps value
    and the ratio of ps=1 to ps=0 (what going through the runtime and gRPC costs)."""
    df = perf.copy()
    df["ps"] = [_ps_of(p) for p in df["params"]]
    df = df[df["ps"].notna()]
    if df.empty:
        return pd.DataFrame()
    wide = df.pivot_table(index=["engine", "base_scenario", "op"], columns="ps",
                          values="median_s", aggfunc="median")
    wide.columns = [f"ps={int(c)} s" for c in wide.columns]
    if "ps=0 s" in wide and "ps=1 s" in wide:
        wide["rpc hop (ps=1 / ps=0)"] = wide["ps=1 s"] / wide["ps=0 s"]
    return wide.reset_index()
