"""float32 ulp distance: the one measure of "how many representable floats apart" that the
conformance suite (engines.testing) and the lab's parity reports (lab.parity) both use.

The distance maps each float32 bit pattern onto a monotonic integer line (negative floats
mirrored below zero), so it counts the representable floats between a and b: adjacent floats
are 1 apart, +0 and -0 are 0 apart, and the distance across zero is the sum of both sides.
NaN vs NaN counts as equal; NaN vs a number is infinitely far.
"""
from __future__ import annotations

import numpy as np

_SIGN = np.int64(1) << 31


def _ordered(x: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.int32).astype(np.int64)
    # Negative floats: larger magnitude -> larger bit pattern; flip them below zero.
    return np.where(bits < 0, -(bits + _SIGN), bits)


def ulp_distance(a, b) -> np.ndarray:
    """Elementwise |a - b| in float32 ulps (float64 array; inf where exactly one is NaN)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    a, b = np.broadcast_arrays(a, b)
    dist = np.abs(_ordered(a) - _ordered(b)).astype(np.float64)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    dist[nan_a & nan_b] = 0.0
    dist[nan_a ^ nan_b] = np.inf
    return dist
