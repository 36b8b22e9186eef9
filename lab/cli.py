"""The `hashlab` command line. Each subcommand lives in its own function; exit codes:
0 success, 1 a failed check (parity failure, regression), 2 bad usage.

  hashlab engines [--json]                       list engines, availability, capabilities
  hashlab scenarios [NAME [--quick]]             the catalog; NAME printed as a TOML file
  hashlab report [--full | --quick | --profile P] [--engines ...] [--scenarios ...] [--out DIR]
  hashlab bench [--quick] [--engines ...] [--scenarios ...|--profile gate] [--save FILE]
                [--measure wall|simulated] [--time-cap S]
  hashlab run FILE [--engines ...] [--json OUT]  a user scenario file (TOML/JSON)
  hashlab gate CURRENT.json --baseline BASE.json [--threshold X] [--alpha 0.01]
               [--basis auto|time|ratio] [--verbose]
  hashlab gate --asv BASE HEAD [--factor F]
  hashlab env create tfra                        the TFRA peer's own virtualenv
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SCENARIOS_DOC = "docs/scenarios.md"


class UsageError(Exception):
    """Bad arguments or input files: printed, exit status 2."""


def cmd_engines(args) -> int:
    import engines
    from engines.registry import BUILT_IN
    infos, rejected = engines.available(), engines.rejected()
    if args.json:
        listed = [{"name": i.name, "available": i.available, "reason": i.reason,
                   "origin": i.origin, "broken": i.broken,
                   "capabilities": i.capabilities.as_dict() if i.capabilities else None}
                  for i in infos]
        listed += [{"name": r.name, "available": False, "reason": r.reason, "origin": r.origin,
                    "broken": True, "rejected": True, "capabilities": None} for r in rejected]
        print(json.dumps(listed, indent=2))
        return 0
    for info in infos:
        status = ("available" if info.available else
                  f"{'BROKEN' if info.broken else 'unavailable'}: {info.reason}")
        print(f"{info.name:12s} {status}")
        if info.origin != BUILT_IN:
            print(f"{'':12s} {info.origin}")
        if info.capabilities is not None:
            caps = info.capabilities.as_dict()
            flags = [k for k, v in caps.items() if v is True]
            print(f"{'':12s} ops: {', '.join(caps['ops'])}")
            print(f"{'':12s} optimizers: {', '.join(caps['optimizers'])}")
            print(f"{'':12s} filters: {', '.join(caps['filters']) or '-'}; "
                  f"features: {', '.join(flags) or '-'}")
    for r in rejected:
        print(f"{r.name:12s} REJECTED plug-in: {r.reason}\n{'':12s} {r.origin}")
    return 0


def cmd_scenarios(args) -> int:
    from lab import scenarios
    from lab.scenarios.files import dump_toml
    if args.name is None:
        for s in scenarios.catalog():
            variants = len(s.variants())
            size = f"{variants} variants" if variants > 1 else "1 scenario"
            about = s.description if len(s.description) <= 72 else \
                s.description[:71].rsplit(" ", 1)[0] + " ..."
            print(f"{s.name:24s} {size:12s} {about}")
        print(f"\n`hashlab scenarios NAME > my.toml` prints one as a file for `hashlab run`; "
              f"fields: {SCENARIOS_DOC}")
        return EXIT_OK
    found = [s for s in scenarios.catalog() if s.name == args.name]
    if not found:
        raise UsageError(f"scenarios: unknown scenario {args.name!r}; known: "
                         f"{scenarios.names()}")
    scenario = found[0].quick_version() if args.quick else found[0]
    header = (f"hashlab scenario {scenario.name!r} from the built-in catalog"
              f"{' (its --quick size)' if args.quick else ''}.\n"
              f"Edit and run it with: hashlab run FILE.toml   (fields: {SCENARIOS_DOC})")
    print(dump_toml(scenario, header), end="")
    return EXIT_OK


# ---- shared helpers ------------------------------------------------------------------------

def _split(values):
    """`--engines a b,c` -> [a, b, c]."""
    return [v for item in values or [] for v in item.split(",") if v] or None


def _engines(args, default=None):
    from lab.engine_select import resolve
    try:
        choices, unusable = resolve(_split(args.engines) or default)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    for label, reason in unusable:
        print(f"skipping engine {label}: {reason}", file=sys.stderr)
    if not choices:
        raise UsageError("no selected engine is available here")
    return choices, unusable


def _scenarios(args, pool=None, quick=None):
    from lab import scenarios
    from lab.scenarios.profiles import profile_scenarios
    try:
        if pool is None and getattr(args, "profile", None):     # bench --profile NAME
            if args.scenarios or args.quick:
                raise UsageError("--profile chooses the scenarios and their sizes: leave out "
                                 "--scenarios and --quick")
            return profile_scenarios(args.profile)
        return scenarios.select(_split(args.scenarios),
                                quick=args.quick if quick is None else quick, scenarios=pool)
    except scenarios.ScenarioError as exc:
        raise UsageError(str(exc)) from exc


def _sampling(args):
    """The wall-clock sampling settings: the profile's, with `--time-cap` applied."""
    from lab.suite import sampling_for
    cap = getattr(args, "time_cap", None)
    if cap is not None and not 0 < cap <= 3600:
        raise UsageError(f"--time-cap must be in (0, 3600] seconds, got {cap}")
    return sampling_for(getattr(args, "profile", None), args.quick, cap)


