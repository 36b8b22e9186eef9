"""Differential profiles: what got slower inside an op the gate flags.

When both runs carry a profile of a regressed op (simulated runs always do; wall-clock runs
when `hashlab bench --wall-profiles` asked for them), the gate names the functions whose
inclusive cost grew the most, base -> head, with the change and each one's share of the op
before and after, and writes a differential flame graph of the op (`lab.explain.flamegraph`:
grown red, shrunk blue).

Every caller of a function that grew grows as much (the interpreter frames above an engine
call, the engine's entry point above its inner loop), so a function is listed only when its
calls (the growth of its own call edges, added up) carry less than `PASS_THROUGH` of its
growth: the list names where the growth is, not the path to it. Growth under 1% of the op's whole growth (or 0.1% of its cost) is not
named: identical code moves a few cycles between functions as memory lands elsewhere.
"""
from __future__ import annotations

import dataclasses
import os
import re

from lab.explain import flamegraph
from lab.explain import folded as fold
from lab.explain.profiles import keyed

TOP = 5
PASS_THROUGH = 0.9
# Growth too small to name: under this share of the op's whole growth, or of its base cost.
MIN_OF_GROWTH, MIN_OF_OP = 0.01, 0.001


@dataclasses.dataclass(frozen=True)
class FunctionChange:
    name: str
    where: str
    base: float                  # inclusive cost per call before
    head: float                  # and now
    base_share: float            # of the op's cost before
    head_share: float            # and now

    @property
    def delta(self) -> float:
        return self.head - self.base

    @property
    def change(self) -> float:
        return self.head / self.base if self.base > 0 else float("inf")

    def as_dict(self) -> dict:
        return {"name": self.name, "where": self.where, "base": self.base, "head": self.head,
                "delta": self.delta, "change": self.change, "base_share": self.base_share,
                "head_share": self.head_share}


@dataclasses.dataclass
class ProfileDiff:
    key: tuple
    unit: str
    base_total: float
    head_total: float
    functions: list               # FunctionChange, largest growth first
    base_folded: dict
    head_folded: dict
    svg: str | None = None

    def as_dict(self) -> dict:
        return {"unit": self.unit, "base_total": self.base_total,
                "head_total": self.head_total, "svg": self.svg,
                "functions": [f.as_dict() for f in self.functions]}


def diff(key: tuple, base: dict, head: dict, top: int = TOP) -> ProfileDiff:
    """The functions of one op whose inclusive cost grew the most from `base` to `head`
    (two profiles of `lab.explain.profiles`)."""
    b_stacks, h_stacks = base["folded"], head["folded"]
    b_fn, h_fn = fold.functions(b_stacks), fold.functions(h_stacks)
    b_total, h_total = fold.total(b_stacks), fold.total(h_stacks)
    b_edges, h_edges = fold.children(b_stacks), fold.children(h_stacks)

    def inclusive(table, name):
        return table.get(name, {}).get("inclusive", 0.0)

    delta = {name: inclusive(h_fn, name) - inclusive(b_fn, name)
             for name in set(b_fn) | set(h_fn)}
    where = {**base.get("where", {}), **head.get("where", {})}
    floor = max(MIN_OF_GROWTH * (h_total - b_total), MIN_OF_OP * b_total, 0.0)
    grown = []
    for name, d in delta.items():
        if d <= 0 or d < floor:
            continue
        kids = set(b_edges.get(name, {})) | set(h_edges.get(name, {}))
        passed = sum(max(h_edges.get(name, {}).get(k, 0.0) - b_edges.get(name, {}).get(k, 0.0),
                         0.0) for k in kids)
        if passed >= PASS_THROUGH * d:
            continue                      # its growth is its callees'; they are listed
        b, h = inclusive(b_fn, name), inclusive(h_fn, name)
        grown.append(FunctionChange(name, where.get(name, "?"), b, h,
                                    b / b_total if b_total else 0.0,
                                    h / h_total if h_total else 0.0))
    grown.sort(key=lambda f: (-f.delta, f.name))
    return ProfileDiff(key, head.get("unit", base.get("unit", "")), b_total, h_total,
                       grown[:top], b_stacks, h_stacks)


def for_regressions(perf, current: dict, baseline: dict, top: int = TOP) -> dict:
    """{gate key: ProfileDiff} of every REGRESSION row in `perf` (the gate's table) that
    both runs profiled."""
    if perf is None or not len(perf):
        return {}
    cur, base = keyed(current), keyed(baseline)
    out = {}
    for r in perf[perf["verdict"] == "REGRESSION"].itertuples():
        key = (r.engine, r.scenario, r.op, int(r.op_index), int(r.threads))
        if key in cur and key in base:
            out[key] = diff(key, base[key], cur[key], top)
    return out


def _file_name(key: tuple) -> str:
    engine, scenario, op, index, threads = key
    text = f"{engine}-{scenario}-op{index}-{op}-t{threads}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) + ".svg"


def write_svgs(diffs: dict, out_dir: str, names=("base", "head")) -> list[str]:
    """One differential flame graph per regressed op into `out_dir`; sets each diff's `svg`."""
    written = []
    if not diffs:
        return written
    os.makedirs(out_dir, exist_ok=True)
    for key, d in diffs.items():
        engine, scenario, op, index, threads = key
        path = os.path.join(out_dir, _file_name(key))
        change = d.head_total / d.base_total if d.base_total else float("inf")
        flamegraph.write(path, d.head_folded,
                         f"{engine} {scenario} {op} (op {index}, {threads} thread(s)): "
                         f"{names[0]} -> {names[1]}",
                         d.unit.replace(" per call", ""),
                         f"{d.unit}: {d.base_total:.4g} -> {d.head_total:.4g} "
                         f"({change:.3f}x); red: grew, blue: shrank",
                         base=d.base_folded)
        d.svg = path
        written.append(path)
    return written


def short(name: str, width: int = 90) -> str:
    return name if len(name) <= width else name[:width - 3] + "..."


def lines(d: ProfileDiff, indent: str = "    ") -> list[str]:
    """The text under a regression: its top grown functions."""
    if not d.functions:
        return [f"{indent}profile: no function's inclusive cost grew ({d.unit})"]
    out = [f"{indent}grew most ({d.unit}; base -> head, change, share of the op before -> "
           f"after):"]
    for i, f in enumerate(d.functions, 1):
        change = "new" if f.base <= 0 else f"{f.change:.2f}x"
        out.append(f"{indent}  {i}. {short(f.name)} [{f.where}]: {f.base:.4g} -> "
                   f"{f.head:.4g} (+{f.delta:.4g}, {change}); {f.base_share:.1%} -> "
                   f"{f.head_share:.1%} of the op")
    if d.svg:
        out.append(f"{indent}differential flame graph: {d.svg}")
    return out
