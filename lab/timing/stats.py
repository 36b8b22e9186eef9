"""Robust summaries of repeated timings: the median and the interquartile range."""
from __future__ import annotations

import numpy as np


def median(samples) -> float:
    return float(np.median(np.asarray(samples, dtype=np.float64)))


def iqr(samples) -> float:
    """q75 - q25 (0 for fewer than two samples)."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size < 2:
        return 0.0
    q25, q75 = np.percentile(arr, [25, 75])
    return float(q75 - q25)


def rate(amount: float, seconds: float) -> float:
    return float(amount) / seconds if seconds > 0 and amount else float("nan")
