"""The `hashlab` command line. Each subcommand lives in its own module of `lab.commands`
(`NAME`, `HELP`, `setup(parser)`, `run(args)`); exit codes: 0 success, 1 a failed check
(parity failure, regression), 2 bad usage.

  hashlab engines [--json]                       list engines, availability, capabilities
  hashlab scenarios [NAME [--quick]]             the catalog; NAME printed as a TOML file
  hashlab report [--full | --quick | --profile P] [--engines ...] [--scenarios ...] [--out DIR]
  hashlab bench [--quick] [--engines ...] [--scenarios ...|--profile gate] [--save FILE]
                [--measure wall|simulated] [--time-cap S]
  hashlab run FILE [--engines ...] [--out DIR]   a user scenario file (TOML/JSON) -> reports/run/
  hashlab gate CURRENT.json --baseline BASE.json [--threshold X] [--alpha 0.01]
               [--basis auto|time|ratio] [--verbose]
  hashlab gate --asv BASE HEAD [--factor F]
  hashlab env create tfra|torchrec               a peer engine's own virtualenv
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from lab.commands import MODULES
from lab.commands.common import EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hashlab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in MODULES:
        command = importlib.import_module(f"lab.commands.{name}")
        p = sub.add_parser(command.NAME, help=command.HELP,
                           description=getattr(command, "DESCRIPTION", None))
        command.setup(p)
        p.set_defaults(func=command.run)
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
