"""`hashlab run FILE`: the scenarios of a user's TOML or JSON file, parity then timing, printed
and kept in a folder of their own (bench.json, parity.csv, perf.csv)."""
from __future__ import annotations

import os

from lab.commands.common import (SCENARIOS_DOC, UsageError, add_measure, add_selection,
                                 announce, parity_exit, print_result, run_suite, scenarios_of,
                                 selected_engines)

NAME = "run"
HELP = "run the scenarios of a TOML/JSON file (parity + timing), kept in reports/run/NAME"
RUNS_DIR = os.path.join("reports", "run")
DESCRIPTION = ("Run the scenarios of a TOML or JSON file: parity against the numpy reference, "
               f"then timing. The results are printed and written to a folder: "
               f"{RUNS_DIR}/<the file's name without its extension> unless --out says "
               "otherwise, as bench.json (everything, as `hashlab bench` saves it), parity.csv "
               "and perf.csv (as `hashlab report` writes them). The file format (every field, "
               f"id distributions, ops) is in {SCENARIOS_DOC}; `hashlab scenarios NAME` prints "
               "a catalog scenario as a starting point.")


def setup(p) -> None:
    p.add_argument("file", help="scenario file (.toml or .json)")
    add_selection(p)
    p.add_argument("--scenarios", nargs="+", metavar="NAME", help="scenarios of the file")
    p.add_argument("--out", metavar="DIR",
                   help=f"folder for the results (default {RUNS_DIR}/<file name>)")
    p.add_argument("--no-timing", action="store_true", help="parity only")
    add_measure(p)


def out_dir(args) -> str:
    """--out, or reports/run/<the file's name less its extension>."""
    if args.out:
        return args.out
    stem = os.path.splitext(os.path.basename(os.path.normpath(args.file)))[0]
    if not stem or stem.startswith("."):
        raise UsageError(f"run: cannot name a folder after {args.file!r}; pass --out DIR")
    return os.path.join(RUNS_DIR, stem)


def run(args) -> int:
    from lab import scenarios
    try:
        pool = scenarios.load_file(args.file)
    except scenarios.ScenarioError as exc:
        raise UsageError(str(exc)) from exc
    scenario_list = scenarios_of(args, pool)
    engines = selected_engines(args)
    out = out_dir(args)
    if os.path.exists(os.path.join(out, "index.html")):
        raise UsageError(f"run: {out} holds a `hashlab report` page, whose data this run would "
                         f"replace; pass --out DIR for a folder of its own")
    try:                                    # a folder that cannot be made fails before the run
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"run: cannot make the folder {out}: {exc.strerror}") from exc
    announce("run", f"{len(scenario_list)} scenarios of {args.file}", engines[0], out)
    result = run_suite(args, scenario_list, engines)
    print_result(result)
    try:
        files = result.write_files(out)
    except OSError as exc:
        raise UsageError(f"run: cannot write the results to {out}: {exc.strerror}") from exc
    print(f"\nwrote {', '.join(os.path.join(out, f) for f in files)}")
    return parity_exit(result)
