"""`hashlab gate CURRENT.json --baseline BASE.json`: fail on a performance regression or a
new parity failure between two bench runs (docs/measurement.md); `--asv BASE HEAD` wraps
`asv continuous` instead. Exit status: 0 pass, 1 a regression, a new parity failure or a
baseline result missing, 2 unusable input, 3 inconclusive (more than a quarter of the ops
too noisy to decide) unless `--allow-inconclusive`.

Before the verdicts it prints every difference between the runs' recorded environments;
memory per op is gated beside the time when both runs measured it; for a regressed op that
both runs profiled (simulated runs always are) it names the functions whose cost grew most
and writes a differential flame graph (`--diff-dir`). `--format markdown` prints a
pull-request comment instead (docs/investigating.md)."""
from __future__ import annotations

import os

from lab.commands.common import UsageError


def add_report_options(p) -> None:
    """What `hashlab gate` and `hashlab ab` share: the output format, memory's threshold,
    where differential flame graphs go."""
    p.add_argument("--format", choices=("text", "markdown"), default="text",
                   help="text (default) or markdown: a pull-request comment (regressions with "
                        "change, CI, p and the functions that grew most)")
    p.add_argument("--memory-threshold", type=float, default=None,
                   help="allowed growth of an op's peak memory or bytes allocated (default "
                        "1.10x, and at least 64 KiB)")
    p.add_argument("--diff-dir", default=None,
                   help="folder for the differential flame graphs of regressed ops (default: "
                        "gate-diff beside CURRENT; hashlab ab: its --out folder)")


def print_result(result, args, diff_dir: str, title: str = "hashlab gate") -> None:
    """The differential flame graphs written, then the verdicts as text or markdown."""
    from lab.gate import differential, markdown, render
    if any(d.svg is None for d in result.profiles.values()):
        differential.write_svgs(result.profiles, diff_dir)
    if args.format == "markdown":
        print(markdown.render(result, title))
    else:
        print(render(result, verbose=args.verbose))

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
    add_report_options(p)
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
    from lab.gate import GateUsageError, compare
    from lab.suite import load_bench_json
    try:
        current = load_bench_json(args.current)
        baseline = load_bench_json(args.baseline)
        result = compare(current, baseline, args.threshold, args.alpha,
                         names=(args.current, args.baseline), basis=args.basis,
                         allow_inconclusive=args.allow_inconclusive,
                         memory_threshold=args.memory_threshold)
    except (ValueError, GateUsageError) as exc:
        raise UsageError(f"gate: {exc}") from exc
    print_result(result, args, args.diff_dir or os.path.join(
        os.path.dirname(os.path.abspath(args.current)), "gate-diff"))
    return result.exit_code
