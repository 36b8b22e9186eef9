"""Helpers for the GPU tests (a module of its own: `conftest` names clash across folders)."""
from __future__ import annotations

import pytest


def optional(name):
    """CuPy / torch (with CUDA) when importable, else a skip."""
    if name == "cupy":
        cupy = pytest.importorskip("cupy")
        try:
            cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # pragma: no cover - depends on the machine
            pytest.skip(f"cupy cannot see a device: {exc}")
        return cupy
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    return torch
