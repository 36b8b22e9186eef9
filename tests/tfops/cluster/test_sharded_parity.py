"""Tables sharded over 1, 2 and 4 ps tasks of an in-process cluster (TF1 sessions, TF's gRPC
runtime on loopback) against one table: the same lookups, entries, sizes, TTL time and
checkpoint bytes; each task writes its own shard files; checkpoints move between one table
and N tasks both ways; the runtime's failures are errors, not hangs. Run by test_cluster.py
in its own process."""
from __future__ import annotations

import os
import socket

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engines

tf = pytest.importorskip("tensorflow")

from engines.tfops import cluster  # noqa: E402
from engines.tfops.sharded import ShardedHashTable  # noqa: E402

PS = (1, 2, 4)
CFG = engines.table_config(dim=3, optimizer="adagrad", initial_accumulator_value=0.1,
                           initializer="random_uniform", expire_days=1)


@pytest.fixture(scope="module")
def numpy_engine():
    return engines.get("numpy")


def sharded(ps):
    return engines.get("tf-native", threads=1, ps=ps)


def state(t, probe):
    return (t.lookup(probe).tobytes(), t.lookup_entry(probe), t.size(), t.max_update_ts)


# ---- random op sequences -----------------------------------------------------------------

ID_POOL = np.array([0, 1, 2, 3, 5, 8, 13, -1, -7, 1 << 48, (2 << 48) + 5, (1 << 62) + 9,
                    -(1 << 63), (1 << 63) - 1], np.int64)
op_strategy = st.tuples(
    st.sampled_from(["assign", "assign_add", "apply", "apply_dedup"]),
    st.lists(st.integers(0, len(ID_POOL) - 1), min_size=0, max_size=12),
    st.integers(0, 200_000),                               # req_time: TTL (1 day) matters
    st.integers(0, 2 ** 31))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op_strategy, min_size=1, max_size=6), ps=st.sampled_from(PS))
def test_random_ops_match_one_table(numpy_engine, tmp_path_factory, ops, ps):
    ref = numpy_engine.create_table(CFG, learning_rates=(0.05,), seed=11)
    got = sharded(ps).create_table(CFG, learning_rates=(0.05,), seed=11)
    for kind, picks, req_time, seed in ops:
        ids = ID_POOL[picks]
        vals = np.random.default_rng(seed).standard_normal((len(ids), 3)).astype(np.float32)
        for t in (ref, got):
            if kind.startswith("apply"):
                t.apply_gradients(ids, vals, global_step=seed % 7,
                                  enable_dedup=kind == "apply_dedup", req_time=req_time)
            else:
                getattr(t, kind)(ids, vals, req_time=req_time)
        assert state(got, ID_POOL) == state(ref, ID_POOL)
    d = tmp_path_factory.mktemp("ckpt")
    nshards = 4 if ps <= 4 else ps
    files = [open(p, "rb").read() for p in got.save(str(d / "got"), nshards=nshards)]
    assert files == [open(p, "rb").read() for p in ref.save(str(d / "ref"), nshards=nshards)]


# ---- checkpoints between one table and N tasks -------------------------------------------

