"""GPU tests: they run where _native_cuda imports and a CUDA device exists, and skip otherwise
with the reason ("not built: ..." / "no CUDA device: ...")."""
from __future__ import annotations

import pytest

import engines


def gpu_unavailable_reason() -> str:
    """'' when native-gpu can run here, else the registry's reason."""
    try:
        engines.get("native-gpu")
    except engines.EngineUnavailable as exc:
        return exc.reason
    return ""


@pytest.fixture
def gpu():
    reason = gpu_unavailable_reason()
    if reason:
        pytest.skip(reason)
    return engines.get("native-gpu")


@pytest.fixture
def ref():
    return engines.get("numpy")
