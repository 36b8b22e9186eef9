"""Per-op profiles: where an op's cost goes, function by function, as the bench JSON keeps it
(top-level `profiles`) and `hashlab explain` shows it.

A profile is a plain dict:
- `unit`: what the numbers are ("estimated cycles per call" from callgrind, "seconds per
  call" from py-spy's samples);
- `calls`: how many calls it averages over; `total`: the op's cost per call;
- `folded`: folded stacks (`lab.explain.folded`), per call, small branches cut back to
  their callers (`MIN_SHARE` of the total);
- `where`: frame -> `file:line` (or the ELF object without debug information).
"""
from __future__ import annotations

from lab.explain import folded as fold

CYCLES = "estimated cycles per call"
SECONDS = "seconds per call"
MIN_SHARE = 1e-3
KEY = ("engine", "scenario", "op", "op_index", "threads")
# A function whose inclusive cost is nearly all one callee's is a wrapper: lists of the
# functions that matter skip it and show the callee.
WRAPPER_SHARE = 0.95


def from_dumps(dumps: list, min_share: float = MIN_SHARE) -> dict:
    """The profile of one op from its calls' callgrind dumps (`callgrind_out.Dump`)."""
    from lab.timing.counters import cost
    per_call = [fold.from_dump(d, cost) for d in dumps]
    avg = fold.pruned(fold.mean(per_call), min_share)
    where: dict[str, str] = {}
    for d in dumps:
        for name, f in d.functions.items():
            short = fold.short_name(name)
            if short not in where or (where[short].count(":") < f.where().count(":")):
                where[short] = f.where()
    frames = fold.functions(avg)
    return {"unit": CYCLES, "calls": len(dumps), "total": fold.total(avg), "folded": avg,
            "where": {k: where.get(k, "?") for k in frames}}


def from_samples(folded: dict, calls: int, seconds_per_sample: float,
                 min_share: float = MIN_SHARE) -> dict:
    """The profile of one op from py-spy's samples of `calls` calls (stacks cut at the op)."""
    per_call = fold.scaled(folded, seconds_per_sample / max(calls, 1))
    avg = fold.pruned(per_call, min_share)
    where = {}
    for frame in fold.functions(avg):
        name, _, rest = frame.partition(" (")
        where[frame] = rest[:-1] if rest.endswith(")") else "?"
    return {"unit": SECONDS, "calls": calls, "total": fold.total(avg), "folded": avg,
            "where": where}


def keyed(data: dict) -> dict[tuple, dict]:
    """{(engine, scenario, op, op_index, threads): profile} of a bench file's `profiles`
    (entries that are not well-formed are left out: profiles explain, they never gate)."""
    out = {}
    for entry in data.get("profiles") or ():
        if not isinstance(entry, dict) or not isinstance(entry.get("folded"), dict):
            continue
        try:
            key = tuple(entry[k] for k in KEY)
        except KeyError:
            continue
        out[key] = entry
    return out


def top_functions(profile: dict, n: int = 10) -> list[dict]:
    """The `n` functions with the largest inclusive cost, wrappers skipped (a function whose
    cost is at least WRAPPER_SHARE one callee's): [{name, where, inclusive, self, share}]."""
    stacks = profile["folded"]
    whole = fold.total(stacks) or 1.0
    frames = fold.functions(stacks)
    edges = fold.children(stacks)
    rows = []
    for name, cost in frames.items():
        kids = edges.get(name, {})
        if kids and max(kids.values()) >= WRAPPER_SHARE * cost["inclusive"]:
            continue
        rows.append({"name": name, "where": profile.get("where", {}).get(name, "?"),
                     "inclusive": cost["inclusive"], "self": cost["self"],
                     "share": cost["inclusive"] / whole})
    rows.sort(key=lambda r: (-r["inclusive"], r["name"]))
    return rows[:n]
