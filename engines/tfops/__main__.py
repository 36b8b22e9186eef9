"""`python -m engines.tfops build`: compile the op library into the cache now and say where."""
from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.tfops")
    parser.add_argument("command", choices=["build", "path"])
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from engines.tfops import build
    if args.command == "path":
        print(build.library_path())
        return 0
    started = time.perf_counter()
    try:
        path = build.build(force=args.force)
        build.load()
    except build.BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{path} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
