"""`hashlab env create NAME`: a peer engine's own virtualenv (engines/peer/venv.py): `tfra`
(TensorFlow 2.16 + TFRA), `torchrec` (PyTorch + FBGEMM + TorchRec, CPU builds)."""
from __future__ import annotations

import sys

from engines.peer.venv import ENVIRONMENTS, environment
from lab.commands.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError

NAME = "env"
HELP = "manage engine environments"


def setup(p) -> None:
    p.add_argument("action", choices=["create"])
    p.add_argument("name", help=f"environment to create ({', '.join(ENVIRONMENTS)})")
    p.add_argument("--path", help="where, remembered for later runs (default: "
                                  "$HASHLAB_<NAME>_VENV, the remembered path, or .venvs/NAME "
                                  "in a source checkout)")


def run(args) -> int:
    if args.action != "create" or args.name not in ENVIRONMENTS:
        raise UsageError(f"env: only `hashlab env create NAME` with NAME one of "
                         f"{', '.join(ENVIRONMENTS)} is supported")
    try:
        venv = environment(args.name)
    except ImportError as exc:
        print(f"env: {ENVIRONMENTS[args.name]} is not importable: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        python = venv.create(args.path)
    except RuntimeError as exc:
        print(f"env: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{venv.title} environment ready: {python}")
    return EXIT_OK
