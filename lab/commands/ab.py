"""`hashlab ab BASE [HEAD ...]`: the CI gate on builds measured side by side.

BASE and each HEAD are a git ref of this checkout (built once into a cached venv keyed by
commit and patches, as asv does), optionally patched (`REF+FILE.patch`), `current` (this
environment; the default HEAD) or the path of a Python interpreter. All builds run the gate
profile in one time window, round by round (interleaved step by step, or both at once with
`--mode duet`), and each head's ops are gated against the base on their paired rounds
(Wilcoxon signed-rank, Benjamini-Hochberg) beside the change threshold; or, with
`--measure simulated`, counted under callgrind and gated counter by counter.

Exit status: 0 pass, 1 a regression, a new parity failure or a result missing in a head,
2 bad usage, 3 inconclusive (more than a quarter of the ops too noisy to decide; pass
`--allow-inconclusive` to accept it). With several heads, the most severe head's.
"""
from __future__ import annotations

import argparse
import json
import os

from lab.commands.common import UsageError, check_measure

NAME = "ab"
HELP = "gate HEAD against BASE, both measured side by side (builds BASE from a git ref)"
DESCRIPTION = __doc__


def _counter_threshold(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise UsageError(f"--counter-threshold: expected NAME=FACTOR (e.g. ll_misses=1.03), "
                         f"got {text!r}") from None


def _annotations(gate) -> dict:
    """What ab.json keeps of a head's environment, memory and differential profiles."""
    memory = gate.memory
    return {"environment": [{"field": k, "base": b, "head": h} for k, b, h in gate.environment],
            "machines_differ": gate.machines_differ,
            "memory": (json.loads(memory.to_json(orient="records"))
                       if memory is not None else []),
            "differential": [{"engine": k[0], "scenario": k[1], "op": k[2], "op_index": k[3],
                              "threads": k[4], **d.as_dict()}
                             for k, d in gate.profiles.items()]}


def setup(p) -> None:
    from lab.ab import MODES
    from lab.scenarios.profiles import PROFILES
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("base", metavar="BASE",
                   help="git ref (built in the cache; REF+FILE.patch applies a patch first), "
                        "`current`, or a Python interpreter")
    p.add_argument("heads", metavar="HEAD", nargs="*", default=["current"],
                   help="the same kinds, one or more (default: current, this environment)")
    p.add_argument("--mode", choices=MODES, default="interleaved",
                   help="interleaved: the builds' steps in turn, in balanced random order "
                        "(default); duet: both at the same time on separate cores (one "
                        "HEAD)")
    p.add_argument("--measure", choices=("wall", "simulated"), default="wall",
                   help="wall: paired wall-clock rounds (default); simulated: callgrind "
                        "counts of each build, gated counter by counter")
    p.add_argument("--rounds", type=int, metavar="N",
                   help="paired rounds (default: the profile's, at least as many as a single "
                        "op's regression needs to reach significance)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="gate",
                   help="scenarios to measure (default gate)")
    p.add_argument("--engine", default="native-cpu", help="engine (default native-cpu)")
    p.add_argument("--threshold", type=float,
                   help="allowed growth of an op's time (default 1.10x paired; simulated: "
                        "the cost's, 1.10x)")
    p.add_argument("--counter-threshold", action="append", default=[], metavar="NAME=X",
                   help="simulated: one counter's threshold (instructions, d1_misses, "
                        "ll_misses, branch_misses, cost)")
    p.add_argument("--alpha", type=float,
                   help="significance level after Benjamini-Hochberg (default 0.01)")
    p.add_argument("--allow-inconclusive", action="store_true",
                   help="exit 0 instead of 3 when too many ops are too noisy to decide")
    p.add_argument("--seed", type=int, default=0, help="seed of the round order")
    p.add_argument("--out", default=os.path.join("reports", "ab"),
                   help="folder for base.json, head.json and ab.json (default reports/ab)")
    p.add_argument("--cache", help="build cache (default $HASHLAB_AB_CACHE or "
                                   ".hashlab/ab-builds in the checkout)")
    p.add_argument("--cuda", action="store_true",
                   help="also build the CUDA module of git refs (off: only CPU engines)")
    p.add_argument("--verbose", action="store_true", help="also print every op's comparison")
    from lab.commands.gate import add_report_options
    add_report_options(p)


def run(args) -> int:
    from lab.ab import BuildError, BuildSpec, head_labels, run_ab
    from lab.commands.gate import print_result
    from lab.gate import GateUsageError
    if args.rounds is not None and args.rounds < 6:
        raise UsageError(f"--rounds must be >= 6 (a paired test needs them), got {args.rounds}")
    check_measure(args.measure)
    limits = dict(_counter_threshold(t) for t in args.counter_threshold)
    try:
        outcome = run_ab(
            BuildSpec.parse(args.base), [BuildSpec.parse(h) for h in args.heads],
            profile=args.profile, engine=args.engine, mode=args.mode, rounds=args.rounds,
            measure=args.measure, threshold=args.threshold, alpha=args.alpha,
            counter_thresholds=limits or None, allow_inconclusive=args.allow_inconclusive,
            seed=args.seed, cache=args.cache, cuda=args.cuda,
            memory_threshold=args.memory_threshold)
    except (BuildError, GateUsageError, ValueError) as exc:
        raise UsageError(f"ab: {exc}") from exc
    os.makedirs(args.out, exist_ok=True)
    labels = head_labels(len(args.heads))
    for label in labels:                 # differential flame graphs, before ab.json names them
        from lab.gate import differential
        differential.write_svgs(outcome.gates[label].profiles,
                                os.path.join(args.diff_dir or args.out, f"{label}-diff"),
                                names=("base", label))
    for arm, data in outcome.results.items():
        with open(os.path.join(args.out, f"{arm}.json"), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
    summary = {**outcome.meta, "exit_code": outcome.exit_code,
               "builds": {a: b.as_dict() for a, b in outcome.builds.items()},
               "heads": {label: {"spec": text, "exit_code": gate.exit_code,
                                 "missing": gate.missing,
                                 "verdicts": json.loads(gate.perf.to_json(orient="records")),
                                 **_annotations(gate)}
                         for (label, gate), text in zip(outcome.gates.items(), args.heads)}}
    with open(os.path.join(args.out, "ab.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    for label, text in zip(labels, args.heads):
        if len(labels) > 1 and args.format == "text":
            print(f"\n== {label}: {text} against {args.base} ==")
        print_result(outcome.gates[label], args, os.path.join(args.diff_dir or args.out,
                                                               f"{label}-diff"),
                     title=f"hashlab ab: {text} against {args.base}")
    for arm, build in outcome.builds.items():
        print(f"{arm}: {build.description}")
    print(f"{outcome.meta['mode']}, {outcome.meta['rounds']} round(s), "
          f"{outcome.meta['seconds']:.0f} s; wrote {', '.join(f'{a}.json' for a in outcome.results)}"
          f" and ab.json to {args.out}")
    return outcome.exit_code
