"""Folded stacks: `frame;frame;frame -> cost`, the input of flame graphs, and what the lab
derives from them (per-function inclusive and self costs, sums, means, sub-trees).

Two sources:
- callgrind dumps (`from_dump`): callgrind records, per function, its self cost and the
  inclusive cost of each caller -> callee edge, not whole stacks. The stacks are rebuilt from
  the call graph by splitting each function's cost among its callers' paths in proportion
  (the usual assumption of call-graph profilers: a callee costs the same per call whoever
  calls it). For a call tree without recursion the per-function inclusive costs come out
  exactly as callgrind counted them. Recursion: a call back into a function already on the
  path is not followed (its cost is already that function's), and the callee's share is
  reduced by what it spends calling back into the path; every path's share is normalised
  so that the stacks add up to the dump's total. Paths under `min_share` of the total are
  not split further (their cost stays in their top frame).
- py-spy's raw output (`read_pyspy`), which is already folded (`frame (file:line);... N`).

Frame names are shortened (`short_name`: no parameter lists, no recursion marks) so that the
stacks stay readable and one function keeps one name however it is called.
"""
from __future__ import annotations

import re

from lab.explain.callgrind_out import Dump

SEP = ";"
_RECURSION = re.compile(r"'\d+$")


def short_name(name: str) -> str:
    """A C/C++ function name without its parameter lists and callgrind's `'N` recursion mark:
    `ns::Table::lookup(long const*, long, float*) const` -> `ns::Table::lookup`, the lambda
    of `f(int)` -> `f::{lambda#1}`."""
    text = _RECURSION.sub("", name).replace("operator()", "operator\x00")
    out, depth = [], 0
    for c in text:
        if c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(c)
    text = "".join(out).replace("operator\x00", "operator()")
    text = re.sub(r"\s+const\b", "", text)            # cv-qualifiers of methods
    text = re.sub(r"\s+", " ", text).strip()
    return text.replace(SEP, ":") or name


def from_dump(dump: Dump, weigh, min_share: float = 1e-4, max_depth: int = 256
              ) -> dict[str, float]:
    """Folded stacks of one callgrind dump; `weigh(events: dict) -> float` turns a cost
    vector into one number (e.g. `lab.timing.counters.cost`)."""
    def w(vec):
        return float(weigh(dump.vector(vec)))

    own = {name: w(f.self_cost) for name, f in dump.functions.items()}
    edges: dict[str, list] = {}
    called = set()
    for (caller, callee), (_, vec) in dump.calls.items():
        if caller == callee:
            continue                      # direct recursion: already in the caller's own costs
        edges.setdefault(caller, []).append((callee, w(vec)))
        called.add(callee)
    reach = {name: own.get(name, 0.0) + sum(c for _, c in edges.get(name, ()))
             for name in dump.functions}
    total = w(dump.totals)
    roots = [n for n in dump.functions if n not in called and reach[n] > 0]
    if not roots and reach:
        roots = [max(reach, key=reach.get)]
    root_sum = sum(reach[r] for r in roots)
    out: dict[str, float] = {}
    if total <= 0 or root_sum <= 0:
        return out
    floor = total * min_share

    def emit(path, value):
        key = SEP.join(path)
        out[key] = out.get(key, 0.0) + value

    def kept(name, on_path) -> float:
        """The share of `name`'s cost that is not a call back into the path (recursion
        through other functions: that cost is already its ancestor's)."""
        whole = reach[name]
        if whole <= 0:
            return 0.0
        back = sum(c for callee, c in edges.get(name, ()) if callee in on_path)
        return max(whole - back, 0.0) / whole

    def expand(name, path, weight, on_path):
        if weight <= 0:
            return
        parts = [(callee, cost * kept(callee, on_path | {callee}))
                 for callee, cost in edges.get(name, ()) if callee not in on_path]
        denom = own.get(name, 0.0) + sum(c for _, c in parts)
        if denom <= 0 or weight < floor or len(path) >= max_depth:
            emit(path, weight)
            return
        scale = weight / denom
        if own.get(name, 0.0) > 0:
            emit(path, own[name] * scale)
        for callee, cost in parts:
            share = cost * scale
            if share <= 0:
                continue
            on_path.add(callee)
            expand(callee, path + (short_name(callee),), share, on_path)
            on_path.discard(callee)

    for root in roots:
        expand(root, (short_name(root),), reach[root] * total / root_sum, {root})
    return out


def read_pyspy(path: str) -> dict[str, float]:
    """py-spy's `--format raw` file: one `stack count` per line."""
    out: dict[str, float] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if stack and count.isdigit():
                out[stack] = out.get(stack, 0.0) + float(count)
    return out


def below(folded: dict[str, float], frame_matches) -> dict[str, float]:
    """The stacks through the first frame for which `frame_matches(frame)` is true, cut so
    that frame is their root; the other stacks are dropped."""
    out: dict[str, float] = {}
    for stack, value in folded.items():
        frames = stack.split(SEP)
        for i, frame in enumerate(frames):
            if frame_matches(frame):
                key = SEP.join(frames[i:])
                out[key] = out.get(key, 0.0) + value
                break
    return out


def total(folded: dict[str, float]) -> float:
    return float(sum(folded.values()))


def scaled(folded: dict[str, float], factor: float) -> dict[str, float]:
    return {k: v * factor for k, v in folded.items()}


def summed(many) -> dict[str, float]:
    out: dict[str, float] = {}
    for folded in many:
        for k, v in folded.items():
            out[k] = out.get(k, 0.0) + v
    return out


def mean(many: list) -> dict[str, float]:
    """The per-call average of several calls' stacks."""
    return scaled(summed(many), 1.0 / len(many)) if many else {}


def pruned(folded: dict[str, float], min_share: float) -> dict[str, float]:
    """Stacks of at least `min_share` of the total; the others are cut back to their longest
    prefix that carries that much (so nothing is lost, only detail)."""
    whole = total(folded)
    if whole <= 0:
        return dict(folded)
    floor = whole * min_share
    weight: dict[str, float] = {}
    for stack, value in folded.items():
        frames = stack.split(SEP)
        for i in range(1, len(frames) + 1):
            prefix = SEP.join(frames[:i])
            weight[prefix] = weight.get(prefix, 0.0) + value
    out: dict[str, float] = {}
    for stack, value in folded.items():
        frames = stack.split(SEP)
        while len(frames) > 1 and weight[SEP.join(frames)] < floor:
            frames = frames[:-1]
        key = SEP.join(frames)
        out[key] = out.get(key, 0.0) + value
    return out


def functions(folded: dict[str, float]) -> dict[str, dict]:
    """{frame: {"inclusive": cost of every stack through it (once per stack), "self": cost of
    the stacks it ends}}."""
    out: dict[str, dict] = {}
    for stack, value in folded.items():
        frames = stack.split(SEP)
        for frame in set(frames):
            out.setdefault(frame, {"inclusive": 0.0, "self": 0.0})["inclusive"] += value
        out[frames[-1]]["self"] += value
    return out


def children(folded: dict[str, float]) -> dict[str, dict[str, float]]:
    """{frame: {callee frame: cost through that edge}} over all stacks."""
    out: dict[str, dict[str, float]] = {}
    for stack, value in folded.items():
        frames = stack.split(SEP)
        for parent, child in zip(frames, frames[1:]):
            if parent == child:
                continue
            edge = out.setdefault(parent, {})
            edge[child] = edge.get(child, 0.0) + value
    return out
