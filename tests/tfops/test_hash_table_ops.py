"""Monolith's HashTable surface over the op library, in TF1 graphs/sessions (Monolith's own
tests, core §7.1, as parity vectors), eagerly and in tf.function: gradients through a lookup,
the filter intercept, fused ops, protos and the graph collection, checkpoint listeners, and
kernel-level argument errors."""
from __future__ import annotations

import os

import numpy as np
import pytest

import engines

tf = pytest.importorskip("tensorflow", reason="tensorflow is not installed (`tf` extra)")

from engines.lr import PolynomialDecay  # noqa: E402
from engines.protos import embedding_hash_table_pb2 as eht_pb2  # noqa: E402
from engines.tfops import listeners  # noqa: E402
from engines.tfops.hash_filter import create_hash_filter, intercept_gradient  # noqa: E402
from engines.tfops.hash_table import (HASH_TABLE_GRAPH_KEY, HashTable,  # noqa: E402
                                      fused_apply_gradient, fused_lookup)


def monolith_config(dim, expire_days=36500, **kw):
    """Monolith's test_hash_table: cuckoo, sgd, zeros init, fp32, expire 100 years."""
    return engines.table_config(dim=dim, optimizer="sgd", expire_days=expire_days, **kw)


@pytest.fixture
def graph():
    g = tf.Graph()
    with g.as_default():
        yield g


def run(*fetches, feed=None):
    with tf.compat.v1.Session() as sess:
        return sess.run(list(fetches) if len(fetches) > 1 else fetches[0], feed)


def rows(*vals):
    return np.array(vals, np.float32).reshape(len(vals), -1)


# ---- TF1 graphs: Monolith's hash_table_ops_test vectors -------------------------------------

def test_basic(graph):                                                       # §7.1 #1
    t = HashTable(monolith_config(1), (1.0,))
    t = t.assign_add([0, 1], tf.ones([2, 1]))
    emb, size = run(t.lookup([0, 1, 2]), t.size())
    np.testing.assert_array_equal(emb, rows(1, 1, 0))
    assert size == 2


def test_assign_is_ordered_by_the_returned_table(graph):                     # §7.1 #2
    t = HashTable(monolith_config(1), (1.0,))
    t1 = t.assign([0, 1], tf.ones([2, 1]))
    t2 = t1.assign([1], [[5.0]])
    with tf.compat.v1.Session() as sess:
        np.testing.assert_array_equal(sess.run(t1.lookup([0, 1, 2])), rows(1, 1, 0))
        np.testing.assert_array_equal(sess.run(t2.lookup([0, 1, 2])), rows(1, 5, 0))


def test_lookup_entry_and_save_as_tensor(graph):                             # §7.1 #3, #4
    t = HashTable(monolith_config(1), (1.0,)).assign([0, 1, 2], rows(0.1, 0.2, 0.3))
    entries, (offset, dumps) = run(t.lookup_entry([0, 1, 2, 3]), t.save_as_tensor(0, 1, 1000, 0))
    nums = []
    for e in entries[:3]:
        d = eht_pb2.EntryDump()
        d.ParseFromString(e)
        nums.append(list(d.num))
    np.testing.assert_array_equal(np.float32(nums), rows(0.1, 0.2, 0.3))
    assert entries[3] == b""
    assert offset == 3 and len(dumps) == 3
    assert sorted(eht_pb2.EntryDump.FromString(d).id for d in dumps) == [0, 1, 2]


def test_name_conflict(graph):                                               # §7.1 #5
    HashTable(monolith_config(1), name="same_suffix")
    with pytest.raises(ValueError, match="already been used"):
        HashTable(monolith_config(1), name="same_suffix")


@pytest.mark.parametrize("lr, step, want", [
    (0.1, 0, [[0.2], [0.1]]),                                                # #6
    (lambda step: 0.1, 0, [[0.2], [0.1]]),                                   # #7
    (PolynomialDecay(0.01, 10, 0.11), 1, [[0.04], [0.02]]),                  # #8
])
def test_gradients(graph, lr, step, want):
    t = HashTable(monolith_config(1), (lr,))
    ids = tf.constant([0, 0, 1], tf.int64)
    emb = t.lookup(ids)
    loss = -tf.reduce_sum(emb)
    grads = tf.gradients(loss, t.handle)[0]
    assert isinstance(grads, tf.IndexedSlices)
    t2 = t.apply_gradients(grads.indices, grads.values, global_step=step)
    np.testing.assert_allclose(run(t2.lookup([0, 1])), want, rtol=1e-6)


