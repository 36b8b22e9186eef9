"""`hashlab run FILE`: the scenarios of a user's TOML or JSON file, parity then timing."""
from __future__ import annotations

from lab.commands.common import (SCENARIOS_DOC, UsageError, add_measure, add_selection,
                                 ensure_parent, parity_exit, print_result, run_suite,
                                 scenarios_of)

NAME = "run"
HELP = "run the scenarios of a TOML/JSON file (parity + timing)"
DESCRIPTION = ("Run the scenarios of a TOML or JSON file: parity against the numpy reference, "
               f"then timing. The file format (every field, id distributions, ops) is in "
               f"{SCENARIOS_DOC}; `hashlab scenarios NAME` prints a catalog scenario as a "
               "starting point.")


def setup(p) -> None:
    p.add_argument("file", help="scenario file (.toml or .json)")
    add_selection(p)
    p.add_argument("--scenarios", nargs="+", metavar="NAME", help="scenarios of the file")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    p.add_argument("--no-timing", action="store_true", help="parity only")
    add_measure(p)


def run(args) -> int:
    from lab import scenarios
    try:
        pool = scenarios.load_file(args.file)
    except scenarios.ScenarioError as exc:
        raise UsageError(str(exc)) from exc
    result = run_suite(args, scenarios_of(args, pool))
    print_result(result)
    if args.json:
        ensure_parent(args.json)
        result.save(args.json)
        print(f"\nwrote {args.json}")
    return parity_exit(result)
