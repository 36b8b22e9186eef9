"""What a result was measured on: machine facts and the git commit (when there is one)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import psutil


def machine_info() -> dict:
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError):       # not exposed in some containers
        freq = None
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or _cpu_model(),
        "cpu_count_logical": psutil.cpu_count(logical=True),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "cpu_freq_mhz": round(freq.max or freq.current, 1) if freq else None,
        "memory_gb": round(psutil.virtual_memory().total / 2 ** 30, 1),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        **software_info(),
    }


def software_info() -> dict:
    from lab.timing.software import software    # not at import: see lab.timing.software
    return software()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def git_info(cwd: str | None = None) -> dict:
    """{'commit': sha or None, 'dirty': bool or None} (read-only git calls)."""
    cwd = cwd or os.getcwd()

    def git(*args):
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=10)
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode:
            return {"commit": None, "dirty": None}
        status = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