def test_gradients_with_dedup(graph):                                        # §7.1 #9
    t = HashTable(monolith_config(10), (0.1,))
    ids = [0, 1, 0, 1, 0]
    t2 = t.apply_gradients(ids, -tf.ones([5, 10]), enable_dedup=True)
    got = run(t2.lookup([0, 1]))
    np.testing.assert_allclose(got, [[0.3] * 10, [0.2] * 10], rtol=1e-6)


def test_gradients_with_different_ids(graph):                                # §7.1 #10
    t = HashTable(monolith_config(1), (0.1,))
    emb = t.lookup([0, 0, 1])
    g = tf.gradients(-tf.reduce_sum(emb), emb)[0]
    t2 = t.apply_gradients([1, 0, 1], g)
    np.testing.assert_allclose(run(t2.lookup([0, 1])), [[0.1], [0.2]], rtol=1e-6)


def test_gradients_with_hash_filter(graph):                                  # §7.1 #11
    f = create_hash_filter(occurrence_threshold=3, capacity=1000, split_num=7)
    t = HashTable(monolith_config(1), (0.1,), hash_filter=f)
    t2 = t.apply_gradients([0, 0, 1], -tf.ones([3, 1]))
    with tf.control_dependencies([t2.as_op()]):
        after = tf.identity(t2.lookup([0, 1]))
    want = [[[0], [0]], [[0.1], [0]], [[0.3], [0]], [[0.5], [0.1]]]
    with tf.compat.v1.Session() as sess:
        for expected in want:
            np.testing.assert_allclose(sess.run(after), expected, rtol=1e-6)


def test_intercept_gradient_zeroes_rows_of_filtered_ids(graph):
    f = create_hash_filter(occurrence_threshold=1, capacity=1000)
    t = HashTable(monolith_config(2), (1.0,)).assign([5, 6], rows([1, 1], [2, 2]))
    ids = tf.constant([5, 6, 5], tf.int64)
    emb = intercept_gradient(f, ids, t.lookup(ids))
    g = tf.gradients(tf.reduce_sum(emb * 3.0), t.handle)[0]
    with tf.compat.v1.Session() as sess:
        e, vals = sess.run([emb, g.values])
        np.testing.assert_array_equal(e, rows([1, 1], [2, 2], [1, 1]))   # forward: identity
        # threshold 1: each id's first occurrence is filtered, later ones pass.
        np.testing.assert_array_equal(vals, rows([0, 0], [0, 0], [3, 3]))
        np.testing.assert_array_equal(sess.run(g.values), rows([3, 3], [3, 3], [3, 3]))


def test_feature_eviction_at_save(graph, tmp_path):                          # §7.1 #14, #15
    base = str(tmp_path / "t")
    t = HashTable(monolith_config(1, expire_days=1), (1.0,))
    for i, rt in zip((1, 2, 3), (9_913_599, 9_913_601, 10_000_000)):
        t = t.apply_gradients([i], [[float(i)]], req_time=rt)
    saved = t.save(base)
    fresh = HashTable(monolith_config(1, expire_days=1), (1.0,))
    restored = fresh.restore(base)
    with tf.compat.v1.Session() as sess:
        sess.run(saved.as_op())
        np.testing.assert_array_equal(sess.run(restored.lookup([1, 2, 3])), rows(0, -2, -3))


def test_ttl_by_slots(graph, tmp_path):                                      # §7.1 #18
    cfg = monolith_config(1, expire_days=3600, slot_expire_days={1: 0, 2: 1})
    t = HashTable(cfg, (1.0,)).assign_add([1 << 48, 2 << 48], rows(1, 2), req_time=100)
    s1 = t.save(str(tmp_path / "a"))
    r1 = HashTable(cfg, (1.0,)).restore(str(tmp_path / "a"))
    with tf.compat.v1.Session() as sess:
        sess.run(s1.as_op())
        np.testing.assert_array_equal(sess.run(r1.lookup([1 << 48, 2 << 48])), rows(0, 2))


def test_restore_not_found_and_restore_clears(graph, tmp_path):             # §7.1 #19, #28
    base = str(tmp_path / "t")
    t = HashTable(monolith_config(1), (1.0,))
    with tf.compat.v1.Session() as sess:
        with pytest.raises(tf.errors.DataLossError, match="no checkpoint files"):
            sess.run(t.restore(str(tmp_path / "missing")).as_op())
        sess.run(t.assign_add([0], rows(1)).save(base).as_op())
        sess.run(t.assign_add([1], rows(1)).as_op())
        sess.run(t.restore(base).as_op())
        np.testing.assert_array_equal(sess.run(t.lookup([0, 1])), rows(1, 0))


