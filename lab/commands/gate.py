"""`hashlab gate CURRENT.json --baseline BASE.json`: fail on a performance regression or a
new parity failure between two bench runs (docs/measurement.md); `--asv BASE HEAD` wraps
`asv continuous` instead. Exit status: 0 pass, 1 a regression, a new parity failure or a
baseline result missing, 2 unusable input, 3 inconclusive (more than a quarter of the ops
too noisy to decide) unless `--allow-inconclusive`."""
from __future__ import annotations

from lab.commands.common import UsageError

NAME = "gate"
HELP = "fail on a performance regression or a new parity failure"


def setup(p) -> None:
    p.add_argument("current", nargs="?", help="bench JSON of the change")
    p.add_argument("--baseline", help="bench JSON of the baseline")
    p.add_argument("--threshold", type=float, default=None,
                   help="allowed growth of an op's median time, ratio or cost (default 1.20x "
                        "for wall-clock runs, 1.10x for simulated ones: docs/measurement.md)")
    p.add_argument("--basis", choices=("auto", "time", "ratio", "paired"), default="auto",
                   help="what wall-clock ops are compared on: the engine's own time, its "
                        "ratio to the same-run baseline, or (two files of one `hashlab ab` "
                        "session) their paired rounds (default auto: paired for one session's "
                        "files, else time when both runs name the same kind of machine, else "
                        "ratio)")
    p.add_argument("--allow-inconclusive", action="store_true",
                   help="exit 0 instead of 3 when more than a quarter of the ops are too "
                        "noisy to decide")
    p.add_argument("--alpha", type=float, default=0.01,
                   help="significance level after Benjamini-Hochberg correction (default "
                        "0.01)")
    p.add_argument("--verbose", action="store_true", help="also print every op's comparison")
    p.add_argument("--asv", nargs=2, metavar=("BASE", "HEAD"),
                   help="run `asv continuous --factor F BASE HEAD` instead")
    p.add_argument("--factor", type=float, default=1.10, help="asv continuous --factor")


def run(args) -> int:
    if args.asv:
        if args.current or args.baseline:
            raise UsageError("gate: use either CURRENT --baseline BASE or --asv BASE HEAD")
        from lab.gate.asv_gate import continuous
        return continuous(args.asv[0], args.asv[1], args.factor)
    if not args.current or not args.baseline:
        raise UsageError("gate: needs CURRENT.json and --baseline BASE.json (or --asv)")
    from lab.gate import GateUsageError, compare, render
    from lab.suite import load_bench_json
    try:
        current = load_bench_json(args.current)
        baseline = load_bench_json(args.baseline)
        result = compare(current, baseline, args.threshold, args.alpha,
                         names=(args.current, args.baseline), basis=args.basis,
                         allow_inconclusive=args.allow_inconclusive)
    except (ValueError, GateUsageError) as exc:
        raise UsageError(f"gate: {exc}") from exc
    print(render(result, verbose=args.verbose))
    return result.exit_code
