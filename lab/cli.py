"""The `hashlab` command line. Each subcommand lives in its own function; exit codes:
0 success, 1 a failed check (parity failure, regression), 2 bad usage."""
from __future__ import annotations

import argparse
import json
import sys


def cmd_engines(args) -> int:
    import engines
    infos = engines.available()
    if args.json:
        print(json.dumps([{"name": i.name, "available": i.available, "reason": i.reason,
                           "capabilities": i.capabilities.as_dict() if i.capabilities else None}
                          for i in infos], indent=2))
        return 0
    for info in infos:
        status = "available" if info.available else f"unavailable: {info.reason}"
        print(f"{info.name:12s} {status}")
        if info.capabilities is not None:
            caps = info.capabilities.as_dict()
            flags = [k for k, v in caps.items() if v is True]
            print(f"{'':12s} ops: {', '.join(caps['ops'])}")
            print(f"{'':12s} optimizers: {', '.join(caps['optimizers'])}")
            print(f"{'':12s} filters: {', '.join(caps['filters'])}; "
                  f"features: {', '.join(flags) or '-'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hashlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("engines", help="list engines, availability and capabilities")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_engines)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:          # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
