"""The statistics of the gate: does one op's time (or ratio, or simulated cost) in the current
run differ from the baseline run's, and by how much?

- the tests work on replicates, one value each, as close to independent as the run allows:
  - round medians, when both runs were sampled in at least `MIN_ROUNDS` rounds (a fresh
    engine and tables each round, rounds spread over the run: `lab.timing.runner`). Samples
    inside one round share that round's memory placement and the machine's state of that
    moment; on our 2-core machine the medians of two rounds of the same op differ by 5-25%
    while each round's own median is known to +-5%, so only the spread between rounds says
    what a second run will see;
  - otherwise block medians: each run's samples, in the order they were taken, cut into
    `BLOCKS` consecutive blocks, each giving its median (the batch-means method; consecutive
    samples are not independent). Runs with fewer than 2 x BLOCKS samples use them raw. Block
    medians cannot see the spread between rounds, so single-round runs are gated with more
    confidence than they deserve (docs/measurement.md);
- change: median of the current replicates / median of the baseline's;
- its 95% CI: a percentile bootstrap of that quotient (scipy.stats.bootstrap, fixed seed so
  the gate is reproducible);
- p: the two-sided Mann-Whitney U test of the two sets of replicates
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
MIN_ROUNDS = 5                   # fewer rounds: block medians (5 vs 5 can reach p = 0.008)


@dataclasses.dataclass(frozen=True)
class Comparison:
    change: float
    ci_low: float
    ci_high: float
    p: float
    replicates: str = ""         # what the test compared, e.g. "10 vs 10 round medians"


def _quotient_of_medians(x, y, axis=-1):
    return np.median(x, axis=axis) / np.median(y, axis=axis)


def block_medians(samples, blocks: int = BLOCKS) -> np.ndarray:
    """Medians of `blocks` consecutive, near-equal runs of the samples (the samples
    themselves when there are fewer than 2 per block)."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size < 2 * blocks:
        return arr
    return np.array([np.median(part) for part in np.array_split(arr, blocks)])


def round_medians(samples, rounds) -> np.ndarray:
    """The median of each round's samples, in round order (`rounds[i]`: sample i's round)."""
    arr = np.asarray(samples, dtype=np.float64)
    ids = np.asarray(rounds)
    return np.array([np.median(arr[ids == r]) for r in np.unique(ids)])


def _replicates(samples, rounds) -> tuple[np.ndarray, str]:
    arr = np.asarray(samples, dtype=np.float64)
    if rounds is not None and len(rounds) == arr.size and len(set(rounds)) >= MIN_ROUNDS:
        return round_medians(arr, rounds), "round medians"
    return block_medians(arr), "block medians" if arr.size >= 2 * BLOCKS else "samples"


def compare_samples(current, baseline, exact: bool = False, current_rounds=None,
                    baseline_rounds=None) -> Comparison:
    """How `current` samples differ from `baseline` ones (both non-empty, positive).
    `*_rounds`: the round of each sample; round medians are the replicates when both runs
    have at least MIN_ROUNDS rounds."""
    from scipy import stats
    cur = np.asarray(current, dtype=np.float64)
    base = np.asarray(baseline, dtype=np.float64)
    if exact:
        change = float(_quotient_of_medians(cur, base))
        same = cur.shape == base.shape and bool(np.array_equal(cur, base))
        return Comparison(change, change, change, 1.0 if same else 0.0,
                          f"{cur.size} vs {base.size} exact counts")
    if min(cur.size, base.size) < MIN_SAMPLES:
        change = float(_quotient_of_medians(cur, base))
        return Comparison(change, float("nan"), float("nan"), float("nan"),
                          f"{cur.size} vs {base.size} samples")
    (cur, unit_c), (base, unit_b) = (_replicates(cur, current_rounds),
                                     _replicates(base, baseline_rounds))
    if unit_c != unit_b:                  # one run in rounds, the other not: like with like
        (cur, unit_c), (base, unit_b) = (_replicates(current, None),
                                         _replicates(baseline, None))
    what = f"{cur.size} vs {base.size} {unit_c}"
    change = float(_quotient_of_medians(cur, base))
    p = float(stats.mannwhitneyu(cur, base, alternative="two-sided").pvalue)
    if np.all(cur == cur[0]) and np.all(base == base[0]):
        return Comparison(change, change, change, p, what)      # no spread to resample
    ci = stats.bootstrap((cur, base), _quotient_of_medians, n_resamples=BOOTSTRAP_RESAMPLES,
                         vectorized=True, method="percentile", confidence_level=CONFIDENCE,
                         rng=np.random.default_rng(20240611)).confidence_interval
    return Comparison(change, float(ci.low), float(ci.high), p, what)


def adjust(pvalues) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q); nan entries stay nan and are not counted."""
    from scipy import stats
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out.tolist()
