import math
import os

import numpy as np
import pandas as pd
import pytest

from lab.engine_select import resolve
from lab.timing import COLUMNS, Baselines, Sampling, run_timing
from lab.timing.baseline import DENSE_TAKE, READ, WRITE_FSYNC, kind_for
from lab.timing.stats import iqr, median, rate

FIXED = Sampling.fixed(4)


def test_timing_rows_describe_every_op(training_scenario):
    choices, _ = resolve(["numpy"])
    perf = run_timing([training_scenario], choices, sampling=FIXED)
    assert list(perf.columns) == COLUMNS
    assert perf.op.tolist() == [o.op for o in training_scenario.ops]
    assert (perf.repeats == 4).all() and (perf.measure == "wall").all()
    assert (perf.median_s > 0).all() and (perf.iqr_s >= 0).all()
    assert perf.set_index("op").baseline.to_dict() == {
        "apply_gradients": DENSE_TAKE, "lookup": DENSE_TAKE, "save": WRITE_FSYNC,
        "restore": READ}
    assert (perf.ratio_to_baseline > 0).all() and (perf.peak_rss_mb > 0).all()
    lookup = perf[perf.op == "lookup"].iloc[0]
    assert lookup.n_ids == 48 and np.isclose(lookup.ids_per_s, 48 / lookup.median_s)
    assert np.isclose(lookup.bytes_per_s, 48 * 4 * 4 / lookup.median_s)
    for row in perf.itertuples():
        # raw samples: one engine time and one paired ratio per measured step
        assert len(row.samples_s) == 4 and len(row.ratio_samples) == 4
        assert row.median_s == median(row.samples_s)
        assert row.ratio_to_baseline == median(row.ratio_samples)
        assert row.load_avg >= 0 and isinstance(row.unstable, (bool, np.bool_))
        # four samples are too few for a 95% CI of the median: unknown, so unstable
        assert math.isnan(row.ci_low_s) and row.unstable
        assert row.cost_samples == [] and math.isnan(row.median_cost)


def test_adaptive_sampling_keeps_every_raw_sample(storage_scenario):
    choices, _ = resolve(["numpy"])
    sampling = Sampling(min_samples=8, max_samples=12, cap_s=30.0, warmup_s=0.0)
    perf = run_timing([storage_scenario], choices, sampling=sampling)
    for row in perf.itertuples():
        assert 8 <= row.repeats <= 12 and len(row.samples_s) == row.repeats
        assert row.ci_low_s <= row.median_s <= row.ci_high_s
        if row.op == "size":                                  # no baseline: no ratio
            assert pd.isna(row.baseline) and row.ratio_samples == []
            assert math.isnan(row.ratio_to_baseline)
        else:
            assert row.ratio_ci_low <= row.ratio_to_baseline <= row.ratio_ci_high
            assert row.unstable == (max(row.ratio_to_baseline - row.ratio_ci_low,
                                        row.ratio_ci_high - row.ratio_to_baseline)
                                    / row.ratio_to_baseline > sampling.target)


def test_a_step_slower_than_long_s_is_warmed_up_and_sampled_once(storage_scenario):
    """The bound for huge scenarios (a 4 M-entry checkpoint on a Python engine): one warm-up
    step and one sample, whatever the floor and the scenario's own warm-up ask for."""
    choices, _ = resolve(["numpy"])
    sampling = Sampling(min_samples=8, max_samples=12, floor=5, cap_s=0.0, warmup_s=0.0,
                        long_s=0.0)
    perf = run_timing([storage_scenario], choices, sampling=sampling)
    assert not perf.empty and set(perf.repeats) == {1}


