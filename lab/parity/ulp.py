"""float32 error measures: the abs / rel / ulp summary of two arrays (the ulp distance itself
is engines.ulp's and the tolerance test engines.tolerance's, shared with the conformance
suite)."""
from __future__ import annotations

import dataclasses

import numpy as np

from engines.ulp import ulp_distance


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
