"""Small helpers shared by the conformance tests: capability checks and array builders."""
from __future__ import annotations

import numpy as np
import pytest


def require(engine, *, op=None, optimizer=None, initializer=None, compressor=None,
            filter=None, fused=False, ttl=False, dedup=False, multi_segment=False,
            quirks=False):
    """Skip (with the reason) what the engine does not declare. `op` is one op name or a
    tuple of them (every op the test calls beyond assign/assign_add/lookup/apply_gradients)."""
    caps = engine.capabilities
    ops = (op,) if isinstance(op, str) else tuple(op or ())
    checks = [
        (optimizer, lambda: optimizer in caps.optimizers, f"optimizer {optimizer}"),
        (initializer, lambda: initializer in caps.initializers, f"initializer {initializer}"),
        (compressor, lambda: compressor in caps.compressors, f"compressor {compressor}"),
        (filter, lambda: filter in caps.filters, f"{filter} filter"),
        (fused or None, lambda: caps.fused, "fused ops"),
        (ttl or None, lambda: caps.ttl, "TTL"),
        (dedup or None, lambda: caps.dedup, "dedup"),
        (multi_segment or None, lambda: caps.multi_segment, "multi-segment entries"),
        (quirks or None, lambda: caps.quirks, "monolith_quirks"),
    ] + [(name, lambda name=name: name in caps.ops, f"op {name}") for name in ops]
    for wanted, ok, what in checks:
        if wanted is not None and wanted is not False and not ok():
            pytest.skip(f"engine {engine.name} does not declare {what}")


def ids(*values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def rows(*values, dim=None) -> np.ndarray:
    arr = np.array(values, dtype=np.float32)
    return arr.reshape(len(values), -1) if dim is None else arr.reshape(-1, dim)
