"""`hashlab explain SCENARIO [--engines ...] [--op OP]`: where each op's cost goes, per engine
(docs/investigating.md).

For each variant of the scenario, each engine and each op: instructions, D1 and LL misses
and branch mispredictions per id counted under callgrind's cache model, beside the same
figures for the op's baseline; the functions with the largest inclusive cost (file:line)
and the hottest source lines; a wall-clock flame graph from py-spy (native frames included,
Python engines too); peak memory and bytes allocated per call. Prints a summary and writes
OUT/explain.json, OUT/index.html and the SVGs (default OUT: reports/explain/SCENARIO; the HTML
report links it)."""
from __future__ import annotations

import json
import os

from lab.commands.common import UsageError, engines_of, split

NAME = "explain"
HELP = "where each op's cost goes: counted per id, flame graphs, memory"
DESCRIPTION = __doc__
DEFAULT_ROOT = os.path.join("reports", "explain")


def setup(p) -> None:
    p.add_argument("scenario", help="a catalog scenario (`hashlab scenarios`) or a scenario "
                                    "file (TOML/JSON)")
    p.add_argument("--engines", nargs="+", metavar="ENGINE",
                   help="engines to explain (default: native-cpu)")
    p.add_argument("--op", nargs="+", metavar="OP",
                   help="only these ops (the scenario still runs all of them)")
    p.add_argument("--steps", type=int, default=3,
                   help="measured steps per variant (default 3, at most the scenario's own)")
    p.add_argument("--seconds", type=float, default=2.0,
                   help="wall-clock sampling per op and variant (default 2)")
    p.add_argument("--quick", action="store_true", help="the scenario at its quick size")
    p.add_argument("--no-memory", action="store_true", help="leave out the memory pass")
    p.add_argument("--out", help=f"output folder (default {DEFAULT_ROOT}/SCENARIO)")


def _variants(args):
    from lab import scenarios
    try:
        if os.path.exists(args.scenario):            # a user's file: its first scenario
            pool = scenarios.load_file(args.scenario)[:1]
            found = scenarios.select(None, quick=args.quick, scenarios=pool)
        else:
            found = scenarios.select([args.scenario], quick=args.quick)
    except scenarios.ScenarioError as exc:
        raise UsageError(f"explain: {exc}") from exc
    if not 1 <= args.steps <= 1000:
        raise UsageError(f"--steps must be in [1, 1000], got {args.steps}")
    if not 0 < args.seconds <= 600:
        raise UsageError(f"--seconds must be in (0, 600], got {args.seconds}")
    return [v.with_overrides({"steps": min(v.steps, args.steps)}) for v in found]


def run(args) -> int:
    from lab.explain import page, summary
    from lab.explain.run import JSON_NAME, explain
    from lab.scenarios.execute import unsupported_reason
    variants = _variants(args)
    ops = split(args.op)
    known = {o.op for v in variants for o in v.ops}
    if ops and not set(ops) <= known:
        raise UsageError(f"--op: {', '.join(sorted(set(ops) - known))} not in "
                         f"{args.scenario} (its ops: {', '.join(sorted(known))})")
    if not args.engines:
        args.engines = ["native-cpu"]
    choices, _ = engines_of(args)
    usable = []
    for choice in choices:
        why = unsupported_reason(choice.capabilities, variants[0])
        if why:
            print(f"skipping engine {choice.label}: cannot run {args.scenario}: {why}")
        else:
            usable.append(choice)
    if not usable:
        raise UsageError(f"explain: no selected engine can run {args.scenario}")
    name = variants[0].base_name
    out = args.out or os.path.join(DEFAULT_ROOT, name)
    data = explain(name, variants, usable, out, ops, args.seconds, not args.no_memory,
                   progress=lambda m: print(m, flush=True))
    data["command"] = "hashlab explain " + " ".join(
        [args.scenario] + (["--engines", *[c.label for c in usable]])
        + (["--op", *ops] if ops else []) + (["--quick"] if args.quick else []))
    with open(os.path.join(out, JSON_NAME), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    with open(os.path.join(out, "index.html"), "w", encoding="utf-8") as f:
        f.write(page.render(data))
    print(summary.render(data, out))
    return 0
