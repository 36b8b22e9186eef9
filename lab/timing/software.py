"""What else a result depends on besides the machine (`lab.timing.machine.machine_info`
adds it): the CPU model and kernel, the versions of the distributions that change what an
engine computes or how fast (read from their metadata; nothing is imported), and the
compiler, version and flags that built the native engine (the build_info.json CMake
installs beside `_native_cpu`). The gate prints every difference (`lab.gate.environment`).

Its own module, imported only when a run records its machine: the simulated mode's child
imports `lab.timing.machine`, and what that module holds moves the child's heap, and with it
the cache misses of small calls (a few percent on a 50,000-cycle call).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform

PACKAGES = ("tensorflow-cpu", "tensorflow", "protobuf", "scipy", "nanobind", "hashtable-lab")


def software() -> dict:
    from lab.timing.machine import _cpu_model
    return {"cpu_model": _cpu_model(), "kernel": platform.release(),
            "packages": package_versions(), "native_build": native_build()}


def package_versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def native_build() -> dict | None:
    """{compiler_id, compiler_version, compiler, build_type, flags} of the native engine, or
    None when it is not built or predates the record."""
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