def _filled(engine, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(-2**62, 2**62, n, dtype=np.int64)
    t = engine.create_table(CFG, learning_rates=(0.05,), seed=11)
    t.assign(ids, rng.standard_normal((n, 3)).astype(np.float32), req_time=40_000)
    t.apply_gradients(ids[::2], rng.standard_normal((n - n // 2, 3)).astype(np.float32),
                      req_time=200_000)                    # half of them expire at save
    return t, ids


@pytest.mark.parametrize("ps", PS)
def test_each_task_writes_its_own_shards(tmp_path, ps):
    """Task i writes shards i, i+N, ... of an 8-shard save under temporary names; the commit
    makes them one crash-safe set, byte for byte one table's 8-shard save (manifest too)."""
    from engines.tfops.hash_table import commit_part_shards
    g = tf.Graph()
    with g.as_default():
        t = ShardedHashTable(CFG, (0.05,), ps_devices=cluster.ps_devices(ps), seed=11)
        ids = np.arange(500, dtype=np.int64) * 7919
        t = t.assign(ids, np.ones((500, 3), np.float32), req_time=3)
        per_task = []
        for i, (dev, tab) in enumerate(zip(t.ps_devices, t.tables)):
            assert tab.handle.device.endswith(f"/job:ps/task:{i}")
            with tf.device(dev):
                per_task.append(tab.write_part_shards(str(tmp_path / "s"), 8, i, ps))
        lines = tf.compat.v1.placeholder(tf.string, [None])
        commit = commit_part_shards(str(tmp_path / "s"), 8, lines)
    c = cluster.local_cluster(ps)
    with c.session(ps, g) as sess:
        written = sess.run(per_task)
        for i, task_lines in enumerate(written):
            assert [int(x.split()[1]) for x in task_lines] == list(range(i, 8, ps))
        assert not [n for n in os.listdir(tmp_path) if not n.startswith(".")]  # nothing yet
        paths = sess.run(commit, {lines: np.concatenate(written)})
    assert [os.path.basename(p.decode()) for p in paths] == [f"s-{s:05d}-of-00008"
                                                             for s in range(8)]
    assert sorted(os.listdir(tmp_path)) == sorted(
        [f"s-{s:05d}-of-00008" for s in range(8)] + ["s.manifest"])       # no leftovers
    one = engines.get("native-cpu", threads=1).create_table(CFG, learning_rates=(0.05,), seed=11)
    one.assign(ids, np.ones((500, 3), np.float32), req_time=3)
    want = one.save(str(tmp_path / "one" / "s"), nshards=8)
    assert [open(p, "rb").read() for p in paths] == [open(p, "rb").read() for p in want]
    assert open(tmp_path / "s.manifest").read() == open(tmp_path / "one" / "s.manifest").read()


@pytest.mark.parametrize("ps", (2, 4))
@pytest.mark.parametrize("nshards", (4, 8))
def test_n_tasks_checkpoint_restores_into_one_table(numpy_engine, tmp_path, ps, nshards):
    src, ids = _filled(sharded(ps))
    ref, _ = _filled(numpy_engine)
    got_files = src.save(str(tmp_path / "ck"), nshards=nshards)
    want_files = ref.save(str(tmp_path / "ref"), nshards=nshards)
    assert len(got_files) == nshards
    assert [open(p, "rb").read() for p in got_files] == [open(p, "rb").read()
                                                         for p in want_files]
    one = numpy_engine.create_table(CFG, learning_rates=(0.05,), seed=11)
    one.restore(str(tmp_path / "ck"))
    back = numpy_engine.create_table(CFG, learning_rates=(0.05,), seed=11)
    back.restore(str(tmp_path / "ref"))
    assert 0 < one.size() < src.size()           # the save's TTL dropped the old half
    assert state(one, ids) == state(back, ids)


@pytest.mark.parametrize("ps", (2, 4))
@pytest.mark.parametrize("nshards", (1, 3, 4))
def test_one_table_checkpoint_restores_into_n_tasks(numpy_engine, tmp_path, ps, nshards):
    src, ids = _filled(numpy_engine)
    src.save(str(tmp_path / "ck"), nshards=nshards)
    dst = sharded(ps).create_table(CFG, learning_rates=(0.05,), seed=11)
    dst.assign(ids[:5], np.ones((5, 3), np.float32))        # restore replaces everything
    dst.restore(str(tmp_path / "ck"))
    fresh = numpy_engine.create_table(CFG, learning_rates=(0.05,), seed=11)
    fresh.restore(str(tmp_path / "ck"))
    assert state(dst, ids) == state(fresh, ids)
    # and it saves back into the same bytes one table writes
    a = [open(p, "rb").read() for p in dst.save(str(tmp_path / "a"), nshards=4 * ps)]
    b = [open(p, "rb").read() for p in fresh.save(str(tmp_path / "b"), nshards=4 * ps)]
    assert a == b


def test_corrupt_checkpoint_into_tasks_names_the_file(numpy_engine, tmp_path):
    src, _ = _filled(numpy_engine, n=50)
    (path,) = src.save(str(tmp_path / "ck"), nshards=1)
    data = bytearray(open(path, "rb").read())
    data[30] ^= 0x10
    open(path, "wb").write(bytes(data))
    dst = sharded(2).create_table(CFG, learning_rates=(0.05,), seed=11)
    dst.assign([1], np.ones((1, 3), np.float32))
    with pytest.raises(engines.CheckpointError, match="ck-00000-of-00001: record"):
        dst.restore(str(tmp_path / "ck"))
    assert dst.size() == 1


def test_sharded_save_needs_a_multiple_of_the_tasks(tmp_path):
    t = sharded(2).create_table(CFG)
    with pytest.raises(ValueError, match="multiple of the 2 ps tasks"):
        t.save(str(tmp_path / "x"), nshards=3)
    with pytest.raises(engines.CheckpointError, match="^no checkpoint files for .*missing$"):
        t.restore(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="^values contains a non-finite value"):
        t.assign([1], np.full((1, 3), np.nan, np.float32))


def test_sharded_engine_runs_the_fused_ops(numpy_engine):
    tables = {}
    for name, eng in (("ref", numpy_engine), ("got", sharded(2))):
        ts = [eng.create_table(engines.table_config(dim=d, optimizer="sgd")) for d in (1, 2)]
        ids = np.array([0, 4, 1, 3], np.int64)
        eng.fused_apply_gradients(ts, ids, None, [1, 1, 1, 1], np.arange(6, dtype=np.float32),
                                  None, None, [0.1, 0.1], req_time=5, num_shards=2)
        tables[name] = eng.fused_lookup(ts, ids, [1, 1, 1, 1], 2)[0]
    np.testing.assert_array_equal(tables["got"], tables["ref"])


# ---- the runtime's limits ----------------------------------------------------------------

def test_an_unreachable_task_is_a_clear_error_not_a_hang():
    """TF's session setup waits forever for a task it cannot reach; ping gives up in time and
    names the task."""
    with socket.socket() as s:                 # a port nothing listens on
        s.bind(("localhost", 0))
        dead = f"localhost:{s.getsockname()[1]}"
    live = cluster.local_cluster(1)
    spec = tf.train.ClusterSpec({"ps": [live.addresses[0], dead]})
    with pytest.raises(cluster.ClusterError, match=f"ps task 1 at {dead} did not answer "
                                                   f"within 3 s"):
        cluster.ping(live.servers[0].target, spec, timeout_s=3)


def test_cluster_facts():
    c = cluster.local_cluster(4)
    assert len(set(c.addresses)) >= 4
    c.ping(4)
    with pytest.raises(cluster.ClusterError, match="has"):
        cluster.LocalCluster().cluster_spec(1)