def test_batch_softmax(graph):                                               # §7.1 #33
    t = HashTable(engines.table_config(dim=1, optimizer="batch_softmax"), (0.1,))
    ids = tf.compat.v1.placeholder(tf.int64, [None])
    step = tf.compat.v1.placeholder(tf.int64, [])
    grads = tf.fill(tf.stack([tf.size(ids), 1]), 0.1)
    update = t.apply_gradients(ids, grads, global_step=step).as_op()
    with tf.compat.v1.Session() as sess:
        for s in range(1000):
            batch = [i for i, every in ((0, 5), (1, 10)) if s % every == 0]
            sess.run(update, {ids: batch, step: s})
        # The entry holds the mean step distance B; Monolith's test checks 1 / max(B, 1).
        b = sess.run(t.lookup([0, 1]))
        np.testing.assert_allclose(1 / np.maximum(b, 1), [[0.2], [0.1]], atol=0.01)


def test_fused_lookup_and_optimize(graph):                                   # §7.1 #31, #32
    dims = [1, 1, 2]
    ts = [HashTable(monolith_config(d), (1.0,)) for d in dims]
    ts[0] = ts[0].assign([0, 1], rows(1, 1))
    ts[1] = ts[1].assign([3, 4], rows(0, 0))
    ts[2] = ts[2].assign([6, 7], rows([1, 1], [1, 1]))
    emb, splits, id_off, emb_off, _ = fused_lookup(ts, [0, 4, 6, 1, 3, 7], [1] * 6, 2)
    got = run(emb, splits, id_off, emb_off)
    np.testing.assert_array_equal(got[0], [1, 0, 1, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(got[1], [4, 4])
    np.testing.assert_array_equal(got[2], range(7))
    np.testing.assert_array_equal(got[3], [0, 1, 2, 4, 5, 6, 8])

    a = HashTable(monolith_config(1), (0.1,)).assign([0, 1], rows(1, 1))
    b = HashTable(monolith_config(2), (0.1,)).assign([3, 4], rows([0, 0], [0, 0]))
    ids = [0, 4, 1, 3]
    _, splits, id_off, emb_off, _ = fused_lookup([a, b], ids, [1, 1, 1, 1], 2)
    new = fused_apply_gradient([a, b], ids, None, [1, 1, 1, 1], [-1, -2, -2, -1, -2, -2],
                               id_off, emb_off, [0.1, 0.1], 0, 0, 2)
    emb2 = fused_lookup(new, ids, [1, 1, 1, 1], 2)[0]
    out, sp = run(emb2, splits)
    np.testing.assert_allclose(out, [1.1, 0.2, 0.2, 1.1, 0.2, 0.2], rtol=1e-6)
    np.testing.assert_array_equal(sp, [3, 3])


def test_meta_graph_export_and_import(tmp_path):                             # §7.1 #35
    g = tf.Graph()
    with g.as_default():
        t = HashTable(monolith_config(3), (0.5,), name="emb", saver_parallel=2,
                      extra_restore_names=["old_emb"])
        t.export_share_embedding = True
        assert tf.compat.v1.get_collection(HASH_TABLE_GRAPH_KEY) == [t]
        meta = tf.compat.v1.train.export_meta_graph()
    assert HASH_TABLE_GRAPH_KEY in meta.collection_def
    g2 = tf.Graph()
    with g2.as_default():
        tf.compat.v1.train.import_meta_graph(meta)
        (back,) = tf.compat.v1.get_collection(HASH_TABLE_GRAPH_KEY)
        assert (back.name, back.dim_size, back.saver_parallel, back.extra_restore_names,
                back.export_share_embedding) == ("emb", 3, 2, ["old_emb"], True)
        proto = back.to_proto()
        assert proto == t.to_proto()
        back = back.assign([7], [[1.0, 2.0, 3.0]])
        with tf.compat.v1.Session() as sess:
            np.testing.assert_array_equal(sess.run(back.lookup([7])), [[1, 2, 3]])


# ---- listeners -------------------------------------------------------------------------------

def _step_graph():
    step = tf.compat.v1.train.get_or_create_global_step()
    t = HashTable(monolith_config(1), (1.0,), name="t1")
    return step, t


def test_saver_and_restorer_listeners(graph, tmp_path):                      # §7.1 #20, #21
    base = str(tmp_path / "model.ckpt")
    step, t = _step_graph()
    plus, minus, set2 = (t.assign_add([0], rows(1)).as_op(), t.assign_add([0], rows(-1)).as_op(),
                         t.assign([0], rows(2)).as_op())
    saver_l = listeners.HashTableCheckpointSaverListener(base)
    restorer_l = listeners.HashTableCheckpointRestorerListener(base)
    saver = tf.compat.v1.train.Saver()
    lookup = t.lookup([0])
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        restorer_l.before_restore(sess)               # nothing saved yet: a no-op
        sess.run(plus)
        saver_l.before_save(sess, 7)
        saver.save(sess, base, global_step=7)
        assert sorted(os.listdir(tmp_path / "model.ckpt-7.assets")) == ["t1-00000-of-00001",
                                                                        "t1.manifest"]
        sess.run(minus)
        restorer_l.before_restore(sess)
        np.testing.assert_array_equal(sess.run(lookup), rows(1))
        # Monolith's restore-after-save: the post-save write is undone.
        sess.run(set2)
        listeners.HashTableRestorerSaverListener(base).after_save(sess, 7)
        np.testing.assert_array_equal(sess.run(lookup), rows(1))


def test_hooks_in_a_monitored_session(tmp_path):
    """CheckpointSaverHook with the table listener saves assets next to TF's checkpoint; a new
    session's CheckpointRestorerHook restores them (and extra_restore_names finds a renamed
    table)."""
    model_dir = str(tmp_path)
    base = os.path.join(model_dir, "model.ckpt")
    g = tf.Graph()
    with g.as_default():
        step, t = _step_graph()
        train = tf.group(t.assign_add([0], rows(2)).as_op(),
                         tf.compat.v1.assign_add(step, 1))
        hook = tf.compat.v1.train.CheckpointSaverHook(
            model_dir, save_steps=1, listeners=[listeners.HashTableCheckpointSaverListener(base)])
        with tf.compat.v1.train.MonitoredTrainingSession(hooks=[hook],
                                                         save_summaries_steps=None) as sess:
            sess.run(train)
    assert os.path.isdir(os.path.join(model_dir, "model.ckpt-1.assets"))
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.train.get_or_create_global_step()
        renamed = HashTable(monolith_config(1), (1.0,), name="t1_new", extra_restore_names=["t1"])
        hook = listeners.CheckpointRestorerHook(
            [listeners.HashTableCheckpointRestorerListener(base)])
        lookup = renamed.lookup([0])
        with tf.compat.v1.train.MonitoredSession(hooks=[hook]) as sess:
            np.testing.assert_array_equal(sess.run(lookup), rows(2))


# ---- eager and tf.function ------------------------------------------------------------------

def test_eager_training_step_with_gradient_tape():
    t = HashTable(monolith_config(2), (0.5,))
    ids = tf.constant([3, 4, 3], tf.int64)
    with tf.GradientTape() as tape:
        tape.watch(t.handle)
        loss = tf.reduce_sum(t.lookup(ids) - 1.0)
    g = tape.gradient(loss, t.handle)
    np.testing.assert_array_equal(g.indices.numpy(), [3, 4, 3])
    t = t.apply_gradients(g.indices, g.values)
    np.testing.assert_array_equal(t.lookup([3, 4]).numpy(), rows([-1, -1], [-0.5, -0.5]))
    assert int(t.size()) == 2


def test_tf_function_steps_match_the_native_engine():
    """lookup + gradient + apply in a tf.function, several steps, against native-cpu."""
    cfg = engines.table_config(dim=4, optimizer="adagrad", initial_accumulator_value=0.1,
                               initializer="random_uniform")
    t = HashTable(cfg, (0.05,), seed=3)
    ref = engines.get("native-cpu", threads=1).create_table(cfg, learning_rates=(0.05,), seed=3)

    @tf.function
    def step(ids, target):
        with tf.GradientTape() as tape:
            tape.watch(t.handle)
            emb = t.lookup(ids)
            loss = 0.5 * tf.reduce_sum(tf.square(emb - target))
        g = tape.gradient(loss, t.handle)
        t.apply_gradients(g.indices, g.values, enable_dedup=True, req_time=5)
        return emb

    rng = np.random.default_rng(1)
    for _ in range(3):
        ids = rng.integers(0, 20, 16).astype(np.int64)
        target = rng.standard_normal((16, 4)).astype(np.float32)
        emb = step(tf.constant(ids), tf.constant(target)).numpy()
        np.testing.assert_array_equal(emb, ref.lookup(ids))
        ref.apply_gradients(ids, emb - target, enable_dedup=True, req_time=5)
    probe = np.arange(20, dtype=np.int64)
    assert t.lookup_entry(probe).numpy().tolist() == ref.lookup_entry(probe)


def test_checkpoint_files_identical_to_native_cpu(tmp_path):
    cfg = engines.table_config(segments=[dict(dim=3, optimizer="adagrad"),
                                         dict(dim=2, optimizer="ftrl")])
    rng = np.random.default_rng(0)
    keys = rng.integers(-2**62, 2**62, 300, dtype=np.int64)
    vals = rng.standard_normal((300, 5)).astype(np.float32)
    t = HashTable(cfg, (0.5, 0.25)).assign_add(keys, vals, req_time=11)
    t = t.apply_gradients(keys[::3], vals[::3], req_time=12)
    paths, warning = t.save_shards(str(tmp_path / "ours"), 3)
    assert warning.numpy() == b""
    ours = [p.decode() for p in paths.numpy()]
    ref = engines.get("native-cpu", threads=1).create_table(cfg, learning_rates=(0.5, 0.25))
    ref.assign_add(keys, vals, req_time=11)
    ref.apply_gradients(keys[::3], vals[::3], req_time=12)
    theirs = ref.save(str(tmp_path / "theirs"), nshards=3)
    assert [open(p, "rb").read() for p in ours] == [open(p, "rb").read() for p in theirs]


def test_eager_resources_are_freed_with_the_table():
    import gc
    t = HashTable(monolith_config(1), (1.0,), name="freed")
    handle = t.handle
    del t
    gc.collect()
    with pytest.raises(tf.errors.NotFoundError):
        from engines.tfops.ops import lib
        lib().monolith_hash_table_size(handle)
    HashTable(monolith_config(1), (1.0,), name="freed")       # the name is free again


# ---- kernel argument checks (graph users bypass engines/api.py) ------------------------------

@pytest.mark.parametrize("call, match", [
    (lambda t: t.assign([1, 2], [[1.0, 2.0]]), "values must have shape \\[2, 2\\]"),
    (lambda t: t.assign([[1]], [[1.0, 2.0]]), "ids must be 1-D"),
    (lambda t: t.apply_gradients([1], [[np.nan, 0.0]]), "grads contains a non-finite"),
    (lambda t: t.apply_gradients([1], [[1.0, 0.0]], learning_rates=[0.1, 0.2]),
     "one value per segment"),
    (lambda t: t.write_part_shards("/tmp/x", 3, 0, 2), "3 shards cannot be split among 2"),
    (lambda t: t.restore_part("/tmp/x", 2, 2), "part < num_parts"),
])
def test_kernels_reject_bad_arguments_and_leave_the_table(call, match):
    t = HashTable(monolith_config(2), (1.0,)).assign([9], [[1.0, 1.0]])
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        call(t)
    assert int(t.size()) == 1
    np.testing.assert_array_equal(t.lookup([9]).numpy(), [[1, 1]])


def test_engine_errors_carry_the_kernels_own_message(graph):
    """TensorFlow's decorations (function node, op, definition trace) are stripped, so tf-native
    raises native-cpu's messages."""
    from engines.tfops.engine import kernel_message
    t = HashTable(monolith_config(2), (1.0,))
    op = t.assign([1], [[1.0, 2.0]], req_time=2**32).as_op()
    with tf.compat.v1.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError) as info:
            sess.run(op)
    assert kernel_message(info.value).startswith("req_time must be in [0, 4294967295]")
    assert kernel_message(info.value).endswith("got 4294967296")


def test_a_table_collected_while_a_function_is_traced_is_destroyed_later():
    """Garbage collection runs finalizers at any allocation, also while this thread traces a
    tf.function and holds the graph's lock (the test suite once hung there). A collected
    table's resources are destroyed at the next table creation, eagerly, never as ops of the
    function being traced."""
    import gc

    from engines.tfops import hash_table as ht

    @tf.function
    def step(x):
        gc.collect()                              # the table's deleter runs during tracing
        return x + 1

    gc.collect()
    gc.disable()                                  # no automatic collection before the trace
    try:
        t = HashTable(monolith_config(2), (1.0,)).assign([9], [[1.0, 1.0]])
        t.cycle = t                               # only the cyclic collector can free it
        del t
        assert int(step(tf.constant(1))) == 2
    finally:
        gc.enable()
    ops = {op.type for op in step.get_concrete_function(tf.constant(1)).graph.get_operations()}
    assert "DestroyResourceOp" not in ops
    queued = list(ht._deferred)
    assert queued, "the collected table's resources were not queued"
    fresh = HashTable(monolith_config(2), (1.0,))  # a safe point: the queue is run
    assert not any(q in ht._deferred for q in queued) and fresh.size() == 0
