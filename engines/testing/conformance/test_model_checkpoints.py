"""Model-level checkpoints and hash filters inside tables (core §7.1 #5, #11, #13, #20-#23,
#27, #29, #35; fsf §A.7, §B.6, §B.8)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import engines
from engines.model_checkpoint import CheckpointManager
from engines.protos import hash_table_ops_pb2
from engines.testing.helpers import ids, require, rows

pytestmark = pytest.mark.conformance_area("checkpoints")


def sgd(engine, lr=1.0, hash_filter=None, **kw):
    return engine.create_table(engines.table_config(dim=1, **kw), learning_rates=(lr,),
                               hash_filter=hash_filter)


def test_name_conflict(engine, tmp_path):                          # #5
    m = CheckpointManager(tmp_path)
    m.add_table("same_suffix", sgd(engine))
    with pytest.raises(ValueError, match="same_suffix"):
        m.add_table("same_suffix", sgd(engine))


def test_restore_from_another_table(engine, tmp_path):             # #13
    require(engine, op=("save", "restore"))
    m1 = CheckpointManager(tmp_path)
    t1 = sgd(engine)
    t1.assign(ids(1), rows(1))
    m1.add_table("table1", t1)
    m1.save(0)
    m2 = CheckpointManager(tmp_path)
    t2 = sgd(engine)
    m2.add_table("table2", t2, extra_restore_names=["table1"])
    m2.restore()
    np.testing.assert_array_equal(t2.lookup(ids(1)), rows(1))


def test_restore_with_unknown_name_fails_clearly(engine, tmp_path):
    require(engine, op=("save", "restore"))
    m1 = CheckpointManager(tmp_path)
    m1.add_table("a/b:0", sgd(engine))
    m1.save(3)
    assert os.path.isdir(tmp_path / "model.ckpt-3.assets")
    m2 = CheckpointManager(tmp_path)
    m2.add_table("renamed", sgd(engine))
    with pytest.raises(engines.CheckpointError, match="model structure has been changed"):
        m2.restore()


def test_save_restore_hook(engine, tmp_path):                      # #20
    require(engine, op=("save", "restore"))
    t = sgd(engine)
    m = CheckpointManager(tmp_path)
    m.add_table("t", t)
    t.assign_add(ids(0), rows(1))
    m.save(0)
    t.assign_add(ids(0), rows(-1))
    m.restore()
    np.testing.assert_array_equal(t.lookup(ids(0)), rows(1))


def test_restore_after_save(engine, tmp_path):                     # #21
    require(engine, op=("save", "restore"))
    t = sgd(engine)
    m = CheckpointManager(tmp_path, restore_after_save=True)
    m.add_table("t", t)
    t.assign(ids(0), rows(1))
    m.save(1)
    np.testing.assert_array_equal(t.lookup(ids(0)), rows(1))
    t.assign(ids(0), rows(2))
    m.restore()
    np.testing.assert_array_equal(t.lookup(ids(0)), rows(1))


@pytest.mark.conformance_area("ttl")
@pytest.mark.parametrize("op", ["assign_add", "apply_gradients"])
def test_hook_feature_eviction(engine, tmp_path, op):              # #22, #23
    require(engine, ttl=True, op=("save", "restore"))
    t = sgd(engine, expire_days=1)
    m = CheckpointManager(tmp_path, restore_after_save=True)
    m.add_table("t", t)
    max_ts = 10_000_000
    for i, age in ((1, 86_401), (2, 86_399), (3, 0)):
        getattr(t, op)(ids(i), rows(i), req_time=max_ts - age)
    sign = 1 if op == "assign_add" else -1
    np.testing.assert_array_equal(t.lookup(ids(1, 2, 3)), sign * rows(1, 2, 3))
    m.save(0)                    # save drops the expired entry, the re-restore applies it
    np.testing.assert_array_equal(t.lookup(ids(1, 2, 3)), sign * rows(0, 2, 3))


def test_delete_save_path(engine, tmp_path):                       # #27
    require(engine, op=("save", "restore"), filter="sliding")
    f = engine.create_hash_filter("sliding", capacity=300, split_num=7, occurrence_threshold=0)
    t = sgd(engine, hash_filter=f)
    m = CheckpointManager(tmp_path, max_to_keep=1)
    m.add_table("t", t)
    m.add_hash_filter(f)
    t.assign_add(ids(0), rows(1))
    m.save(1)
    m.save(10)
    assert m.steps() == [10]
    assert not os.path.exists(m.asset_dir(1))
    t.assign_add(ids(0), rows(-1))
    with pytest.raises(engines.CheckpointError):
        m.restore(1)
    m.restore(10)
    np.testing.assert_array_equal(t.lookup(ids(0)), rows(1))


@pytest.mark.conformance_area("filters")
def test_gradients_with_hash_filter(engine):                       # #11
    require(engine, filter="sliding")
    f = engine.create_hash_filter("sliding", capacity=100, split_num=7, occurrence_threshold=3)
    t = sgd(engine, lr=0.1, hash_filter=f)
    expected = [(0, 0), (0.1, 0), (0.3, 0), (0.5, 0.1)]
    for want in expected:
        t.apply_gradients(ids(0, 0, 1), -rows(1, 1, 1))
        np.testing.assert_allclose(t.lookup(ids(0, 1)).ravel(), want, rtol=1e-6)


@pytest.mark.conformance_area("filters")
def test_dedup_filter_sees_occurrence_count(engine):               # fsf §A.7
    require(engine, filter="sliding", dedup=True)
    f = engine.create_hash_filter("sliding", capacity=100, split_num=7, occurrence_threshold=2)
    t = sgd(engine, hash_filter=f)
    # First batch: 3 occurrences of a new id; pre-count 0 -> filtered, count jumps to 3.
    t.apply_gradients(ids(5, 5, 5), rows(1, 1, 1), enable_dedup=True)
    assert t.size() == 0
    t.apply_gradients(ids(5), rows(1), enable_dedup=True)       # pre-count 3 >= 2 -> admitted
    np.testing.assert_array_equal(t.lookup(ids(5)), rows(-1))


def test_table_and_filter_save_restore_together(engine, tmp_path):  # #29
    require(engine, op=("save", "restore"), filter="sliding")
    f = engine.create_hash_filter("sliding", capacity=300, split_num=7, occurrence_threshold=2)
    t = sgd(engine, hash_filter=f)
    m = CheckpointManager(tmp_path)
    m.add_table("t", t)
    m.add_hash_filter(f)

    def add():
        t.assign_add(ids(0), rows(1))
        return float(t.lookup(ids(0))[0, 0])

    assert add() == 0
    m.save(0)                                       # table empty, filter count 1
    assert [add(), add()] == [0, 1]
    for _ in range(2):
        m.restore()
        assert float(t.lookup(ids(0))[0, 0]) == 0
        assert [add(), add()] == [0, 1]


@pytest.mark.conformance_area("filters")
def test_assign_with_filter_skips_new_ids_only(engine):
    require(engine, filter="sliding")
    f = engine.create_hash_filter("sliding", capacity=300, split_num=7, occurrence_threshold=1)
    t = sgd(engine, hash_filter=f)
    t.assign(ids(1, 1), rows(5, 6))            # both occurrences see the table without id 1
    assert t.size() == 1                       # pre-count 0 filtered, pre-count 1 admitted
    np.testing.assert_array_equal(t.lookup(ids(1)), rows(6))


@pytest.mark.conformance_area("filters")
def test_dummy_filter_never_filters(engine, tmp_path):
    require(engine, filter="dummy")
    f = engine.create_hash_filter("dummy")
    t = sgd(engine, hash_filter=f)
    t.assign(ids(1), rows(1))
    assert t.size() == 1
    assert f.save(str(tmp_path / "hf")) == [] and os.listdir(tmp_path) == []
    np.testing.assert_array_equal(f.intercept_gradient(ids(1, 2), rows([1, 1], [2, 2])),
                                  rows([1, 1], [2, 2]))


def test_table_proto_round_trip(engine, tmp_path):                  # #35
    require(engine, ttl=True)                  # the proto carries the table's expiry config
    t = sgd(engine, expire_days=3)
    m = CheckpointManager(tmp_path)
    m.add_table("MonolithHashTable_slot_1", t, extra_restore_names=["old"], saver_parallel=2)
    proto = m.to_proto("MonolithHashTable_slot_1")
    parsed = hash_table_ops_pb2.HashTableProto.FromString(proto.SerializeToString())
    assert parsed.dim_size == 1 and list(parsed.extra_restore_names) == ["old"]
    assert parsed.export_share_embedding == hash_table_ops_pb2.HashTableProto.kBoolNone
    m2 = CheckpointManager(tmp_path)
    m2.add_table_from_proto(parsed, sgd(engine, expire_days=3))
    assert m2.to_proto("MonolithHashTable_slot_1") == proto