def test_rounds_sample_fresh_engines_spread_over_the_run(storage_scenario, training_scenario,
                                                        monkeypatch):
    """Round r of every scenario before round r + 1 of any; each row keeps every round's
    samples with the round they came from."""
    import lab.timing.runner as runner
    order, made = [], []
    one_round = runner._one_round

    def spy(scenario, choice, workdir, sampling):
        order.append(scenario.name)
        return one_round(scenario, choice, workdir, sampling)

    monkeypatch.setattr(runner, "_one_round", spy)
    from lab.engine_select import EngineChoice
    make = EngineChoice.make
    monkeypatch.setattr(EngineChoice, "make",
                        lambda self, *a, **k: made.append(1) or make(self, *a, **k))
    choices, _ = resolve(["numpy"])
    perf = run_timing([storage_scenario, training_scenario], choices,
                      sampling=Sampling(min_samples=2, max_samples=2, cap_s=float("inf"),
                                        floor=2, warmup_s=0.0, long_s=float("inf"), rounds=3))
    names = [storage_scenario.name, training_scenario.name]
    assert order == names * 3 and len(made) == 6              # a fresh engine each round
    for row in perf.itertuples():
        assert row.rounds == 3 and row.repeats == 6
        assert row.sample_rounds == [0, 0, 1, 1, 2, 2]
        assert len(row.samples_s) == 6
        if row.op != "size":
            assert len(row.ratio_samples) == 6


def test_one_round_is_the_default(storage_scenario):
    choices, _ = resolve(["numpy"])
    perf = run_timing([storage_scenario], choices, sampling=FIXED)
    assert (perf.rounds == 1).all()
    assert all(r == [0] * 4 for r in perf.sample_rounds)
    with pytest.raises(ValueError, match="rounds"):
        Sampling(rounds=0)


def test_skip_pairs_are_not_timed(training_scenario):
    choices, _ = resolve(["numpy"])
    perf = run_timing([training_scenario], choices, {("numpy", "tiny_training")})
    assert perf.empty


def test_unknown_measure_is_refused(training_scenario):
    choices, _ = resolve(["numpy"])
    with pytest.raises(ValueError, match="measure"):
        run_timing([training_scenario], choices, measure="cpu")


def test_baselines_do_the_ops_work(tmp_path):
    b = Baselines(str(tmp_path))
    take = b.prepare(DENSE_TAKE, 1000, 8, 100, 0)
    assert take is b.prepare(DENSE_TAKE, 1000, 8, 100, 0)          # inputs built once
    assert take().shape == (100, 8)
    assert b.prepare(None, 1000, 8, 100, 0) is None
    assert b.prepare(WRITE_FSYNC, 0, 0, 0, 0) is None
    # save's baseline writes (and fsyncs) the same bytes into as many files
    b.prepare(WRITE_FSYNC, 0, 0, 10, 10_001, files=3)()
    written = sorted(p for p in os.listdir(tmp_path) if not p.startswith("."))
    assert len(written) == 3
    assert sum(os.path.getsize(tmp_path / p) for p in written) == 10_001
    # restore's baseline reads them back
    assert sum(a.size for a in b.prepare(READ, 0, 0, 10, 10_001, files=3)()) == 10_001
    # a restore without a save baseline before it writes its files first (untimed)
    assert b.prepare(READ, 0, 0, 10, 50, files=1)()[0].size == 50
    assert kind_for("save") == WRITE_FSYNC and kind_for("size") is None


def test_stats_helpers():
    assert median([3, 1, 2]) == 2 and iqr([1, 2, 3, 4, 5]) == 2 and iqr([7]) == 0
    assert rate(10, 2) == 5 and np.isnan(rate(0, 1)) and np.isnan(rate(5, 0))
    assert math.isnan(median([]))


def test_a_run_records_the_commit_it_started_on(storage_scenario, monkeypatch):
    """A long run (`--full` takes most of an hour) keeps the commit it measured even when the
    checkout moves on while it runs."""
    import lab.suite as suite
    from lab import timing
    commits = iter([{"commit": "a" * 40, "dirty": False}, {"commit": "b" * 40, "dirty": False}])
    monkeypatch.setattr(timing, "git_info", lambda *a, **k: next(commits))
    real = suite.parity.run_parity

    def run_parity(*args, **kwargs):
        timing.git_info()                      # the checkout changes during the run
        return real(*args, **kwargs)

    monkeypatch.setattr(suite.parity, "run_parity", run_parity)
    choices, _ = resolve(["numpy"])
    result = suite.run_suite([storage_scenario], choices, timing_on=False)
    assert result.meta["git"]["commit"] == "a" * 40
