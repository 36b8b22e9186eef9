"""Small helpers shared by the conformance tests: capability checks and array builders."""
from __future__ import annotations

import numpy as np
import pytest

import engines


def require(engine, *, op=None, optimizer=None, initializer=None, compressor=None,
            filter=None, fused=False, ttl=False, dedup=False, multi_segment=False,
            quirks=False):
    """Skip (with the reason) what the engine does not declare. `op` is one op name or a
    tuple of them (every op the test calls beyond assign/assign_add/lookup/apply_gradients)."""
    missing = engine.capabilities.missing(engines.Requirements.of(
        ops=op, optimizers=optimizer, initializers=initializer, compressors=compressor,
        filters=filter, fused=fused, ttl=ttl, dedup=dedup, multi_segment=multi_segment,
        quirks=quirks))
    if missing:
        pytest.skip(f"engine {engine.name} does not declare {', '.join(missing)}")


def ids(*values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def rows(*values, dim=None) -> np.ndarray:
    arr = np.array(values, dtype=np.float32)
    return arr.reshape(len(values), -1) if dim is None else arr.reshape(-1, dim)


# Set for the child processes that run tests/tfops/cluster/ (one in-process cluster each).
TFOPS_CLUSTER_ENV = "HASHLAB_TFOPS_CLUSTER_CHILD"
