"""The compiled bindings called directly (skipping engines/api.py validation) with bad input:
every call raises a clear Python error or works, never crashes, and leaves the table unchanged."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engines

native = pytest.importorskip("engines.native._native_cpu")
from engines.native.cpu import _segment_dict  # noqa: E402

DIM = 3
PROBE = np.arange(-2, 10, dtype=np.int64)


def make_table(threads=2, dim=DIM):
    t = engines.get("native-cpu", threads=threads).create_table(
        engines.table_config(dim=dim, optimizer="adagrad"))
    t.assign(np.arange(5, dtype=np.int64), np.arange(5 * dim, dtype=np.float32).reshape(5, dim),
             req_time=3)
    return t


def snapshot(t):
    return t.size(), t.lookup_entry(PROBE), t.max_update_ts


dtypes = st.sampled_from([np.int64, np.int32, np.uint64, np.float32, np.float64, np.int8,
                          np.bool_, np.float16])
shapes = st.one_of(st.tuples(st.integers(0, 6)),
                   st.tuples(st.integers(0, 6), st.integers(0, 5)),
                   st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)))


@st.composite
def arrays(draw):
    dtype = draw(dtypes)
    shape = draw(shapes)
    arr = np.zeros(shape, dtype=dtype)
    if arr.ndim >= 1 and arr.shape[0] > 1 and draw(st.booleans()):
        arr = arr[::2]                                  # non-contiguous view
    if arr.ndim == 2 and draw(st.booleans()):
        arr = np.asfortranarray(arr)
    return arr


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(ids=arrays(), values=arrays(), which=st.sampled_from(
    ["assign", "add", "lookup", "entry", "grad", "grad_dedup"]))
def test_direct_calls_with_arbitrary_arrays(ids, values, which):
    t = make_table()
    raw = t._t
    before = snapshot(t)
    lrs = np.array([0.1], np.float32)
    calls = {
        "assign": lambda: raw.assign(ids, values, 0, False),
        "add": lambda: raw.assign(ids, values, 0, True),
        "lookup": lambda: raw.lookup(ids),
        "entry": lambda: raw.lookup_entry(ids),
        "grad": lambda: raw.apply_gradients(ids, values, 0, False, 0, lrs),
        "grad_dedup": lambda: raw.apply_gradients(ids, values, 0, True, 0, lrs),
    }
    ok_ids = ids.dtype == np.int64 and ids.ndim == 1 and ids.flags.c_contiguous
    ok_vals = (values.dtype == np.float32 and values.flags.c_contiguous and ok_ids and
               ((values.ndim == 2 and values.shape == (len(ids), DIM)) or
                (values.ndim == 1 and values.size == len(ids) * DIM)))
    try:
        out = calls[which]()
    except (TypeError, ValueError):
        assert snapshot(t)[:2] == before[:2]
        return
    if which == "lookup":
        assert ok_ids and out.shape == (len(ids), DIM)
    elif which == "entry":
        assert ok_ids and len(out) == len(ids)
    else:
        assert ok_vals, "a bad array was accepted"


@pytest.mark.parametrize("dim", [2 ** 31 - 1, 2 ** 26, 10 ** 9])
def test_huge_dim_raises_without_allocating(dim):
    with pytest.raises(ValueError, match="dim"):
        engines.get("native-cpu", threads=1).create_table(engines.table_config(dim=dim))


def test_huge_multi_segment_dims_raise():
    cfg = engines.table_config(segments=[dict(dim=2 ** 25, optimizer="amsgrad"),
                                         dict(dim=2 ** 25)])
    with pytest.raises(ValueError, match="too large|dim"):
        engines.get("native-cpu", threads=1).create_table(cfg, learning_rates=(0.1, 0.1))


def test_malformed_layouts_are_rejected():
    spec = engines.parse_table_config(engines.table_config(dim=4, optimizer="adam"))
    pool = native.Pool(1)
    seg = _segment_dict(spec.segments[0])
    exp = np.full(1 << 15, 36500, np.int64)
    good = dict(segments=[seg], dim=4, state_words=spec.state_words, seed=0, quirks=False,
                fid_version=2, expire_days=exp)
    native.Table(pool, None, **good)
    bad_cases = [
        dict(dim=5), dict(state_words=3), dict(fid_version=3),
        dict(expire_days=np.zeros(7, np.int64)),
        dict(segments=[{**seg, "opt": 99}]), dict(segments=[{**seg, "state_words": 1}]),
        dict(segments=[{**seg, "dim": -4}]), dict(segments=[]),
        dict(segments=[{**seg, "comp": 4, "step_size": 0}]),
    ]
    for case in bad_cases:
        with pytest.raises((ValueError, TypeError)):
            native.Table(pool, None, **{**good, **case})
    with pytest.raises(ValueError):
        native.Pool(0)


def test_direct_scalar_argument_checks():
    t = make_table()
    raw = t._t
    before = snapshot(t)
    ids = np.array([1, 99], np.int64)
    g = np.ones((2, DIM), np.float32)
    with pytest.raises(ValueError, match="learning_rates"):
        raw.apply_gradients(ids, g, 0, False, 0, np.array([0.1, 0.2], np.float32))
    with pytest.raises(TypeError):
        raw.apply_gradients(ids, g, 0, False, 0, np.array([0.1]))       # float64 rates
    with pytest.raises(TypeError):
        raw.assign(ids, g, 1 << 70, False)                                # req_time overflow
    for args in ((0, 0, 1, 0), (2, 2, 1, 0), (0, 1, 0, 0), (0, 1, 1, -1), (-1, 1, 1, 0)):
        with pytest.raises(ValueError):
            raw.save_as_tensor(*args)
    with pytest.raises(ValueError, match="nshards"):
        raw.save("/tmp/hashlab-never", 0)
    with pytest.raises(ValueError, match="nshards"):
        raw.save("/tmp/hashlab-never", 100_000)
    with pytest.raises(engines.CheckpointError):
        t.restore("/nonexistent-dir/never")
    with pytest.raises(ValueError, match="not found"):
        raw.restore(["/nonexistent-dir/never-00000-of-00001"])
    assert snapshot(t) == before


def test_empty_batches_work_and_change_nothing_but_time():
    t = make_table()
    before = snapshot(t)
    empty = np.empty(0, np.int64)
    rows = np.empty((0, DIM), np.float32)
    assert t.lookup(empty).shape == (0, DIM)
    assert t.lookup_entry(empty) == []
    t.assign(empty, rows, req_time=2)
    t.apply_gradients(empty, rows, enable_dedup=True)
    assert snapshot(t) == before
    t.assign_add(empty, rows, req_time=50)
    assert snapshot(t)[:2] == before[:2] and t.max_update_ts == 50
