"""Robust summaries of repeated measurements: median, IQR and the 95% confidence interval of
the median (distribution-free, from scipy.stats.quantile_test's order statistics)."""
from __future__ import annotations

import math

import numpy as np

CONFIDENCE = 0.95


def median(samples) -> float:
    arr = np.asarray(samples, dtype=np.float64)
    return float(np.median(arr)) if arr.size else float("nan")


def iqr(samples) -> float:
    """q75 - q25 (0 for fewer than two samples)."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size < 2:
        return 0.0
    q25, q75 = np.percentile(arr, [25, 75])
    return float(q75 - q25)


def rate(amount: float, seconds: float) -> float:
    return float(amount) / seconds if seconds > 0 and amount else float("nan")


def median_ci(samples, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(low, high) of the `confidence` interval of the median. Exact for any continuous
    distribution; (nan, nan) when there are too few samples for that confidence (fewer than 6
    at 95%)."""
    from scipy import stats
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0 or not np.isfinite(arr).all():
        return float("nan"), float("nan")
    if np.all(arr == arr[0]):                  # no spread at all (deterministic counts)
        return float(arr[0]), float(arr[0])
    ci = stats.quantile_test(arr, q=float(np.median(arr)), p=0.5).confidence_interval(
        confidence)
    return float(ci.low), float(ci.high)


def relative_half_width(samples, confidence: float = CONFIDENCE) -> float:
    """How far the CI of the median reaches from the median, as a fraction of it (the larger
    side); inf when the CI cannot be computed."""
    low, high = median_ci(samples, confidence)
    mid = median(samples)
    if not (math.isfinite(low) and math.isfinite(high)) or not mid > 0:
        return math.inf
    return max(mid - low, high - mid) / mid
