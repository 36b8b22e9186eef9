"""Monolith's Python table tests (core §7.1) and C++ table tests (core §7.2), on every engine."""
from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.protos import embedding_hash_table_pb2 as pb
from engines.testing.helpers import ids, require, rows

pytestmark = pytest.mark.conformance_area("ops")


def sgd_table(engine, dim=1, lr=1.0, **kw):
    return engine.create_table(engines.table_config(dim=dim, **kw), learning_rates=(lr,))


def test_basic(engine):                                           # §7.1 #1
    t = sgd_table(engine)
    t.assign_add(ids(0, 1), rows(1, 1))
    np.testing.assert_array_equal(t.lookup(ids(0, 1, 2)), rows(1, 1, 0))
    assert t.size() == 2


def test_assign(engine):                                          # §7.1 #2
    t = sgd_table(engine)
    t.assign(ids(0, 1), rows(1, 1))
    np.testing.assert_array_equal(t.lookup(ids(0, 1, 2)), rows(1, 1, 0))
    t.assign(ids(1), rows(5))
    np.testing.assert_array_equal(t.lookup(ids(0, 1, 2)), rows(1, 5, 0))


def test_lookup_does_not_insert(engine):                          # core §2.1
    t = sgd_table(engine, dim=3)
    assert t.lookup(ids(7, 8, 7)).shape == (3, 3)
    assert t.size() == 0
    if "lookup_entry" in engine.capabilities.ops:
        assert t.lookup_entry(ids(7)) == [b""]


def test_duplicates_within_one_call(engine):                      # core §2.3, §2.4
    t = sgd_table(engine)
    t.assign(ids(4, 4, 4), rows(1, 2, 3))
    np.testing.assert_array_equal(t.lookup(ids(4)), rows(3))       # last wins
    t.assign_add(ids(5, 5, 4), rows(1, 2, 10))
    np.testing.assert_array_equal(t.lookup(ids(4, 5)), rows(13, 3))


def test_lookup_entry(engine):                                    # §7.1 #3
    require(engine, op="lookup_entry")
    t = sgd_table(engine)
    t.assign(ids(0, 1, 2), rows(.1, .2, .3))
    entries = t.lookup_entry(ids(0, 1, 2, 3))
    assert entries[3] == b""
    for raw, want in zip(entries[:3], (.1, .2, .3)):
        d = pb.EntryDump.FromString(raw)
        assert not d.HasField("id")                               # lookup_entry sets no id
        assert list(d.num) == [np.float32(want)]


def test_lookup_entry_bytes_match_cpp_vector(engine):             # §7.2 ReadWrite
    require(engine, op="lookup_entry")
    t = engine.create_table(engines.table_config(dim=1), learning_rates=(0.01,))
    t.assign(ids(-10, 13, 100), rows(1, 2, 3), req_time=0)
    np.testing.assert_array_equal(t.lookup(ids(5, -10, 13, 100)), rows(0, 1, 2, 3))
    want = pb.EntryDump()
    want.num.append(1.0)
    want.opt.dump.add().sgd.SetInParent()
    want.last_update_ts_sec = 0
    assert t.lookup_entry(ids(5, -10)) == [b"", want.SerializeToString()]


def test_cpp_read_write_single_thread(engine):                    # §7.2 ReadWrite.SingleThread
    t = engine.create_table(engines.table_config(dim=1), learning_rates=(0.01,))
    np.testing.assert_array_equal(t.lookup(ids(5)), rows(0))
    t.assign_add(ids(-10), rows(2.5), req_time=100)
    np.testing.assert_array_equal(t.lookup(ids(-10)), rows(2.5))
    t.apply_gradients(ids(13), rows(1.0))
    np.testing.assert_array_equal(t.lookup(ids(13)), rows(np.float32(-0.01)))


