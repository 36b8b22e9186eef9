"""Fused multi-table lookup and optimize (fsf Part C, core §2.11)."""
from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.testing.helpers import ids, require

pytestmark = pytest.mark.conformance_area("fused")


def vocab_tables(engine, dims, fills):
    tables = []
    for dim, (keys, value) in zip(dims, fills):
        t = engine.create_table(engines.table_config(dim=dim), learning_rates=(1.0,))
        t.assign(ids(*keys), np.full((len(keys), dim), value, np.float32))
        tables.append(t)
    return tables


def test_fused_lookup(engine):                                     # §7.1 #31
    require(engine, fused=True)
    tables = vocab_tables(engine, [1, 1, 2], [((0, 1), 1), ((3, 4), 0), ((6, 7), 1)])
    emb, splits, id_off, emb_off, indices = engine.fused_lookup(
        tables, ids(0, 4, 6, 1, 3, 7), np.ones(6, np.int32), 2)
    np.testing.assert_array_equal(emb, [1, 0, 1, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(splits, [4, 4])
    np.testing.assert_array_equal(id_off, [0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(emb_off, [0, 1, 2, 4, 5, 6, 8])
    np.testing.assert_array_equal(indices, [0, 4, 6, 1, 3, 7])
    assert emb.dtype == np.float32 and splits.dtype == np.int32


def test_fused_optimize(engine):                                   # §7.1 #32
    require(engine, fused=True)
    tables = vocab_tables(engine, [1, 2], [((0, 1), 1), ((3, 4), 0)])
    key, sizes = ids(0, 4, 1, 3), np.ones(4, np.int32)
    emb, splits, id_off, emb_off, _ = engine.fused_lookup(tables, key, sizes, 2)
    np.testing.assert_array_equal(emb, [1, 0, 0, 1, 0, 0])
    grads = np.array([-1, -2, -2, -1, -2, -2], np.float32)
    engine.fused_apply_gradients(tables, key, key, sizes, grads, id_off, emb_off,
                                 learning_rates=[0.1, 0.1], req_time=0, global_step=0,
                                 num_shards=2)
    emb, splits, id_off, emb_off, _ = engine.fused_lookup(tables, key, sizes, 2)
    np.testing.assert_allclose(emb, [1.1, 0.2, 0.2, 1.1, 0.2, 0.2], rtol=1e-6)
    np.testing.assert_array_equal(splits, [3, 3])
    np.testing.assert_array_equal(id_off, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(emb_off, [0, 1, 3, 4, 6])


def test_docstring_examples(engine):                               # fsf §C.5
    require(engine, fused=True)
    t0 = engine.create_table(engines.table_config(dim=1), learning_rates=(1.0,))
    t1 = engine.create_table(engines.table_config(dim=2), learning_rates=(1.0,))
    t0.assign(ids(1, 2), np.array([[1], [2]], np.float32))
    t1.assign(ids(3, 4), np.array([[3, 3], [4, 4]], np.float32))
    key, sizes = ids(1, 3, 2, 4), np.ones(4, np.int32)
    emb, splits, id_off, emb_off, _ = engine.fused_lookup([t0, t1], key, sizes, 2)
    np.testing.assert_array_equal(emb, [1, 3, 3, 2, 4, 4])
    np.testing.assert_array_equal(splits, [3, 3])
    engine.fused_apply_gradients([t0, t1], key, key, sizes,
                                 np.array([1, 2, 2, 1, 2, 2], np.float32), id_off, emb_off,
                                 [1.0, 1.0], num_shards=2)
    np.testing.assert_array_equal(t0.lookup(ids(1, 2)).ravel(), [0, 1])
    np.testing.assert_array_equal(t1.lookup(ids(3, 4)), [[1, 1], [2, 2]])


def test_grad_accumulation_is_per_block(engine):                    # fsf §C.3
    require(engine, fused=True, optimizer="adagrad", dedup=True)

    def run(accumulate):
        t = engine.create_table(engines.table_config(dim=1, optimizer="adagrad"),
                                learning_rates=(1.0,))
        # shard 0 holds id 5 twice, shard 1 once more.
        key, sizes = ids(5, 5, 5), np.array([2, 1], np.int32)
        engine.fused_apply_gradients([t], key, None, sizes, np.ones(3, np.float32), None, None,
                                     [1.0], num_shards=2,
                                     enable_grad_accumulation=accumulate)
        return t

    per_block = run(True)
    # Reference by hand: one step with g=2 (block of shard 0), then g=1 (shard 1).
    ref = engine.create_table(engines.table_config(dim=1, optimizer="adagrad"),
                              learning_rates=(1.0,))
    ref.apply_gradients(ids(5), np.array([[2]], np.float32))
    ref.apply_gradients(ids(5), np.array([[1]], np.float32))
    assert per_block.lookup_entry(ids(5)) == ref.lookup_entry(ids(5))
    sequential = run(False)
    assert sequential.lookup_entry(ids(5)) != per_block.lookup_entry(ids(5))


def test_multi_segment_learning_rates_restart_per_shard(engine):
    require(engine, fused=True, multi_segment=True)
    t0 = engine.create_table(engines.table_config(segments=[dict(dim=1), dict(dim=1)]),
                             learning_rates=(9.0, 9.0))
    t1 = engine.create_table(engines.table_config(dim=1), learning_rates=(9.0,))
    key, sizes = ids(1, 2, 1, 2), np.ones(4, np.int32)
    grads = np.ones(6, np.float32)
    engine.fused_apply_gradients([t0, t1], key, None, sizes, grads, None, None,
                                 [0.5, 0.25, 2.0], req_time=42, num_shards=2)
    np.testing.assert_array_equal(t0.lookup(ids(1)), [[-1.0, -0.5]])
    np.testing.assert_array_equal(t1.lookup(ids(2)), [[-4.0]])
    assert t0.max_update_ts == 42 and t1.max_update_ts == 42


@pytest.mark.parametrize("bad,match", [
    (dict(fused_slot_size=np.ones(3, np.int32)), "fused_slot_size"),
    (dict(fused_slot_size=np.array([1, 1, 1, 2], np.int32)), "fused_slot_size"),
    (dict(num_shards=0), "num_shards"),
    (dict(tables=[]), "tables"),
])
def test_fused_bad_input(engine, bad, match):
    require(engine, fused=True)
    t = engine.create_table(engines.table_config(dim=1))
    args = dict(tables=[t, t], ids=ids(1, 2, 3, 4), fused_slot_size=np.ones(4, np.int32),
                num_shards=2)
    args.update(bad)
    with pytest.raises((ValueError, TypeError), match=match):
        engine.fused_lookup(args["tables"], args["ids"], args["fused_slot_size"],
                            args["num_shards"])


def test_fused_apply_rejects_wrong_offsets_and_lrs(engine):
    require(engine, fused=True)
    t = engine.create_table(engines.table_config(dim=2))
    key, sizes = ids(1, 2), np.ones(2, np.int32)
    grads = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="grad_offsets"):
        engine.fused_apply_gradients([t], key, None, sizes, grads, None, [0, 1, 2], [1.0],
                                     num_shards=2)
    with pytest.raises(ValueError, match="learning_rates"):
        engine.fused_apply_gradients([t], key, None, sizes, grads, None, None, [1.0, 2.0],
                                     num_shards=2)
    with pytest.raises(ValueError, match="grads"):
        engine.fused_apply_gradients([t], key, None, sizes, grads[:3], None, None, [1.0],
                                     num_shards=2)
    assert t.size() == 0
