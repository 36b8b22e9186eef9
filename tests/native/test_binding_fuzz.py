"""The compiled bindings called directly (skipping engines/api.py validation) with bad input:
every call raises a clear Python error or works, never crashes, and leaves the table unchanged."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engines
from engines.native.cpu import native_module

# The compiled engine is part of every install: its absence is an error, never a skip
# (a CI run must fail when the native build silently failed; tests/native/test_build.py).
native = native_module()
from engines.native.common import config_text  # noqa: E402

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
    # The shared config parser (engines/config.py) enforces native's entry limit, so the
    # builder already refuses it.
    with pytest.raises(ValueError, match="too large|dim"):
        cfg = engines.table_config(segments=[dict(dim=2 ** 25, optimizer="amsgrad"),
                                             dict(dim=2 ** 25)])
        engines.get("native-cpu", threads=1).create_table(cfg, learning_rates=(0.1, 0.1))


def _adam_text() -> str:
    spec = engines.parse_table_config(engines.table_config(dim=4, optimizer="adam"))
    return config_text(spec, seed=0, quirks=False)


def test_config_text_round_trips_into_a_table():
    native.Table(native.Pool(1), None, _adam_text())


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.replace("dim 4\n", "dim 5\n"), "dim/state_words"),
    (lambda t: t.replace("state_words 10", "state_words 3"), "dim/state_words"),
    (lambda t: t.replace("fid_version 2", "fid_version 3"), "fid_version"),
    (lambda t: t.replace("optimizer=adam", "optimizer=adamw"), "unknown optimizer 'adamw'"),
    (lambda t: t.replace(" state_words=10", " state_words=1"), "layout"),
    (lambda t: t.replace("segment dim=4", "segment dim=-4"), "dim -4"),
    (lambda t: "\n".join(ln for ln in t.splitlines() if not ln.startswith("segment")),
     "at least one segment"),
    (lambda t: t.replace("compressor=fp32", "compressor=one_bit"), "missing step_size"),
    # a missing key is an error naming it, never a silent 0
    (lambda t: t.replace(" beta2=", " beta2_typo="), "missing beta2"),
    (lambda t: t.replace("expire_default 36500\n", ""), "missing expire_default"),
    (lambda t: t.replace(" epsilon=0x", " epsilon=0.1x"), "epsilon"),
    (lambda t: t.replace("beta1=0x1.cccccc0000000p-1", "beta1=0.1"), "not an exact float32"),
    (lambda t: t.replace("hashlab-table-config 1", "hashlab-table-config 2"), "header"),
    (lambda t: t + "seed 4\n", "seed given twice"),
    (lambda t: t + "expire_slot 40000 1\n", "out of range"),
])
def test_malformed_config_text_is_rejected(edit, match):
    text = _adam_text()
    bad = edit(text)
    assert bad != text
    with pytest.raises(ValueError, match=match):
        native.Table(native.Pool(1), None, bad)


def test_pool_size_is_checked():
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
    with pytest.raises(engines.CheckpointError, match="no checkpoint files"):
        raw.restore("/nonexistent-dir/never")
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
