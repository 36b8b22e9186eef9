"""Monolith's C++ optimizer and entry-accessor vectors (core §7.3, §7.4) and the worked
examples of core §3, through the public table API of every engine. Tolerance 1e-6 as in the
C++ tests; the exact agreement with the numpy reference is the parity suite's job."""
from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.protos import embedding_hash_table_pb2 as pb
from engines.testing.helpers import ids, require

pytestmark = pytest.mark.conformance_area("optimizers")

ID = ids(7)


def table(engine, optimizer, dim, quirks=False, lr=0.1, ops=(), **fields):
    """A one-segment table; skips unless the engine declares the optimizer and `ops`."""
    require(engine, optimizer=optimizer, op=ops)
    if quirks:
        require(engine, quirks=True)
    return engine.create_table(engines.table_config(dim=dim, optimizer=optimizer, **fields),
                               learning_rates=(lr,), monolith_quirks=quirks)


def step(t, g, lr=None, global_step=0):
    g = np.asarray(g, np.float32).reshape(1, -1)
    t.apply_gradients(ID, g, global_step=global_step,
                      learning_rates=None if lr is None else [lr] * t.num_segments)
    return t.lookup(ID)[0]


def dump_of(t, entry_id=ID):
    return pb.EntryDump.FromString(t.lookup_entry(entry_id)[0])


def restored(engine, t, tmp_path, name="r", quirks=False):
    require(engine, op=("save", "restore"))
    t.save(str(tmp_path / name))
    t2 = engine.create_table(t.spec.config, learning_rates=t.learning_rates,
                             monolith_quirks=quirks)
    t2.restore(str(tmp_path / name))
    return t2


def close(got, want):
    np.testing.assert_allclose(got, np.asarray(want, np.float32), rtol=0, atol=1e-6)


def test_sgd_basic(engine):
    close(step(table(engine, "sgd", 1), [1], lr=0.1), [-0.1])


def test_adagrad_basic_and_restored_copy_match(engine, tmp_path):
    t = table(engine, "adagrad", 2, ops=("lookup_entry",), initial_accumulator_value=1.0)
    close(step(t, [1, 2], lr=0.1), [-0.07071067, -0.08944272])
    t2 = restored(engine, t, tmp_path)
    step(t, [1, 1], lr=0.1)
    step(t2, [1, 1], lr=0.1)
    assert t.lookup_entry(ID) == t2.lookup_entry(ID)


def test_adagrad_weight_decay_scalar_path(engine):
    t = table(engine, "adagrad", 2, initial_accumulator_value=1.0, weight_decay_factor=0.1)
    close(step(t, [1, 2], lr=0.1), [-0.07071067, -0.08944272])
    close(step(t, [1, 2], lr=0.1), [-0.128173, -0.155943])


AVX_G = [0.1 * (i + 1) for i in range(8)]
AVX_SCALAR = [0.48516595, 0.47574642, 0.46696496, 0.45896354, 0.45180812, 0.44550115, 0.44,
              0.43523517]
AVX_QUIRK = [0.49011064, 0.48059714, 0.47168425, 0.46352315, 0.45618922, 0.44969338,
             0.44400001, 0.43904486]
AVX_NORM = [1.0225, 1.0625, 1.1225, 1.2025, 1.3025, 1.4225, 1.5625, 1.7225]


@pytest.mark.parametrize("quirks,want", [(False, AVX_SCALAR), (True, AVX_QUIRK)],
                         ids=["correct", "monolith_quirks"])
def test_adagrad_weight_decay_avx_quirk(engine, quirks, want):          # core §3.2
    require(engine, op="lookup_entry")
    t = table(engine, "adagrad", 8, quirks=quirks, initial_accumulator_value=1.0,
              weight_decay_factor=0.1)
    t.assign(ID, np.full((1, 8), 0.5, np.float32))
    close(step(t, AVX_G, lr=0.1), want)
    np.testing.assert_allclose(list(dump_of(t).opt.dump[0].adagrad.norm), AVX_NORM, rtol=1e-6)


def test_ftrl_basic(engine):
    t = table(engine, "ftrl", 1)
    close(step(t, [10], lr=0.01), [-0.009995])
    close(step(t, [10], lr=0.01), [-0.0170643])


def test_ftrl_list_update(engine):
    t = table(engine, "ftrl", 2)
    close(step(t, [10, 1], lr=0.01), [-0.009995, -0.00953463])
    close(step(t, [10, 1], lr=0.01), [-0.0170643, -0.0164353])