def _run_suite(args, scenario_list):
    from lab.parity import ReferenceError
    from lab.scenarios.profiles import rules
    from lab.suite import run_suite
    name = getattr(args, "profile", None)
    choices, unusable = _engines(args, default=list(rules(name)["engines"] or ()) if name
                                 else None)
    measure = getattr(args, "measure", "wall")
    if measure == "simulated":
        from lab.timing.simulated import unavailable_reason
        why = unavailable_reason()
        if why:
            raise UsageError(f"--measure simulated: {why}")
    try:
        return run_suite(scenario_list, choices, unusable, quick=args.quick,
                         timing_on=not getattr(args, "no_timing", False),
                         progress=not args.no_progress, measure=measure,
                         sampling=_sampling(args), profile=name)
    except ReferenceError as exc:
        raise UsageError(str(exc)) from exc


def _print_result(result) -> None:
    import pandas as pd
    from lab.report.writer import summary_table
    with pd.option_context("display.width", 200, "display.max_rows", 500,
                           "display.max_colwidth", 60):
        summary = result.parity_summary.copy()
        summary["note"] = summary["note"].str.slice(0, 60)
        print("Parity (engine x scenario):")
        print(summary[["engine", "scenario", "status", "max_ulp", "note"]].to_string(
            index=False))
        perf = result.perf
        if len(perf):
            title, view = _timing_view(perf)
            print(f"\n{title}")
            print(view.to_string(index=False))
        print("\nSummary:")
        print(summary_table(result).to_string(index=False))


def _timing_view(perf):
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


def _parity_exit(result) -> int:
    if result.failed():
        print("parity: FAILED (see the rows with status 'fail')", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _ensure_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)


# ---- subcommands ---------------------------------------------------------------------------

def cmd_bench(args) -> int:
    result = _run_suite(args, _scenarios(args))
    _print_result(result)
    _ensure_parent(args.save)
    result.save(args.save)
    print(f"\nwrote {args.save}")
    return _parity_exit(result)


def cmd_run(args) -> int:
    from lab import scenarios
    try:
        pool = scenarios.load_file(args.file)
    except scenarios.ScenarioError as exc:
        raise UsageError(str(exc)) from exc
    result = _run_suite(args, _scenarios(args, pool))
    _print_result(result)
    if args.json:
        _ensure_parent(args.json)
        result.save(args.json)
        print(f"\nwrote {args.json}")
    return _parity_exit(result)


def _report_profile(args) -> str:
    from lab.scenarios import profiles
    chosen = [name for name, on in (("full", args.full), ("quick", args.quick),
                                    (args.profile, args.profile is not None)) if on]
    if len(chosen) > 1:
        raise UsageError(f"report: choose one of --full, --quick, --profile (got {chosen})")
    return chosen[0] if chosen else profiles.DEFAULT


