"""`hashlab report [--full | --quick | --profile P]`: parity and performance of the scenario
catalog as a web page, in the profile's own folder."""
from __future__ import annotations

import argparse
import os
import sys
import textwrap

from lab.commands.common import (EXIT_FAILED, EXIT_OK, UsageError, add_selection, announce,
                                 run_suite, scenarios_of, selected_engines, split)

NAME = "report"
HELP = "parity + performance report of the scenario catalog"


def description() -> str:
    from lab.scenarios.profiles import PROFILES
    return ("Parity and performance of the scenario catalog as a web page.\n\n"
            "Profiles (each writes its own folder, so no kind of run replaces another):\n"
            + "\n".join(textwrap.fill(f"{n} ({r.get('out')}): {r['description']}", 88,
                                      initial_indent="  ", subsequent_indent="      ")
                        for n, r in PROFILES.items()))


def setup(p) -> None:
    from lab.scenarios.profiles import PROFILES
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = description()
    add_selection(p, quick_help="the `quick` profile: every scenario at its smoke-test size")
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


def _profile(args) -> str:
    from lab.scenarios import profiles
    chosen = [name for name, on in (("full", args.full), ("quick", args.quick),
                                    (args.profile, args.profile is not None)) if on]
    if len(chosen) > 1:
        raise UsageError(f"report: choose one of --full, --quick, --profile (got {chosen})")
    return chosen[0] if chosen else profiles.DEFAULT


def run(args) -> int:
    from lab.report import write_report
    from lab.report.load import LoadSampler
    from lab.report.writer import existing_kind, report_kind
    from lab.scenarios import profiles
    name = _profile(args)
    try:
        rules = profiles.rules(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    args.quick = bool(rules["quick"])
    out = args.out or rules["out"]
    if not out:
        raise UsageError(f"report: profile {name!r} has no folder of its own; pass --out DIR")
    selection = {k: v for k, v in (("scenarios", split(args.scenarios)),
                                   ("engines", split(args.engines))) if v}
    kind = report_kind({"profile": name, "selection": selection})
    there = existing_kind(out)
    if there is not None and there != kind and not args.overwrite:
        raise UsageError(f"report: {out} holds a `{there}` report and this run is `{kind}`; "
                         f"pass --out DIR for a folder of its own, or --overwrite")
    # Everything the arguments name is checked before the run is announced.
    scenario_list = (scenarios_of(args, profiles.catalog_for(name), quick=False)
                     if args.scenarios else profiles.profile_scenarios(name))
    engines = selected_engines(args)
    announce("report", f"profile {name!r}, {len(scenario_list)} scenarios", engines[0], out)
    with LoadSampler() as load:
        result = run_suite(args, scenario_list, engines)
    result.meta.update(
        profile=name, profile_description=rules["description"],
        resized=profiles.resize_notes(name), selection=selection, load=load.summary(),
        sizes=[{"scenario": s.name, "prefill": s.prefill, "batch_size": s.batch_size,
                "steps": s.steps, "warmup": s.warmup, "threads": s.threads}
               for s in scenario_list])
    written = write_report(result, out, asv_results=args.asv_results,
                           with_oracle=not args.no_oracle)
    print(written["summary"].to_string(index=False))
    if written["unstable"]:
        print(written["unstable"])
    for chart, why in written["notes"].items():
        print(f"(no {chart}: {why})")
    print(f"\nwrote {written['html']} (+ report.md, {', '.join(written['data'])}, "
          f"{len(written['images'])} charts)")
    if result.failed():
        print("parity: FAILED (the failures are listed in the report)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