@pytest.mark.parametrize("quirks,want", [(False, [-0.0476731, 0.0476731]),
                                         (True, [-0.09534626, 0.1430194])],
                         ids=["textbook", "monolith_sign_bit"])
def test_ftrl_l1_sign(engine, quirks, want):                            # core §3.3
    t = table(engine, "ftrl", 2, quirks=quirks, l1_regularization_strength=0.5)
    close(step(t, [1, -1], lr=0.1), want)


def test_adadelta(engine):
    t = table(engine, "adadelta", 2, ops=("lookup_entry",))
    close(step(t, [10, 1], lr=0.01), [-0.0031607, -0.0030151])
    np.testing.assert_allclose(list(dump_of(t).opt.dump[0].adadelta.accum), [10, 0.1],
                               rtol=1e-5)
    close(step(t, [10, 1], lr=0.01), [-0.0064035, -0.0061047])


@pytest.mark.parametrize("optimizer", ["adam", "amsgrad"])
def test_adam_family(engine, optimizer):
    t = table(engine, optimizer, 2, ops=("lookup_entry",))
    close(step(t, [10, 1], lr=0.01), [-0.00990099, -0.00909091])
    m = list(getattr(dump_of(t).opt.dump[0], optimizer).m)
    np.testing.assert_allclose(m, [1, 0.1], rtol=1e-6)
    close(step(t, [10, 1], lr=0.01), [-0.01983060, -0.01842895])


@pytest.mark.parametrize("quirks,want", [(False, -0.0198306), (True, -0.0771066)],
                         ids=["correct", "monolith_restore_bug"])
def test_adam_restore_beta_powers(engine, tmp_path, quirks, want):     # core §3.5
    t = table(engine, "adam", 1, ops=("lookup_entry",), quirks=quirks)
    step(t, [10], lr=0.01)
    adam = dump_of(t).opt.dump[0].adam
    f = np.float32
    assert (adam.beta1_power, adam.beta2_power) == (f(0.9) * f(0.9), f(0.99) * f(0.99))
    t2 = restored(engine, t, tmp_path, quirks=quirks)
    close(step(t2, [10], lr=0.01), [want])


def test_momentum(engine):
    t = table(engine, "momentum", 2, ops=("lookup_entry",))
    close(step(t, [10, 1], lr=0.01), [-0.1, -0.01])
    close(step(t, [10, 1], lr=0.01), [-0.29, -0.029])
    np.testing.assert_allclose(list(dump_of(t).opt.dump[0].momentum.n), [-0.19, -0.019],
                               rtol=1e-6)


def test_momentum_nesterov_matches_formula(engine):
    t = table(engine, "momentum", 1, use_nesterov=True)
    # n = 0.9*0 - 0.1 = -0.1; w = 0 - 0.9*0 + 1.9*(-0.1)
    close(step(t, [10], lr=0.01), [-0.19])


def test_rmsprop_uses_config_learning_rate(engine):
    t = table(engine, "rmsprop", 1, learning_rate=0.01)
    close(step(t, [10], lr=123.0), [-0.024025])      # the lr tensor is ignored (core §3.8)
    close(step(t, [10], lr=123.0), [-0.042686])


def test_rmspropv2(engine):
    t = table(engine, "rmspropv2", 2, ops=("lookup_entry",))
    close(step(t, [10, 1], lr=0.01), [-0.0090909, -0.005])
    close(step(t, [10, 1], lr=0.01), [-0.0158549, -0.0092045])
    np.testing.assert_allclose(list(dump_of(t).opt.dump[0].rmspropv2.n), [190, 1.9],
                               rtol=1e-6)


def test_moving_average(engine):
    t = table(engine, "moving_average", 2, ops=("lookup_entry",))
    close(step(t, [10, 1]), [1.0, 0.1])
    close(step(t, [10, 1]), [1.9, 0.19])
    assert len(dump_of(t).opt.dump) == 0            # moving_average dumps nothing


def test_batch_softmax_basic(engine, tmp_path):
    t = table(engine, "batch_softmax", 1, ops=("lookup_entry",))
    close(step(t, [2], lr=0.1, global_step=1), [0.1])
    assert dump_of(t).opt.dump[0].batch_softmax.global_step == 1
    t2 = restored(engine, t, tmp_path)
    step(t, [2], lr=0.1, global_step=0)
    step(t2, [2], lr=0.1, global_step=0)
    assert t.lookup_entry(ID) == t2.lookup_entry(ID)


