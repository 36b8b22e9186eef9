"""`hashlab scenarios [NAME [--quick]]`: the catalog, or one scenario as a TOML file for
`hashlab run`."""
from __future__ import annotations

from lab.commands.common import EXIT_OK, SCENARIOS_DOC, UsageError

NAME = "scenarios"
HELP = "list the scenario catalog, or print one as TOML"
DESCRIPTION = ("Without NAME: the built-in scenarios. With NAME: that scenario as a TOML file "
               f"`hashlab run` accepts, to copy and edit. Every field is described in "
               f"{SCENARIOS_DOC}.")


def setup(p) -> None:
    p.add_argument("name", nargs="?", metavar="NAME", help="a catalog scenario to print")
    p.add_argument("--quick", action="store_true", help="print its --quick size")


def run(args) -> int:
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
