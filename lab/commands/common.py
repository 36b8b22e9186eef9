"""What several `hashlab` subcommands share: exit codes, the usage error, engine, scenario
and sampling selection, running a suite and printing its result."""
from __future__ import annotations

import os
import sys
import textwrap

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SCENARIOS_DOC = "docs/scenarios.md"


class UsageError(Exception):
    """Bad arguments or input files: printed as one line, exit status 2."""


def split(values):
    """`--engines a b,c` -> [a, b, c]."""
    return [v for item in values or [] for v in item.split(",") if v] or None


def engines_of(args, default=None):
    """(usable engine choices, [(label, reason)] unusable) of `--engines`."""
    from lab.engine_select import resolve
    try:
        choices, unusable = resolve(split(args.engines) or default)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    for label, reason in unusable:
        print(f"skipping engine {label}: {reason}", file=sys.stderr)
    if not choices:
        raise UsageError("no selected engine is available here")
    return choices, unusable


def scenarios_of(args, pool=None, quick=None):
    from lab import scenarios
    from lab.scenarios.profiles import profile_scenarios
    try:
        if pool is None and getattr(args, "profile", None):     # bench --profile NAME
            if args.scenarios or args.quick:
                raise UsageError("--profile chooses the scenarios and their sizes: leave out "
                                 "--scenarios and --quick")
            return profile_scenarios(args.profile)
        return scenarios.select(split(args.scenarios),
                                quick=args.quick if quick is None else quick, scenarios=pool)
    except scenarios.ScenarioError as exc:
        raise UsageError(str(exc)) from exc


def sampling_of(args):
    """The wall-clock sampling settings: the profile's, with `--time-cap` applied."""
    from lab.suite import sampling_for
    cap = getattr(args, "time_cap", None)
    if cap is not None and not 0 < cap <= 3600:
        raise UsageError(f"--time-cap must be in (0, 3600] seconds, got {cap}")
    return sampling_for(getattr(args, "profile", None), args.quick, cap)


def check_measure(measure: str) -> None:
    if measure == "simulated":
        from lab.timing.simulated import unavailable_reason
        why = unavailable_reason()
        if why:
            raise UsageError(f"--measure simulated: {why}")


def memory_of(args) -> bool:
    """Whether to measure memory: `--memory`/`--no-memory`, else the profile's rule. Asked
    for explicitly without memray installed: a usage error; by the profile: a note."""
    from lab.scenarios.profiles import rules
    from lab.timing.memory import unavailable_reason
    asked = getattr(args, "memory", None)
    profile = getattr(args, "profile", None)
    wanted = asked if asked is not None else bool(profile and rules(profile)["memory"])
    why = unavailable_reason() if wanted else None
    if why and asked:
        raise UsageError(f"--memory: {why}")
    if why:
        print(f"memory: not measured: {why}", file=sys.stderr)
        return False
    return wanted


def _wall_profiles_of(args, measure: str) -> bool:
    if not getattr(args, "wall_profiles", False):
        return False
    if measure != "wall":
        raise UsageError("--wall-profiles: simulated runs always keep their profiles")
    from lab.explain.sampled import unavailable_reason
    why = unavailable_reason()
    if why:
        raise UsageError(f"--wall-profiles: {why}")
    return True


def selected_engines(args):
    """`engines_of(args)`, defaulting to the engines the `--profile` is meant for."""
    from lab.scenarios.profiles import rules
    name = getattr(args, "profile", None)
    return engines_of(args, default=list(rules(name)["engines"] or ()) if name else None)


def run_suite(args, scenario_list, engines=None):
    """Parity and timing of `scenario_list` as the arguments say; `engines`: the
    `selected_engines(args)` answer when the caller already has it."""
    from lab.parity import ReferenceError
    from lab.suite import run_suite as run
    name = getattr(args, "profile", None)
    choices, unusable = engines or selected_engines(args)
    measure = getattr(args, "measure", "wall")
    check_measure(measure)
    try:
        return run(scenario_list, choices, unusable, quick=args.quick,
                   timing_on=not getattr(args, "no_timing", False),
                   progress=not args.no_progress, measure=measure,
                   sampling=sampling_of(args), profile=name, memory=memory_of(args),
                   wall_profiles=_wall_profiles_of(args, measure))
    except ReferenceError as exc:
        raise UsageError(str(exc)) from exc


