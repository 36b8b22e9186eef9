"""CPU-runnable checks of the CUDA module: it is built wherever nvcc is (CI included), imports
without a GPU or driver (static cudart), and reports why it cannot run instead of crashing."""
from __future__ import annotations

import importlib
import shutil
import subprocess
import sys

import pytest

import engines


def _module():
    try:
        return importlib.import_module("engines.native._native_cuda")
    except ImportError as exc:
        if shutil.which("nvcc"):
            pytest.fail(f"nvcc is on PATH but _native_cuda was not built: {exc}")
        pytest.skip(f"not built: {exc}")


def test_import_engines_does_not_load_cuda():
    code = ("import sys, engines, engines.native; "
            "print('engines.native._native_cuda' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def test_module_imports_and_probe_explains_itself():
    mod = _module()
    reason = mod.probe()
    if mod.device_count() > 0:
        assert reason == ""
    else:
        assert reason.startswith("no CUDA device: ")
        assert len(reason) > len("no CUDA device: ")


def test_registry_reports_native_gpu():
    info = {i.name: i for i in engines.available()}["native-gpu"]
    if info.available:
        caps = info.capabilities
        assert caps.gpu and caps.device_arrays and not caps.threads
    else:
        assert info.reason.startswith(("no CUDA device: ", "not built: ")), info.reason
        with pytest.raises(engines.EngineUnavailable):
            engines.get("native-gpu")


def test_unavailable_reason_matches_probe():
    mod = _module()
    if mod.device_count() > 0:
        pytest.skip("a CUDA device is present")
    info = {i.name: i for i in engines.available()}["native-gpu"]
    assert not info.available and info.reason == mod.probe()
