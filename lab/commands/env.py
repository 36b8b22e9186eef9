"""`hashlab env create tfra`: the TFRA peer's own virtualenv (TensorFlow 2.16 + TFRA)."""
from __future__ import annotations

import importlib
import sys

from lab.commands.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError

NAME = "env"
HELP = "manage engine environments"


def setup(p) -> None:
    p.add_argument("action", choices=["create"])
    p.add_argument("name", help="environment to create (tfra)")
    p.add_argument("--path", help="where, remembered for later runs (default: "
                                  "$HASHLAB_TFRA_VENV, the remembered path, or .venvs/tfra "
                                  "in a source checkout)")


def run(args) -> int:
    if args.action != "create" or args.name != "tfra":
        raise UsageError("env: only `hashlab env create tfra` is supported")
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