def cmd_report(args) -> int:
    from lab.report import write_report
    from lab.report.load import LoadSampler
    from lab.report.writer import existing_kind, report_kind
    from lab.scenarios import profiles
    name = _report_profile(args)
    try:
        rules = profiles.rules(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    args.quick = bool(rules["quick"])
    out = args.out or rules["out"]
    selection = {k: v for k, v in (("scenarios", _split(args.scenarios)),
                                   ("engines", _split(args.engines))) if v}
    kind = report_kind({"profile": name, "selection": selection})
    there = existing_kind(out)
    if there is not None and there != kind and not args.overwrite:
        raise UsageError(f"report: {out} holds a `{there}` report and this run is `{kind}`; "
                         f"pass --out DIR for a folder of its own, or --overwrite")
    scenario_list = _scenarios(args, profiles.catalog_for(name), quick=False)
    print(f"hashlab report: profile {name!r}, {len(scenario_list)} scenarios -> {out}",
          file=sys.stderr)
    with LoadSampler() as load:
        result = _run_suite(args, scenario_list)
    result.meta.update(
        profile=name, profile_description=rules["description"],
        resized=profiles.resize_notes(name), selection=selection, load=load.summary(),
        sizes=[{"scenario": s.name, "prefill": s.prefill, "batch_size": s.batch_size,
                "steps": s.steps, "warmup": s.warmup, "threads": s.threads}
               for s in scenario_list])
    written = write_report(result, out, asv_results=args.asv_results,
                           with_oracle=not args.no_oracle)
    result.save(os.path.join(out, "bench.json"))
    print(written["summary"].to_string(index=False))
    for chart, why in written["notes"].items():
        print(f"(no {chart}: {why})")
    print(f"\nwrote {written['html']} (+ report.md, parity.csv, perf.csv, bench.json, "
          f"{len(written['images'])} charts)")
    if result.failed():
        print("parity: FAILED (the failures are listed in the report)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_gate(args) -> int:
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
                         names=(args.current, args.baseline), basis=args.basis)
    except (ValueError, GateUsageError) as exc:
        raise UsageError(f"gate: {exc}") from exc
    print(render(result, verbose=args.verbose))
    return result.exit_code


def cmd_env(args) -> int:
    if args.action != "create" or args.name != "tfra":
        raise UsageError("env: only `hashlab env create tfra` is supported")
    import importlib
    try:
        env = importlib.import_module("engines.tfra.env")
    except ImportError as exc:
        print(f"env: engines.tfra.env is not importable: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        python = env.create_env(args.path)
    except RuntimeError as exc:
        print(f"env: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"TFRA environment ready: {python}")
    return EXIT_OK


# ---- parser --------------------------------------------------------------------------------

def _add_selection(p, quick_help="shrink every scenario (its `quick` overrides)"):
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--engines", nargs="+", metavar="ENGINE",
                   help="engines to run (name or name:key=value,...; module:Factory for an engine "
                        "that is not installed; default: all available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


def _profiles():
    from lab.scenarios.profiles import PROFILES
    return PROFILES


def _add_measure(p):
    p.add_argument("--measure", choices=("wall", "simulated"), default="wall",
                   help="wall: paired wall-clock samples (default); simulated: callgrind "
                        "cost counts (deterministic; needs valgrind)")
    p.add_argument("--time-cap", type=float, metavar="S",
                   help="wall mode: stop sampling an op after about S seconds even if its "
                        "ratio is not yet known to +-5%% (default 3, 0.5 with --quick)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hashlab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("engines", help="list engines, availability and capabilities")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_engines)

    p = sub.add_parser("scenarios", help="list the scenario catalog, or print one as TOML",
                       description="Without NAME: the built-in scenarios. With NAME: that "
                                   "scenario as a TOML file `hashlab run` accepts, to copy and "
                                   f"edit. Every field is described in {SCENARIOS_DOC}.")
    p.add_argument("name", nargs="?", metavar="NAME", help="a catalog scenario to print")
    p.add_argument("--quick", action="store_true", help="print its --quick size")
    p.set_defaults(func=cmd_scenarios)

    from lab.scenarios.profiles import PROFILES
    p = sub.add_parser(
        "report", help="parity + performance report of the scenario catalog",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Parity and performance of the scenario catalog as a web page.\n\n"
                    "Profiles (each writes its own folder, so no kind of run replaces "
                    "another):\n" + "\n".join(
                        textwrap.fill(f"{n} ({r.get('out')}): {r['description']}", 88,
                                      initial_indent="  ", subsequent_indent="      ")
                        for n, r in PROFILES.items()))
    _add_selection(p, quick_help="the `quick` profile: every scenario at its smoke-test size")
    p.add_argument("--full", action="store_true",
                   help="the `full` profile: the whole catalog at full size")
    p.add_argument("--profile", metavar="NAME", help=f"a profile by name ({', '.join(PROFILES)})")
    p.add_argument("--scenarios", nargs="+", metavar="NAME", help="catalog scenarios to run")
    p.add_argument("--out", help="output directory (default: the profile's folder)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a report of another kind in --out")
    p.add_argument("--asv-results", default=os.path.join(".asv", "results"),
                   help="asv results directory for the history chart")
    p.add_argument("--no-oracle", action="store_true",
                   help="leave out the TensorFlow optimizer oracle section")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("bench", help="parity + timing of the catalog, printed and saved as JSON")
    _add_selection(p)
    p.add_argument("--scenarios", nargs="+", metavar="NAME", help="catalog scenarios to run")
    p.add_argument("--profile", choices=sorted(_profiles()),
                   help="a named selection of the catalog (gate: the CI gate's, native-cpu)")
    p.add_argument("--save", default=os.path.join("reports", "bench", "latest.json"),
                   help="JSON output (default reports/bench/latest.json)")
    _add_measure(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("run", help="run the scenarios of a TOML/JSON file (parity + timing)",
                       description="Run the scenarios of a TOML or JSON file: parity against "
                                   "the numpy reference, then timing. The file format (every "
                                   f"field, id distributions, ops) is in {SCENARIOS_DOC}; "
                                   "`hashlab scenarios NAME` prints a catalog scenario as a "
                                   "starting point.")
    p.add_argument("file", help="scenario file (.toml or .json)")
    _add_selection(p)
    p.add_argument("--scenarios", nargs="+", metavar="NAME", help="scenarios of the file")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    p.add_argument("--no-timing", action="store_true", help="parity only")
    _add_measure(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("gate", help="fail on a performance regression or a new parity failure")
    p.add_argument("current", nargs="?", help="bench JSON of the change")
    p.add_argument("--baseline", help="bench JSON of the baseline")
    p.add_argument("--threshold", type=float, default=None,
                   help="allowed growth of an op's median time, ratio or cost (default 1.20x "
                        "for wall-clock runs, 1.10x for simulated ones: docs/measurement.md)")
    p.add_argument("--basis", choices=("auto", "time", "ratio"), default="auto",
                   help="what wall-clock ops are compared on: the engine's own time or its "
                        "ratio to the same-run baseline (default auto: time when both runs "
                        "name the same kind of machine, else ratio)")
    p.add_argument("--alpha", type=float, default=0.01,
                   help="significance level after Benjamini-Hochberg correction (default "
                        "0.01)")
    p.add_argument("--verbose", action="store_true", help="also print every op's comparison")
    p.add_argument("--asv", nargs=2, metavar=("BASE", "HEAD"),
                   help="run `asv continuous --factor F BASE HEAD` instead")
    p.add_argument("--factor", type=float, default=1.10, help="asv continuous --factor")
    p.set_defaults(func=cmd_gate)

    p = sub.add_parser("env", help="manage engine environments")
    p.add_argument("action", choices=["create"])
    p.add_argument("name", help="environment to create (tfra)")
    p.add_argument("--path", help="where, remembered for later runs (default: "
                                  "$HASHLAB_TFRA_VENV, the remembered path, or .venvs/tfra "
                                  "in a source checkout)")
    p.set_defaults(func=cmd_env)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:          # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"hashlab: {' '.join(str(exc).split())}", file=sys.stderr)   # one line
        return EXIT_USAGE
    except BrokenPipeError:            # `hashlab scenarios | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