def test_save_as_tensor(engine):                                  # §7.1 #4, §7.2 SaveWithOffset
    require(engine, op="save_as_tensor")
    t = sgd_table(engine)
    t.assign(ids(0, 1, 2), rows(.1, .2, .3))
    offset, dumps = t.save_as_tensor(0, 1, 1000, 0)
    parsed = [pb.EntryDump.FromString(d) for d in dumps]
    assert sorted(d.id for d in parsed) == [0, 1, 2]
    assert offset == 3
    # Paging: limit 1 returns one entry at a time, in id order, then nothing.
    seen, offset = [], 0
    while True:
        offset, page = t.save_as_tensor(0, 1, 1, offset)
        seen += [pb.EntryDump.FromString(d).id for d in page]
        if len(page) < 1:
            break
    assert seen == [0, 1, 2]
    # Shards partition the table.
    union = []
    for s in range(3):
        _, page = t.save_as_tensor(s, 3, 100, 0)
        union += [pb.EntryDump.FromString(d).id for d in page]
    assert sorted(union) == [0, 1, 2]


def test_gradients(engine):                                       # §7.1 #6, #7
    t = sgd_table(engine, lr=0.1)
    t.apply_gradients(ids(0, 0, 1), -rows(1, 1, 1))
    np.testing.assert_allclose(t.lookup(ids(0, 1)), rows(0.2, 0.1), rtol=1e-6)


def test_gradients_with_learning_rate_decay(engine):              # §7.1 #8
    lr = engines.PolynomialDecay(0.01, 10, end_learning_rate=0.11)
    assert lr(1) == pytest.approx(0.02) and lr(2) == pytest.approx(0.03)
    t = sgd_table(engine)
    t.apply_gradients(ids(0, 0, 1), -rows(1, 1, 1), global_step=1, learning_rates=[lr(1)])
    np.testing.assert_allclose(t.lookup(ids(0, 1)), rows(0.04, 0.02), rtol=1e-6)


def test_gradients_with_dedup(engine):                            # §7.1 #9
    require(engine, dedup=True)
    t = sgd_table(engine, dim=10, lr=0.1)
    t.apply_gradients(ids(0, 1, 0, 1, 0), -np.ones((5, 10), np.float32), enable_dedup=True)
    got = t.lookup(ids(0, 1))
    np.testing.assert_allclose(got[0], np.full(10, 0.3), rtol=1e-6)
    np.testing.assert_allclose(got[1], np.full(10, 0.2), rtol=1e-6)


def test_gradients_with_different_ids(engine):                    # §7.1 #10
    t = sgd_table(engine, lr=0.1)
    t.apply_gradients(ids(1, 0, 1), -rows(1, 1, 1))
    np.testing.assert_allclose(t.lookup(ids(0, 1)), rows(0.1, 0.2), rtol=1e-6)


@pytest.mark.conformance_area("checkpoints")
def test_save_restore(engine, tmp_path):                          # §7.1 #12, §7.2 SaveRestore
    require(engine, op=("save", "restore"))
    t = sgd_table(engine)
    t.assign_add(ids(-1, 1), rows(1, 2))
    files = t.save(str(tmp_path / "t"))
    assert [p.rsplit("/", 1)[1] for p in files] == ["t-00000-of-00001"]
    t2 = sgd_table(engine)
    t2.restore(str(tmp_path / "t"))
    np.testing.assert_array_equal(t2.lookup(ids(-1, 1)), rows(1, 2))
    assert t2.size() == 2


@pytest.mark.conformance_area("checkpoints")
def test_restore_clears_first(engine, tmp_path):                  # §7.1 #28
    require(engine, op=("save", "restore"))
    t = sgd_table(engine)
    t.assign_add(ids(0), rows(1))
    t.save(str(tmp_path / "t"))
    t.assign_add(ids(1), rows(1))
    np.testing.assert_array_equal(t.lookup(ids(1)), rows(1))
    t.restore(str(tmp_path / "t"))
    np.testing.assert_array_equal(t.lookup(ids(0, 1)), rows(1, 0))
    assert t.size() == 1


@pytest.mark.conformance_area("checkpoints")
def test_restore_not_found(engine, tmp_path):                     # §7.1 #19
    require(engine, op="restore")
    t = sgd_table(engine)
    with pytest.raises(engines.CheckpointError, match="no checkpoint files"):
        t.restore(str(tmp_path / "missing"))