def test_batch_softmax_frequency(engine):                               # §7.1 #33
    t = table(engine, "batch_softmax", 1)
    for s in range(1000):
        batch = [i for i, period in ((0, 5), (1, 10)) if s % period == 0]
        if batch:
            t.apply_gradients(ids(*batch), np.full((len(batch), 1), 0.1, np.float32),
                              global_step=s)
    b = t.lookup(ids(0, 1)).ravel()
    np.testing.assert_allclose(1 / np.maximum(b, 1), [0.2, 0.1], atol=0.01)
    np.testing.assert_allclose(b, [4.99999, 9.9997], rtol=1e-4)


def test_group_adagrad_basic_and_restored(engine, tmp_path):
    t = table(engine, "group_adagrad", 1, l2_regularization_strength=1.0, beta=1.0,
              initial_accumulator_value=0.0)
    close(step(t, [10], lr=0.01), [-0.008182])
    t2 = restored(engine, t, tmp_path)
    close(step(t2, [10], lr=0.01), [-0.014125])


def test_group_adagrad_list_update(engine, tmp_path):
    t = table(engine, "group_adagrad", 2, l2_regularization_strength=0.5, beta=1.0,
              initial_accumulator_value=0.0)
    close(step(t, [10, 1], lr=0.01), [-0.008639, -0.000864])
    t2 = restored(engine, t, tmp_path)
    close(step(t2, [1, 5], lr=0.01), [-0.009096, -0.004778])


@pytest.mark.parametrize("l2,want", [(0.0, [-0.009091, -0.000909]), (1000.0, [0.0, 0.0])])
def test_group_adagrad_lambda(engine, l2, want):
    t = table(engine, "group_adagrad", 2, l2_regularization_strength=l2, beta=1.0,
              initial_accumulator_value=0.0)
    close(step(t, [10, 1], lr=0.01), want)


# ---- combined optimizers and the entry accessor (core §7.3) --------------------------------
def test_entry_accessor_from_config(engine):
    require(engine, multi_segment=True)
    cfg = engines.table_config(segments=[dict(dim=1), dict(dim=2)])
    t = engine.create_table(cfg, learning_rates=(1.0, 2.0))
    t.apply_gradients(ID, np.array([[1, 2, 3]], np.float32))
    close(t.lookup(ID)[0], [-1, -4, -6])


def test_combine_optimizers(engine, tmp_path):
    require(engine, multi_segment=True, optimizer="adagrad")
    cfg = engines.table_config(segments=[
        dict(dim=1, optimizer="adagrad", initial_accumulator_value=1.0),
        dict(dim=2, optimizer="adagrad", initial_accumulator_value=2.0)])
    t = engine.create_table(cfg, learning_rates=(1.0, 2.0))
    t.apply_gradients(ID, np.array([[1, 2, 3]], np.float32))
    close(t.lookup(ID)[0], [-0.70710677, -1.6329931, -1.8090681])
    t2 = restored(engine, t, tmp_path)
    t2.assign(ID, np.zeros((1, 3), np.float32))       # fresh weights, restored state
    t2.apply_gradients(ID, np.array([[1, 2, 3]], np.float32))
    close(t2.lookup(ID)[0], [-0.57735026, -1.264911, -1.3416407])


def test_entry_accessor_save_restore(engine, tmp_path):
    t = table(engine, "adagrad", 1, ops=("lookup_entry",), initial_accumulator_value=0.1)
    t.apply_gradients(ID, np.ones((1, 1), np.float32), req_time=100, learning_rates=[1.0])
    close(t.lookup(ID)[0], [-0.95346254])
    t2 = restored(engine, t, tmp_path)
    assert dump_of(t2).last_update_ts_sec == 100
    t2.apply_gradients(ID, np.ones((1, 1), np.float32), learning_rates=[1.0])
    close(t2.lookup(ID)[0], [-1.643528])


def test_assign_on_new_id_initialises_optimizer_state(engine):       # core §2.3
    require(engine, op="lookup_entry")
    t = table(engine, "adagrad", 2, initial_accumulator_value=0.25)
    t.assign(ID, np.array([[1, 2]], np.float32))
    assert list(dump_of(t).opt.dump[0].adagrad.norm) == [0.25, 0.25]
    t.apply_gradients(ID, np.ones((1, 2), np.float32))
    t.assign(ID, np.array([[5, 5]], np.float32))                     # keeps optimizer state
    np.testing.assert_allclose(list(dump_of(t).opt.dump[0].adagrad.norm), [1.25, 1.25])


@pytest.mark.parametrize("optimizer", ["dynamic_wd_adagrad", "group_ftrl", "dc", "nope"])
def test_unconstructible_optimizers_raise(optimizer):
    with pytest.raises(ValueError, match=optimizer):
        engines.table_config(dim=1, optimizer=optimizer)
