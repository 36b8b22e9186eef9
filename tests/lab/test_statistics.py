"""The statistics behind the timing runner and the gate, on synthetic samples with a known
answer (no timing here: the distributions are drawn from seeded generators)."""
import math

import numpy as np
import pytest

from lab.gate.significance import MIN_SAMPLES, adjust, compare_samples
from lab.timing.sampling import OpSamples, Sampling
from lab.timing.stats import median_ci, relative_half_width


def _ratios(seed, n=60, scale=2.0, spread=0.15):
    """Log-normal ratio samples (timings are skewed to the right)."""
    return (scale * np.random.default_rng(seed).lognormal(0.0, spread, n)).tolist()


def test_a_known_shift_is_detected_with_its_size():
    base, cur = _ratios(1), _ratios(2, scale=2.0 * 1.25)
    cmp = compare_samples(cur, base)
    assert cmp.p < 1e-3            # 10 block medians a side: p cannot go below ~1e-5
    assert 1.15 < cmp.change < 1.35 and cmp.ci_low < 1.25 < cmp.ci_high
    assert cmp.ci_low > 1.0                       # the CI excludes "no change"


@pytest.mark.parametrize("seed", range(20))
def test_two_draws_of_one_distribution_are_not_different(seed):
    cmp = compare_samples(_ratios(100 + seed), _ratios(200 + seed))
    assert cmp.p > 0.001                          # would be a false alarm at asv's level
    assert cmp.ci_low < 1.0 < cmp.ci_high or math.isclose(cmp.change, 1.0, rel_tol=0.02)


def test_false_alarm_rate_of_the_test_matches_its_level():
    # 400 same-distribution comparisons: at p < 0.05 about 5% fire, never many more
    fired = sum(compare_samples(_ratios(1000 + i, n=30), _ratios(5000 + i, n=30)).p < 0.05
                for i in range(400))
    assert 5 <= fired <= 40


def test_benjamini_hochberg_adjusts_and_keeps_nan():
    q = adjust([0.001, 0.02, 0.04, float("nan"), 0.5])
    assert math.isnan(q[3])
    assert q[0] == pytest.approx(0.004) and q[1] == pytest.approx(0.04)       # p * m / rank
    assert q[2] == pytest.approx(0.04 * 4 / 3) and q[4] == pytest.approx(0.5)
    assert all(qi >= pi for qi, pi in zip([q[0], q[1], q[2], q[4]], [0.001, 0.02, 0.04, 0.5]))


def test_exact_mode_for_deterministic_counts():
    same = compare_samples([3.0, 4.0, 5.0], [3.0, 4.0, 5.0], exact=True)
    assert same.change == 1.0 and same.p == 1.0 and same.ci_low == same.ci_high == 1.0
    slower = compare_samples([3.75, 5.0, 6.25], [3.0, 4.0, 5.0], exact=True)
    assert slower.change == 1.25 and slower.p == 0.0


def test_too_few_samples_cannot_be_tested():
    cmp = compare_samples([1.0] * (MIN_SAMPLES - 1), [1.0, 1.1, 1.2, 1.3])
    assert math.isnan(cmp.p) and math.isnan(cmp.ci_low)


def test_median_ci_covers_the_true_median():
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(200):
        low, high = median_ci(rng.normal(10.0, 1.0, 40))
        covered += low <= 10.0 <= high
    assert covered >= 180                          # 95% nominal (order statistics: >= 95%)
    assert all(math.isnan(x) for x in median_ci([1.0, 2.0, 3.0]))   # too few for 95%
    assert median_ci([2.0] * 8) == (2.0, 2.0)
    assert relative_half_width([1.0, 2.0]) == math.inf


def _op(ratios, engine=None):
    rec = OpSamples(0, "lookup", "dense_take", 8)
    rec.engine = list(engine if engine is not None else ratios)
    rec.baseline = [e / r for e, r in zip(rec.engine, ratios)]
    return rec


