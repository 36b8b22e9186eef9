"""The TF2 route, as a user writes it: connect the eager context to 2 ps tasks, create the
table, look up inside a tf.function training step, apply the gradients; the result matches a
local table step for step. Run by test_cluster.py in its own process (the eager context
connects once per process)."""
from __future__ import annotations

import numpy as np
import pytest

import engines

tf = pytest.importorskip("tensorflow")

from engines.tfops import HashTable, ShardedHashTable, cluster  # noqa: E402

CFG = engines.table_config(dim=4, optimizer="adagrad", initial_accumulator_value=0.1,
                           initializer="random_uniform", minval=-0.1, maxval=0.1)


@pytest.fixture(scope="module")
def ps_devices():
    return cluster.local_cluster(2).connect(2)


def test_training_step_on_two_ps_tasks(ps_devices):
    """The issue's example: `table = ...(config)`, `emb = table.lookup(ids)` in a tf.function,
    `table = table.apply_gradients(ids, grads)` in the step; a lookup through the returned
    table sees the update (the control dependency orders it)."""
    table = ShardedHashTable(CFG, (0.05,), ps_devices=ps_devices, seed=1)
    local = HashTable(CFG, (0.05,), seed=1)

    def make_step(table):
        @tf.function
        def step(ids, target):
            with tf.GradientTape() as tape:
                emb = table.lookup(ids)
                tape.watch(emb)
                loss = 0.5 * tf.reduce_sum(tf.square(emb - target))
            grads = tape.gradient(loss, emb)
            updated = table.apply_gradients(ids, grads, enable_dedup=True, req_time=9)
            return emb, loss, updated.lookup(ids)
        return step

    remote_step, local_step = make_step(table), make_step(local)
    rng = np.random.default_rng(0)
    seen = []
    for _ in range(4):
        ids = tf.constant(rng.integers(0, 50, 64), tf.int64)
        seen.extend(ids.numpy().tolist())
        target = tf.constant(rng.standard_normal((64, 4)), tf.float32)
        emb_r, loss_r, after_r = remote_step(ids, target)
        emb_l, loss_l, after_l = local_step(ids, target)
        np.testing.assert_array_equal(emb_r.numpy(), emb_l.numpy())
        assert float(loss_r) == float(loss_l)
        np.testing.assert_array_equal(after_r.numpy(), after_l.numpy())
        assert not np.array_equal(after_r.numpy(), emb_r.numpy())     # the update happened
    probe = tf.range(50, dtype=tf.int64)
    assert int(table.size()) == int(local.size())
    assert table.lookup_entry(probe).numpy().tolist() == local.lookup_entry(probe).numpy().tolist()
    # Each task holds exactly the ids the fixed hash routes to it.
    parts = table.shard_of(probe).numpy()
    held = np.isin(np.arange(50), seen)
    for i, t in enumerate(table.tables):
        assert t.handle.device.endswith(f"/job:ps/replica:0/task:{i}/device:CPU:0")
        present = np.array([len(e) > 0 for e in t.lookup_entry(probe).numpy()])
        np.testing.assert_array_equal(present, held & (parts == i))


def test_gradient_tape_through_a_remote_lookup(ps_devices):
    """tape.gradient with respect to a ps-placed table handle gives the (ids, grads) pairs."""
    t = HashTable(CFG, (1.0,), device=ps_devices[1])
    ids = tf.constant([7, 8, 7], tf.int64)
    with tf.GradientTape() as tape:
        tape.watch(t.handle)
        loss = tf.reduce_sum(t.lookup(ids))
    g = tape.gradient(loss, t.handle)
    np.testing.assert_array_equal(g.indices.numpy(), [7, 8, 7])
    np.testing.assert_array_equal(g.values.numpy(), np.ones((3, 4), np.float32))
    before = t.lookup([7, 8]).numpy()
    t.apply_gradients(g.indices, g.values)
    assert int(t.size()) == 2
    assert (t.lookup([7, 8]).numpy() < before).all()


def test_connecting_again_with_another_size_is_refused(ps_devices):
    with pytest.raises(cluster.ClusterError, match="already connected to 2 ps tasks"):
        cluster.local_cluster(3).connect(3)
