"""`hashlab gate --asv BASE HEAD`: asv's own commit-to-commit check.

`asv continuous --factor F BASE HEAD` builds both commits, runs the suites and exits 1 when a
benchmark got slower by more than F ("PERFORMANCE DECREASED"); its exit status is ours.
"""
from __future__ import annotations

import shutil
import subprocess
import sys


def asv_command() -> list[str]:
    exe = shutil.which("asv")
    return [exe] if exe else [sys.executable, "-m", "asv"]


def continuous(base: str, head: str, factor: float, extra=()) -> int:
    cmd = [*asv_command(), "continuous", "--factor", str(factor), *extra, base, head]
    print("running:", " ".join(cmd), flush=True)
    try:
        return subprocess.run(cmd).returncode
    except OSError as exc:
        print(f"gate: cannot run asv: {exc}", file=sys.stderr)
        return 2