@pytest.mark.conformance_area("checkpoints")
def test_two_tables_whose_name_is_prefix(engine, tmp_path):       # §7.1 #30
    require(engine, op=("save", "restore"))
    t1, t10 = sgd_table(engine), sgd_table(engine)
    t1.assign(ids(1), rows(1))
    t10.assign(ids(1), rows(10))
    t1.save(str(tmp_path / "table1"))
    t10.save(str(tmp_path / "table10"))
    fresh = sgd_table(engine)
    fresh.restore(str(tmp_path / "table1"))
    np.testing.assert_array_equal(fresh.lookup(ids(1)), rows(1))


@pytest.mark.conformance_area("checkpoints")
def test_save_restore_many_shards(engine, tmp_path):              # §7.2 SaveRestoreMultithreaded
    require(engine, op=("save", "restore"))
    t = sgd_table(engine)
    n = 26_000
    all_ids = np.arange(-13_000, 13_000, dtype=np.int64)
    t.assign(all_ids, np.arange(n, dtype=np.float32).reshape(n, 1))
    files = t.save(str(tmp_path / "t"), nshards=10)
    assert len(files) == 10
    t2 = sgd_table(engine)
    t2.restore(str(tmp_path / "t"))
    assert t2.size() == n
    np.testing.assert_array_equal(t2.lookup(all_ids).ravel(), np.arange(n, dtype=np.float32))


@pytest.mark.conformance_area("checkpoints")
def test_automatic_shard_count(engine, tmp_path):                 # core §2.8 step 2
    require(engine, op="save")
    t = sgd_table(engine)
    t.assign(ids(1, 2, 3), rows(1, 2, 3))
    assert len(t.save(str(tmp_path / "t"))) == 1                  # < 2M entries -> 1 shard


# ---- TTL (core §5, §7.1 #14-#18) ---------------------------------------------------------
def _ttl_roundtrip(engine, tmp_path, table, probe):
    table.save(str(tmp_path / "ttl"))
    fresh = engine.create_table(table.spec.config, learning_rates=table.learning_rates)
    fresh.restore(str(tmp_path / "ttl"))
    return fresh, fresh.lookup(probe)


@pytest.mark.conformance_area("ttl")
def test_feature_eviction_assign_add(engine, tmp_path):           # §7.1 #14
    require(engine, ttl=True, op=("save", "restore"))
    t = sgd_table(engine, expire_days=1)
    max_ts = 10_000_000
    t.assign_add(ids(1), rows(1), req_time=max_ts - 86_401)
    t.assign_add(ids(2), rows(2), req_time=max_ts - 86_399)
    t.assign_add(ids(3), rows(3), req_time=max_ts)
    _, got = _ttl_roundtrip(engine, tmp_path, t, ids(1, 2, 3))
    np.testing.assert_array_equal(got, rows(0, 2, 3))
    np.testing.assert_array_equal(t.lookup(ids(1, 2, 3)), rows(1, 2, 3))   # memory unchanged


@pytest.mark.conformance_area("ttl")
def test_feature_eviction_apply_gradients(engine, tmp_path):      # §7.1 #15
    require(engine, ttl=True, op=("save", "restore"))
    t = sgd_table(engine, expire_days=1)
    max_ts = 10_000_000
    for i, age in ((1, 86_401), (2, 86_399), (3, 0)):
        t.apply_gradients(ids(i), rows(i), req_time=max_ts - age)
    _, got = _ttl_roundtrip(engine, tmp_path, t, ids(1, 2, 3))
    np.testing.assert_array_equal(got, rows(0, -2, -3))


@pytest.mark.conformance_area("ttl")
def test_entry_ttl_zero(engine, tmp_path):                        # §7.1 #16: `>=`, not `>`
    require(engine, ttl=True, op=("save", "restore"))
    t = sgd_table(engine, expire_days=0)
    t.assign_add(ids(-1, 1), rows(1, 2))
    files = t.save(str(tmp_path / "z"))
    assert [open(f, "rb").read() for f in files] == [b""]          # empty shard, 0 bytes
    _, got = _ttl_roundtrip(engine, tmp_path, t, ids(-1, 1))
    np.testing.assert_array_equal(got, rows(0, 0))


