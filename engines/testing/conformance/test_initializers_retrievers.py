"""Initializers (core §4.1, §7.5, docs/semantics.md §2) and training retrievers (core §4.4)."""
from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.testing.helpers import ids, require, rows

pytestmark = pytest.mark.conformance_area("initializers")

M64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def expected_uniform(seed: int, entry_id: int, k: int, lo: float, hi: float) -> np.float32:
    """docs/semantics.md §2, with Python integers (independent of every engine)."""
    key = _mix64((entry_id & M64) ^ _mix64(seed & M64))
    r = _mix64((key + (k + 1) * 0x9E3779B97F4A7C15) & M64)
    u = np.float32(r >> 40) * np.float32(2.0 ** -24)
    f = np.float32
    return f(f(u * f(f(hi) - f(lo))) + f(lo))


def test_constants_combination(engine):                          # §7.5 initializer_combination
    require(engine, initializer="constants", multi_segment=True)
    cfg = engines.table_config(segments=[dict(dim=1, initializer="constants", constant=3.0),
                                         dict(dim=2, initializer="constants", constant=4.0)])
    t = engine.create_table(cfg, learning_rates=(0.1, 0.1))
    t.apply_gradients(ids(1), np.zeros((1, 3), np.float32))
    np.testing.assert_array_equal(t.lookup(ids(1)), rows([3, 4, 4]))


def test_ones_initializer_and_assign_add(engine):
    require(engine, initializer="ones")
    t = engine.create_table(engines.table_config(dim=2, initializer="ones"))
    t.assign_add(ids(1), rows([1, 2]))
    np.testing.assert_array_equal(t.lookup(ids(1)), rows([2, 3]))


def test_random_uniform_counter_based_bits(engine):
    require(engine, initializer="random_uniform", multi_segment=True)
    cfg = engines.table_config(segments=[
        dict(dim=3, initializer="random_uniform"),                       # proto defaults
        dict(dim=5, initializer="random_uniform", minval=-1.0, maxval=1.0)])
    keys = ids(0, 1, -1, 1 << 60, 123456789)
    for seed in (0, 7, 2 ** 63 + 5):
        t = engine.create_table(cfg, learning_rates=(0.1, 0.1), seed=seed)
        t.apply_gradients(keys, np.zeros((len(keys), 8), np.float32))
        got = t.lookup(keys)
        want = np.array([[expected_uniform(seed, int(x), k,
                                           -0.05 if k < 3 else -1.0, 0.05 if k < 3 else 1.0)
                          for k in range(8)] for x in keys], np.float32)
        np.testing.assert_array_equal(got, want)


def test_random_uniform_range(engine):                             # §7.5
    require(engine, initializer="random_uniform")
    t = engine.create_table(engines.table_config(dim=1000, initializer="random_uniform",
                                                 minval=-1.0, maxval=1.0))
    t.assign_add(ids(3), np.zeros((1, 1000), np.float32))
    v = t.lookup(ids(3))
    assert v.max() > 0.9 and v.min() < -0.9 and v.max() <= 1.0 and v.min() >= -1.0


def test_random_uniform_independent_of_order_and_batching(engine):
    require(engine, initializer="random_uniform")
    cfg = engines.table_config(dim=4, initializer="random_uniform")
    a = engine.create_table(cfg, seed=3)
    b = engine.create_table(cfg, seed=3)
    a.assign_add(ids(1, 2, 3), np.zeros((3, 4), np.float32))
    for x in (3, 1, 2):
        b.apply_gradients(ids(x), np.zeros((1, 4), np.float32))
    np.testing.assert_array_equal(a.lookup(ids(1, 2, 3)), b.lookup(ids(1, 2, 3)))


# ---- retrievers ------------------------------------------------------------------------------
def test_fixed_r8_lookup_is_fake_quantised(engine):                # §7.5 FakeQuantizer
    require(engine, compressor="fixed_r8", op="lookup_entry")
    t = engine.create_table(engines.table_config(dim=7, compressor="fixed_r8", r=5.0))
    s = np.float32(5.0) / np.float32(128)
    raw = rows([100, 0, 3.5, 1.4 * s, 1.6 * s, -1.4 * s, -1.6 * s])
    t.assign(ids(1), raw)
    got = t.lookup(ids(1))[0]
    assert got[0] < 5 and got[0] == np.float32(127) * s
    assert got[1] == 0 and abs(got[2] - 3.5) < s
    np.testing.assert_array_equal(got[3:], [s, 2 * s, -s, -2 * s])
    # storage stays fp32: lookup_entry holds the raw values
    from engines.protos import embedding_hash_table_pb2 as pb
    np.testing.assert_array_equal(pb.EntryDump.FromString(t.lookup_entry(ids(1))[0]).num,
                                  raw[0])


def test_fp16_has_no_effect_in_training(engine):
    require(engine, compressor="fp16")
    t = engine.create_table(engines.table_config(dim=3, compressor="fp16"))
    t.assign(ids(1), rows([0.1, 0.2, 10000.123]))
    np.testing.assert_array_equal(t.lookup(ids(1)), rows([0.1, 0.2, 10000.123]))


def _hashnet_table(engine):
    require(engine, compressor="one_bit", op="lookup_entry")
    cfg = engines.table_config(dim=1, compressor="one_bit", step_size=1000, amplitude=0.1,
                               init_scale=1.0)
    return engine.create_table(cfg, learning_rates=(1.0,))


@pytest.mark.parametrize("g,global_step,want", [
    (1.0, 0, 0.00706508), (2.0, 999, 0.01413016)])
def test_hashnet_backward(engine, g, global_step, want):            # §7.5 HashNetQuantizer
    t = _hashnet_table(engine)
    t.assign(ids(1), rows(2.0))
    np.testing.assert_allclose(t.lookup(ids(1)), rows(0.09640275), rtol=1e-6)   # Forward(2)
    t.apply_gradients(ids(1), rows(g), global_step=global_step)
    # SGD with lr 1: w = 2 - scaled gradient
    np.testing.assert_allclose(2.0 - _raw(t, 1), want, rtol=1e-4)


def _raw(t, key):
    from engines.protos import embedding_hash_table_pb2 as pb
    return pb.EntryDump.FromString(t.lookup_entry(ids(key))[0]).num[0]


def test_hashnet_scale_update(engine):
    t = _hashnet_table(engine)
    t.assign(ids(1), rows(2.0))
    t.apply_gradients(ids(1), rows(100.0), global_step=1000)      # scale -> sqrt(6)
    np.testing.assert_allclose(2.0 - _raw(t, 1), 0.005442613, rtol=1e-3)   # libm note, §7.5
    t.assign(ids(1), rows(2.0))
    np.testing.assert_allclose(t.lookup(ids(1)), rows(0.09998888), rtol=1e-6)
    t.assign(ids(1), rows(2.0))
    t.apply_gradients(ids(1), rows(200.0), global_step=1001)      # scale unchanged
    np.testing.assert_allclose(2.0 - _raw(t, 1), 0.01088523, rtol=1e-3)
