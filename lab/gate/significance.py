"""The statistics of the gate: is one op's ratio in the current run different from the
baseline run's, and by how much?

- change: median(current ratios) / median(baseline ratios);
- the tests work on block medians: each run's ratio samples, in the order they were taken,
  are cut into `BLOCKS` consecutive blocks and each block gives its median. Consecutive
  samples share the machine's state (other processes, caches, clock speed), so single samples
  are not independent and a test on them is overconfident; block medians are much closer to
  independent (the batch-means method). Runs with fewer than 2 x BLOCKS samples use them raw;
- its 95% CI: a percentile bootstrap of the quotient of the block medians' medians
  (scipy.stats.bootstrap, fixed seed so the gate is reproducible);
- p: the two-sided Mann-Whitney U test of the two sets of block medians
  (scipy.stats.mannwhitneyu), the test asv uses for its regressions;
- q: p adjusted for the number of ops compared with Benjamini-Hochberg
  (scipy.stats.false_discovery_control), so gating 50 ops does not raise 50 chances of a false
  alarm.

Simulated-cost runs count instead of timing, so they carry no sampling noise: their change
is exact (p = 0 when the counts differ, 1 when they are identical).
"""
from __future__ import annotations

import dataclasses

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
MIN_SAMPLES = 3                  # fewer ratio samples on either side: cannot test
BLOCKS = 10


@dataclasses.dataclass(frozen=True)
class Comparison:
    change: float
    ci_low: float
    ci_high: float
    p: float


def _quotient_of_medians(x, y, axis=-1):
    return np.median(x, axis=axis) / np.median(y, axis=axis)


def block_medians(samples, blocks: int = BLOCKS) -> np.ndarray:
    """Medians of `blocks` consecutive, near-equal runs of the samples (the samples
    themselves when there are fewer than 2 per block)."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size < 2 * blocks:
        return arr
    return np.array([np.median(part) for part in np.array_split(arr, blocks)])


def compare_samples(current, baseline, exact: bool = False) -> Comparison:
    """How `current` ratio samples differ from `baseline` ones (both non-empty, positive)."""
    from scipy import stats
    cur = np.asarray(current, dtype=np.float64)
    base = np.asarray(baseline, dtype=np.float64)
    change = float(_quotient_of_medians(cur, base))
    if exact:
        same = cur.shape == base.shape and bool(np.array_equal(cur, base))
        return Comparison(change, change, change, 1.0 if same else 0.0)
    if min(cur.size, base.size) < MIN_SAMPLES:
        return Comparison(change, float("nan"), float("nan"), float("nan"))
    cur, base = block_medians(cur), block_medians(base)
    p = float(stats.mannwhitneyu(cur, base, alternative="two-sided").pvalue)
    if np.all(cur == cur[0]) and np.all(base == base[0]):
        return Comparison(change, change, change, p)       # no spread to resample
    ci = stats.bootstrap((cur, base), _quotient_of_medians, n_resamples=BOOTSTRAP_RESAMPLES,
                         vectorized=True, method="percentile", confidence_level=CONFIDENCE,
                         rng=np.random.default_rng(20240611)).confidence_interval
    return Comparison(change, float(ci.low), float(ci.high), p)


def adjust(pvalues) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q); nan entries stay nan and are not counted."""
    from scipy import stats
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out.tolist()