@pytest.mark.conformance_area("ttl")
def test_entry_ttl_not_zero(engine, tmp_path):                    # §7.1 #17
    require(engine, ttl=True, op=("save", "restore"))
    t = sgd_table(engine, expire_days=3600)
    t.assign_add(ids(-1, 1), rows(1, 2))
    _, got = _ttl_roundtrip(engine, tmp_path, t, ids(-1, 1))
    np.testing.assert_array_equal(got, rows(1, 2))


@pytest.mark.conformance_area("ttl")
def test_entry_ttl_by_slots(engine, tmp_path):                    # §7.1 #18
    require(engine, ttl=True, op=("save", "restore"))
    t = sgd_table(engine, expire_days=3600, slot_expire_days={1: 0, 2: 1})
    probe = ids(1 << 48, 2 << 48)
    t.assign_add(probe, rows(1, 2), req_time=100)
    fresh, got = _ttl_roundtrip(engine, tmp_path, t, probe)
    np.testing.assert_array_equal(got, rows(0, 2))
    assert fresh.max_update_ts == 100                              # restored max ts
    _, got = _ttl_roundtrip(engine, tmp_path, fresh, probe)
    np.testing.assert_array_equal(got, rows(0, 2))


@pytest.mark.conformance_area("ttl")
@pytest.mark.parametrize("req_times", [(0, 0), (100, 100)])
def test_ttl_same_req_time_keeps_everything(engine, tmp_path, req_times):   # §7.1 #24-#26
    require(engine, ttl=True, op=("save", "restore"))
    t = sgd_table(engine, expire_days=1)
    t.apply_gradients(ids(1), rows(1), req_time=req_times[0])
    t.apply_gradients(ids(2), rows(2), req_time=req_times[1])
    _, got = _ttl_roundtrip(engine, tmp_path, t, ids(1, 2))
    np.testing.assert_array_equal(got, rows(-1, -2))


@pytest.mark.conformance_area("ttl")
def test_one_time_evict_by_slot(engine, tmp_path):                # §7.2 Evict.OneTimeEvict
    require(engine, ttl=True, op=("save", "restore"))
    t = sgd_table(engine, expire_days=14, slot_expire_days={0: 0, 1: 5, 2: 6})
    probe = ids(1 << 48, 2 << 48, 3 << 48)
    t.assign(probe, rows(3, 5, 7), req_time=1234)
    t.assign(ids(0), rows(0), req_time=1234 + 5 * 86400 + 60)      # moves max ts forward
    _, got = _ttl_roundtrip(engine, tmp_path, t, probe)
    np.testing.assert_array_equal(got, rows(0, 5, 7))


@pytest.mark.conformance_area("ttl")
def test_fid_v1_slots(engine, tmp_path):                          # issue: v1 and v2 slots
    require(engine, ttl=True, op=("save", "restore"))
    cfg = engines.table_config(dim=1, expire_days=3600, slot_expire_days={1: 0})
    t = engine.create_table(cfg, learning_rates=(1.0,), fid_version=1)
    probe = ids(1 << 54, 1 << 48)           # v1 slot 1 (evicted) / v1 slot 0 (kept)
    t.assign(probe, rows(1, 2), req_time=10)
    t.save(str(tmp_path / "v1"))
    fresh = engine.create_table(cfg, learning_rates=(1.0,), fid_version=1)
    fresh.restore(str(tmp_path / "v1"))
    np.testing.assert_array_equal(fresh.lookup(probe), rows(0, 2))


def test_timestamp_last_write_wins(engine):                       # core §2.0
    require(engine, op="lookup_entry")
    t = sgd_table(engine)
    t.assign(ids(1), rows(1), req_time=500)
    t.assign_add(ids(1), rows(1), req_time=100)
    d = pb.EntryDump.FromString(t.lookup_entry(ids(1))[0])
    assert d.last_update_ts_sec == 100
    assert t.max_update_ts == 500
    t.lookup(ids(1))                                              # reads change nothing
    assert t.max_update_ts == 500


def test_timestamp_holds_the_whole_uint32_range(engine):           # core §1.3
    require(engine, op="lookup_entry")
    t = sgd_table(engine)
    t.assign(ids(1), rows(1), req_time=(1 << 32) - 1)
    assert pb.EntryDump.FromString(t.lookup_entry(ids(1))[0]).last_update_ts_sec == (1 << 32) - 1
    assert t.max_update_ts == (1 << 32) - 1
