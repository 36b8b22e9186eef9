"""What a result was measured on: machine facts, the software stack (Python, numpy, TensorFlow,
protobuf versions; the compiler and flags that built the native engine) and the git commit
(when there is one). The gate prints every difference between two runs' records
(`lab.gate.environment`)."""
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
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "packages": package_versions(),
        "native_build": native_build(),
    }


# Distributions whose version changes what an engine computes or how fast (read from their
# metadata: nothing is imported).
PACKAGES = ("tensorflow-cpu", "tensorflow", "protobuf", "scipy", "nanobind", "hashtable-lab")


def package_versions() -> dict:
    import importlib.metadata     # here, not at the top: the simulated child imports this
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def native_build() -> dict | None:
    """The compiler, its version and the flags that built the native engine (the
    build_info.json CMake installs beside `_native_cpu`), or None when it is not built or
    predates the record."""
    import importlib.util
    import json
    try:
        spec = importlib.util.find_spec("engines.native._native_cpu")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "build_info.json")
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    info["flags"] = " ".join(str(info.get("flags", "")).split())
    return info


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
