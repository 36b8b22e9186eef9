import numpy as np

from lab.engine_select import resolve
from lab.timing import COLUMNS, Baselines, run_timing
from lab.timing.baseline import DENSE_TAKE, FROMFILE, TOFILE, kind_for
from lab.timing.stats import iqr, median, rate


def test_timing_rows_describe_every_op(training_scenario):
    choices, _ = resolve(["numpy"])
    perf = run_timing([training_scenario], choices)
    assert list(perf.columns) == COLUMNS
    assert perf.op.tolist() == [o.op for o in training_scenario.ops]
    assert (perf.repeats == training_scenario.steps).all()      # warm-up steps excluded
    assert (perf.median_s > 0).all() and (perf.iqr_s >= 0).all()
    assert perf.set_index("op").baseline.to_dict() == {
        "apply_gradients": DENSE_TAKE, "lookup": DENSE_TAKE, "save": TOFILE,
        "restore": FROMFILE}
    assert (perf.ratio_to_baseline > 0).all() and (perf.peak_rss_mb > 0).all()
    lookup = perf[perf.op == "lookup"].iloc[0]
    assert lookup.n_ids == 48 and np.isclose(lookup.ids_per_s, 48 / lookup.median_s)
    assert np.isclose(lookup.bytes_per_s, 48 * 4 * 4 / lookup.median_s)


def test_skip_pairs_are_not_timed(training_scenario):
    choices, _ = resolve(["numpy"])
    perf = run_timing([training_scenario], choices, {("numpy", "tiny_training")})
    assert perf.empty


def test_baselines_are_cached_and_nan_without_payload(tmp_path):
    b = Baselines(repeats=3, workdir=str(tmp_path))
    first = b.seconds(DENSE_TAKE, 1000, 8, 100, 0)
    assert first > 0 and b.seconds(DENSE_TAKE, 1000, 8, 100, 0) == first
    assert np.isnan(b.seconds(None, 1000, 8, 100, 0))
    assert np.isnan(b.seconds(TOFILE, 0, 0, 0, 0))
    assert b.seconds(FROMFILE, 0, 0, 0, 4096) > 0
    assert kind_for("save") == TOFILE and kind_for("size") is None


def test_stats_helpers():
    assert median([3, 1, 2]) == 2 and iqr([1, 2, 3, 4, 5]) == 2 and iqr([7]) == 0
    assert rate(10, 2) == 5 and np.isnan(rate(0, 1)) and np.isnan(rate(5, 0))