NOTE_WIDTH = 60


def short_note(note) -> str:
    """A parity note for a printed table: cut at a word boundary, with an ellipsis (the files
    keep it whole)."""
    if note is None or note != note:            # None or NaN: no note
        return ""
    return textwrap.shorten(str(note), NOTE_WIDTH, placeholder=" …")


def print_result(result) -> None:
    import pandas as pd
    from lab.report.writer import summary_table, unstable_sentence
    with pd.option_context("display.width", 200, "display.max_rows", 500,
                           "display.max_colwidth", NOTE_WIDTH + 2):
        summary = result.parity_summary.copy()
        summary["note"] = summary["note"].map(short_note)
        print("Parity (engine x scenario):")
        print(summary[["engine", "scenario", "status", "max_ulp", "note"]].to_string(
            index=False))
        perf = result.perf
        if len(perf):
            title, view = timing_view(perf)
            print(f"\n{title}")
            print(view.to_string(index=False))
        print("\nSummary:")
        print(summary_table(result).to_string(index=False))
        sentence = unstable_sentence(result.perf_passing(),
                                     (result.meta.get("sampling") or {}).get("target"))
        if sentence:
            print(sentence)


def timing_view(perf):
    """(title, table) of the timing rows as printed: medians with their 95% CIs, marked when
    unstable."""
    simulated = (perf["measure"] == "simulated").any()
    view = perf[["engine", "scenario", "op", "threads", "n_ids", "repeats"]].copy()
    if simulated:
        title = ("Simulated cost (callgrind estimated cycles per call; ratio = engine / "
                 "baseline cost):")
        view["cost"] = perf["median_cost"].map(lambda v: f"{v:.4g}")
        view["instructions"] = perf["instructions"].map(lambda v: f"{v:.4g}")
    else:
        title = ("Timing (median of paired samples [95% CI]; ratio = engine / baseline time, "
                 "* = unstable):")
        view["median"] = [f"{m * 1e3:.3f} ms [{lo * 1e3:.3f}-{hi * 1e3:.3f}]"
                          for m, lo, hi in zip(perf.median_s, perf.ci_low_s, perf.ci_high_s)]
        view["ids_per_s"] = perf["ids_per_s"].map(lambda v: f"{v:.3g}")
    view["ratio"] = [f"{r:.3g} [{lo:.3g}-{hi:.3g}]{'*' if u else ''}"
                     for r, lo, hi, u in zip(perf.ratio_to_baseline, perf.ratio_ci_low,
                                             perf.ratio_ci_high, perf.unstable)]
    view["parity"] = perf["parity"]
    return title, view


def parity_exit(result) -> int:
    if result.failed():
        print("parity: FAILED (see the rows with status 'fail')", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def ensure_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)


def announce(command: str, what: str, choices, out: str) -> None:
    """One line on stderr, once the arguments are known to be good: what runs, where to."""
    print(f"hashlab {command}: {what} on {', '.join(c.label for c in choices)} -> {out}",
          file=sys.stderr)


def add_selection(p, quick_help="shrink every scenario (its `quick` overrides)"):
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--engines", nargs="+", metavar="ENGINE",
                   help="engines to run (name or name:key=value,...; module:Factory for an engine "
                        "that is not installed; default: all available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


def add_measure(p):
    p.add_argument("--measure", choices=("wall", "simulated"), default="wall",
                   help="wall: paired wall-clock samples (default); simulated: callgrind "
                        "cost counts (deterministic; needs valgrind)")
    p.add_argument("--time-cap", type=float, metavar="S",
                   help="wall mode: stop sampling an op after about S seconds even if its "
                        "ratio is not yet known to +-5%% (default 3, 0.5 with --quick)")