def test_adaptive_sampling_stops_when_precise_or_capped():
    s = Sampling(min_samples=10, max_samples=50, target=0.05, cap_s=1.0, floor=3)
    tight = _op(_ratios(3, n=40, spread=0.02))
    noisy = _op(_ratios(4, n=40, spread=0.8))
    assert s.converged(tight) and not s.converged(noisy)
    assert s.done([tight], elapsed=0.1)            # precise enough: stop early
    assert not s.done([tight, noisy], elapsed=0.1)  # one op still imprecise: go on
    assert s.done([tight, noisy], elapsed=2.5)     # but not past the per-op time cap
    assert not s.done([_op(_ratios(5, n=2))], elapsed=99.0)    # never below the floor
    assert s.done([_op(_ratios(6, n=50, spread=0.8))], elapsed=0.0)   # max_samples
    assert not s.done([_op(_ratios(3, n=8, spread=0.02))], elapsed=0.0)   # min_samples
    fixed = Sampling.fixed(4)
    assert not fixed.done([_op(_ratios(7, n=3))], 1e9) and fixed.done([_op(_ratios(7, n=4))], 0)
    # An op slower than long_s a sample: one sample is enough, the floor gives way.
    slow = Sampling(floor=3, cap_s=1.0, long_s=60.0)
    assert not slow.done([_op(_ratios(5, n=1))], elapsed=59.0)
    assert slow.done([_op(_ratios(5, n=1))], elapsed=61.0)


def test_block_medians_follow_the_sample_order():
    from lab.gate.significance import BLOCKS, block_medians
    drift = np.repeat(np.arange(BLOCKS, dtype=float), 4)        # a slow drift in 10 steps
    assert block_medians(drift).tolist() == list(range(BLOCKS))
    assert block_medians([3.0, 1.0, 2.0]).tolist() == [3.0, 1.0, 2.0]   # too few: raw
    # a drift inside one run makes single samples look far more certain than they are
    rng = np.random.default_rng(11)
    a = 1.0 + np.linspace(0, 0.2, 200) + rng.normal(0, 0.01, 200)
    b = 1.0 + np.linspace(0.2, 0, 200) + rng.normal(0, 0.01, 200)
    assert compare_samples(a, b).p > 0.05


def _rounds(seed, rounds=10, per_round=20, scale=2.0, between=0.08, within=0.01):
    """Samples whose rounds differ (each round's own level, log-sd `between`) much more than
    the samples inside a round do (log-sd `within`): what fresh tables do on a real machine."""
    rng = np.random.default_rng(seed)
    levels = scale * rng.lognormal(0.0, between, rounds)
    samples = np.concatenate([lvl * rng.lognormal(0.0, within, per_round) for lvl in levels])
    return samples.tolist(), np.repeat(np.arange(rounds), per_round).tolist()


def test_round_medians_are_the_replicates_when_there_are_enough_rounds():
    from lab.gate.significance import MIN_ROUNDS, round_medians
    samples, rounds = _rounds(1)
    meds = round_medians(samples, rounds)
    assert len(meds) == 10 and meds[0] == np.median(samples[:20])
    cmp = compare_samples(samples, samples, current_rounds=rounds, baseline_rounds=rounds)
    assert cmp.replicates == "10 vs 10 round medians" and cmp.change == 1.0
    few = [r % (MIN_ROUNDS - 1) for r in rounds]
    assert "block medians" in compare_samples(samples, samples, current_rounds=few,
                                              baseline_rounds=few).replicates
    # one run in rounds and the other not: both are compared the same way
    assert "block medians" in compare_samples(samples, samples, current_rounds=rounds).replicates


def test_a_spread_between_rounds_is_not_a_regression():
    """Two draws of the same round-to-round spread: ten rounds a side hold the test's level;
    single-round runs (block medians of one round's samples) look far more certain than they
    are and fire most of the time."""
    fired_rounds = fired_blocks = 0
    for seed in range(40):
        (a, ra), (b, rb) = _rounds(300 + seed), _rounds(700 + seed)
        fired_rounds += compare_samples(b, a, current_rounds=rb, baseline_rounds=ra).p < 0.01
        (a1, _), (b1, _) = _rounds(300 + seed, rounds=1, per_round=200), \
            _rounds(700 + seed, rounds=1, per_round=200)
        fired_blocks += compare_samples(b1, a1).p < 0.01
    assert fired_rounds <= 2                       # about 1% expected at p < 0.01
    assert fired_blocks >= 30                      # what single-round gating would do (40)


def test_a_shift_is_found_across_rounds():
    (base, rb), (cur, rc) = _rounds(5), _rounds(6, scale=2.0 * 1.25)
    cmp = compare_samples(cur, base, current_rounds=rc, baseline_rounds=rb)
    assert cmp.p < 1e-3 and cmp.ci_low > 1.0 and 1.1 < cmp.change < 1.45
