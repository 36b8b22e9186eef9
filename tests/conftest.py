"""Shared fixtures: the conformance suite runs on every engine the registry can load.

`HASHLAB_ENGINES=numpy,native-cpu` restricts the run. Engines that cannot load here are
reported as skipped with their reason. Engines that declare threads run with threads=1
and threads=2 (results must be identical).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import engines

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _engine_params():
    wanted = os.environ.get("HASHLAB_ENGINES")
    wanted = set(wanted.split(",")) if wanted else None
    params = []
    for info in engines.available():
        if wanted is not None and info.name not in wanted:
            continue
        if not info.available:
            params.append(pytest.param((info.name, {}), id=info.name, marks=pytest.mark.skip(
                reason=f"engine {info.name} unavailable: {info.reason}")))
        elif info.capabilities.threads:
            for n in (1, 2):
                params.append(pytest.param((info.name, {"threads": n}),
                                           id=f"{info.name}-t{n}"))
        else:
            params.append(pytest.param((info.name, {}), id=info.name))
    return params


@pytest.fixture(params=_engine_params())
def engine(request):
    name, options = request.param
    return engines.get(name, **options)


@pytest.fixture
def numpy_engine():
    return engines.get("numpy")
