"""`hashlab explain`, counted: each op and its baseline under callgrind's cache model (the
simulated cost mode's child and toggle, `lab.timing.simulated`), per id.

Per op: instructions, D1 misses, LL misses, branch mispredictions and the estimated-cycles
cost per unit of work (per id for lookups and filters, per row written for the write ops,
per entry for save and restore) for the engine call and for its baseline (dense take, or
write+fsync / read of the same bytes) side by side; the functions with the largest inclusive
cost (with file:line); the source lines with the largest self cost (code inlined from
headers keeps its own file); and the op's profile (folded stacks) for a flame graph.
"""
from __future__ import annotations

import shutil
import tempfile

import numpy as np

from lab.explain import profiles
from lab.explain.callgrind_out import read
from lab.timing.counters import COUNTER_NAMES, cost, counter
from lab.timing.sampling import baseline_label

WRITE_OPS = ("assign", "assign_add", "apply_gradients", "fused_apply")
ENTRY_OPS = ("save", "restore")
FIGURES = ("cost", *COUNTER_NAMES)
TOP_FUNCTIONS = 10
TOP_LINES = 8


def unit_of(op: str) -> str:
    """What one unit of an op's work is."""
    if op in ENTRY_OPS:
        return "entry"
    if op in WRITE_OPS:
        return "row"
    return "id"


def figures(dumps: list, units: float) -> dict:
    """{figure: per call, "per_unit": {figure: per unit}} averaged over the calls' dumps."""
    if not dumps:
        return {}
    per_call = {}
    for name in FIGURES:
        values = [cost(d.vector(d.totals)) if name == "cost" else counter(d.vector(d.totals),
                                                                           name)
                  for d in dumps]
        per_call[name] = float(np.mean(values))
    out = dict(per_call)
    out["per_unit"] = ({k: v / units for k, v in per_call.items()} if units > 0 else {})
    return out


def hot_lines(dumps: list, n: int = TOP_LINES) -> list[dict]:
    """The source lines with the largest self cost per call: [{where, cost, share}]."""
    total: dict[tuple, float] = {}
    whole = 0.0
    for d in dumps:
        for (path, line), vec in d.lines.items():
            c = cost(d.vector(vec))
            total[(path, line)] = total.get((path, line), 0.0) + c
        whole += cost(d.vector(d.totals))
    rows = sorted(total.items(), key=lambda kv: -kv[1])[:n]
    calls = max(len(dumps), 1)
    return [{"where": f"{path}:{line}", "cost": c / calls, "share": c / whole if whole else 0.0}
            for (path, line), c in rows]


def explain_ops(outcome_entry: dict, labels: dict) -> list[dict]:
    """The counted explanation of every op of one scenario's outcome (the simulated child's
    result: ops with their call labels and sizes), from the dumps in `labels` ({call label:
    dump file})."""
    out = []
    for op in outcome_entry["ops"]:
        mine = [read(labels[lab]) for lab in op["labels"] if lab in labels]
        theirs = [read(labels[baseline_label(lab)]) for lab in op["labels"]
                  if baseline_label(lab) in labels]
        units = float(np.mean(op["n_ids"])) if op["n_ids"] else 0.0
        profile = profiles.from_dumps(mine) if mine else None
        base_profile = profiles.from_dumps(theirs) if theirs else None
        out.append({
            "op": op["op"], "index": op["index"], "unit": unit_of(op["op"]),
            "units_per_call": units, "calls": len(mine), "baseline": op["kind"],
            "engine": figures(mine, units), "baseline_figures": figures(theirs, units),
            "top_functions": profiles.top_functions(profile, TOP_FUNCTIONS) if profile else [],
            "baseline_top_functions": (profiles.top_functions(base_profile, 5)
                                       if base_profile else []),
            "hot_lines": hot_lines(mine), "profile": profile})
    return out


def count(choice, scenarios, workdir: str | None = None) -> dict[str, dict]:
    """{scenario name: {"ops": [...]} or {"error": why}} of one engine, counted in one
    valgrind child."""
    from lab.timing.simulated import count_engine, dump_labels, unavailable_reason
    why = unavailable_reason()
    if why:
        return {s.name: {"error": f"not counted: {why}"} for s in scenarios}
    root = tempfile.mkdtemp(prefix="hashlab-explain-count-", dir=workdir)
    try:
        outcome, _ = count_engine(choice, scenarios, root)
        if outcome is None:
            return {s.name: {"error": "the callgrind child failed (its last lines are printed "
                                      "above)"} for s in scenarios}
        labels = dump_labels(root)
        out = {}
        for entry in outcome:
            if entry.get("error"):
                out[entry["scenario"]] = {"error": entry["error"]}
            else:
                out[entry["scenario"]] = {"ops": explain_ops(entry, labels)}
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)
