"""`hashlab bench`: parity and timing of catalog scenarios (or a profile such as the CI
gate's), printed and saved as JSON for `hashlab gate`."""
from __future__ import annotations

import argparse
import os

from lab.commands.common import (add_measure, add_selection, ensure_parent, parity_exit,
                                 print_result, run_suite, scenarios_of)

NAME = "bench"
HELP = "parity + timing of the catalog, printed and saved as JSON"


def setup(p) -> None:
    from lab.scenarios.profiles import PROFILES
    add_selection(p)
    p.add_argument("--scenarios", nargs="+", metavar="NAME", help="catalog scenarios to run")
    p.add_argument("--profile", choices=sorted(PROFILES),
                   help="a named selection of the catalog (gate: the CI gate's, native-cpu)")
    p.add_argument("--save", default=os.path.join("reports", "bench", "latest.json"),
                   help="JSON output (default reports/bench/latest.json)")
    add_measure(p)
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=None,
                   help="also measure each op's peak memory and bytes allocated (memray), "
                        "after the timing (default: the profile's rule; on for gate)")
    p.add_argument("--wall-profiles", action="store_true",
                   help="wall-clock runs: after the timing, sample each op with py-spy and keep "
                        "its profile, so the gate can name what grew in a regression "
                        "(simulated runs always keep theirs)")


def run(args) -> int:
    result = run_suite(args, scenarios_of(args))
    print_result(result)
    ensure_parent(args.save)
    result.save(args.save)
    print(f"\nwrote {args.save}")
    return parity_exit(result)
