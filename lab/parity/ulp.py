"""float32 error measures: ulp distance and the abs / rel / ulp summary of two arrays.

The ulp distance maps each float32 bit pattern onto a monotonic integer line (negative floats
mirrored below zero), so the distance is the count of representable floats between a and b:
adjacent floats are 1 apart, +0 and -0 are 0 apart, and the distance across zero is the sum
of both sides. NaN vs NaN counts as equal; NaN vs a number is infinitely far.
"""
from __future__ import annotations

import dataclasses

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


@dataclasses.dataclass(frozen=True)
class ErrorStats:
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    max_ulp: float = 0.0

    def worst(self, other: "ErrorStats") -> "ErrorStats":
        return ErrorStats(max(self.max_abs_err, other.max_abs_err),
                          max(self.max_rel_err, other.max_rel_err),
                          max(self.max_ulp, other.max_ulp))


def error_stats(actual, expected) -> ErrorStats:
    """Largest absolute, relative (to |expected|) and ulp error over all elements."""
    a = np.asarray(actual, dtype=np.float32).astype(np.float64).reshape(-1)
    e = np.asarray(expected, dtype=np.float32).astype(np.float64).reshape(-1)
    if a.size == 0:
        return ErrorStats()
    with np.errstate(invalid="ignore"):
        diff = np.abs(a - e)
    both_nan = np.isnan(a) & np.isnan(e)
    diff[both_nan] = 0.0
    diff[np.isnan(diff)] = np.inf
    rel = np.where(diff == 0, 0.0, diff / np.maximum(np.abs(e), np.finfo(np.float32).tiny))
    return ErrorStats(float(diff.max()), float(rel.max()),
                      float(ulp_distance(actual, expected).max()))


def within_ulps(actual, expected, max_ulp: int, abs_floor: float) -> np.ndarray:
    """Elementwise tolerance test: at most `max_ulp` apart, or within `abs_floor` absolutely
    (ulps are meaningless next to zero, where a tiny value is many ulps from 0)."""
    a = np.asarray(actual, dtype=np.float32)
    e = np.asarray(expected, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        close = np.abs(a.astype(np.float64) - e.astype(np.float64)) <= abs_floor
    return (ulp_distance(a, e) <= max_ulp) | close
