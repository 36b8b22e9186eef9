"""A table sharded over parameter-server tasks by TensorFlow's own runtime.

    cluster.local_cluster(2).connect(2)                       # or a real cluster (TF_CONFIG)
    table = ShardedHashTable(config, ps_devices=["/job:ps/task:0", "/job:ps/task:1"])
    @tf.function
    def step(ids):
        emb = table.lookup(ids)                               # partition, RPC, stitch
        ...
        table.apply_gradients(ids, grads)

Task i holds one native table resource (`MonolithHashTable` placed on its device) with the ids
whose fixed hash routes there: shard_of(id, N) = mix64(id) % N, the function that also picks
an id's checkpoint shard (docs/semantics.md §1). Ids are split with tf.dynamic_partition and
results put back in batch order with tf.dynamic_stitch; TF sends the parts to the tasks and
back. Nothing of ours sits in the data path.

Because routing and checkpoint sharding share the hash, a save with nshards = k*N lets task i
write exactly shards {i, i+N, ...}; the first task then commits them as one crash-safe set (one
manifest, docs/checkpoints.md). The files are byte-identical to one table's save with the same
nshards, and one table restores them as any checkpoint. Restoring a checkpoint
of any shard count into N tasks gives each task its own ids (HashlabHashTableRestorePart).

Every write reaches every task, an empty part included, so all tasks see the same req_time
and keep the same TTL reference time (max_update_ts) as one table would; restore re-aligns it.
"""
from __future__ import annotations

import copy

import tensorflow as tf

from engines.tfops.hash_table import HashTable, _scalar_i64, commit_part_shards
from engines.tfops.ops import lib

AUTO_SHARD_ENTRIES = 1_000_000     # the automatic shard count rule of a table's save
MAX_AUTO_SHARDS_PER_TASK = 4


class ShardedHashTable:
    """One HashTable per ps device; the same ops as HashTable, routed by the id hash.

    Writes return a new ShardedHashTable (as HashTable's do)."""

    def __init__(self, config, learning_rates=None, *, ps_devices, name: str | None = None,
                 seed: int = 0, monolith_quirks: bool = False, fid_version: int = 2,
                 threads: int = 1, saver_parallel: int = -1):
        ps_devices = list(ps_devices)
        if not ps_devices:
            raise ValueError("ps_devices: at least one parameter-server device is required")
        self.ps_devices = ps_devices
        self.name = name or "MonolithShardedHashTable"
        self.saver_parallel = int(saver_parallel)
        self._tables = [
            HashTable(config, learning_rates, name=None if name is None else f"{name}_ps{i}",
                      seed=seed, monolith_quirks=monolith_quirks, fid_version=fid_version,
                      threads=threads, device=dev)
            for i, dev in enumerate(ps_devices)]

    # ---- shape -------------------------------------------------------------------------
    @property
    def num_ps(self) -> int:
        return len(self._tables)

    @property
    def tables(self) -> list[HashTable]:
        """The per-task tables (task i holds the ids with shard_of(id, N) == i)."""
        return list(self._tables)

    @property
    def dim_size(self) -> int:
        return self._tables[0].dim_size

    def as_op(self):
        return tf.group([t.as_op() for t in self._tables])

    def _with_tables(self, tables) -> "ShardedHashTable":
        copied = copy.copy(self)
        copied._tables = list(tables)
        return copied

    # ---- routing -----------------------------------------------------------------------
    def shard_of(self, ids) -> tf.Tensor:
        """int32 task index of every id."""
        return lib().hashlab_shard_of(tf.convert_to_tensor(ids, tf.int64),
                                      num_shards=self.num_ps)

    def _split(self, ids, *rows):
        """(positions, ids, rows...) per task, each in batch order."""
        ids = tf.convert_to_tensor(ids, tf.int64)
        parts = self.shard_of(ids)
        n = self.num_ps
        positions = tf.dynamic_partition(tf.range(tf.size(ids)), parts, n)
        split = [tf.dynamic_partition(ids, parts, n)]
        split += [tf.dynamic_partition(r, parts, n) for r in rows]
        return positions, split

    def _per_task(self, fn, *args):
        out = []
        for i, (dev, table) in enumerate(zip(self.ps_devices, self._tables)):
            with tf.device(dev):
                out.append(fn(table, *(a[i] for a in args)))
        return out

    # ---- ops ---------------------------------------------------------------------------
    def lookup(self, ids) -> tf.Tensor:
        positions, (ids_p,) = self._split(ids)
        embs = self._per_task(lambda t, i: t.lookup(i), ids_p)
        return tf.reshape(tf.dynamic_stitch(positions, embs), [-1, self.dim_size])

    def lookup_entry(self, ids) -> tf.Tensor:
        positions, (ids_p,) = self._split(ids)
        return tf.dynamic_stitch(positions, self._per_task(lambda t, i: t.lookup_entry(i), ids_p))

    def _write(self, method, ids, values, req_time, **kwargs) -> "ShardedHashTable":
        values = tf.reshape(tf.convert_to_tensor(values, tf.float32), [-1, self.dim_size])
        _, (ids_p, vals_p) = self._split(ids, values)
        req_time = _scalar_i64(req_time, "req_time")
        return self._with_tables(self._per_task(
            lambda t, i, v: getattr(t, method)(i, v, req_time=req_time, **kwargs), ids_p, vals_p))

    def assign(self, ids, values, req_time=None) -> "ShardedHashTable":
        return self._write("assign", ids, values, req_time)

    def assign_add(self, ids, values, req_time=None) -> "ShardedHashTable":
        return self._write("assign_add", ids, values, req_time)

    def apply_gradients(self, ids, grads, global_step=None, enable_dedup: bool = False,
                        req_time=None, learning_rates=None) -> "ShardedHashTable":
        """Each task applies its ids' gradients; dedup groups within a task, which is the same
        grouping as one table's (all occurrences of an id go to one task)."""
        step = global_step if isinstance(global_step, (tf.Tensor, tf.Variable)) else \
            _scalar_i64(global_step, "global_step")
        lrs = self._tables[0]._learning_rates_for(learning_rates, tf.cast(step, tf.int64))
        return self._write("apply_gradients", ids, grads, req_time, global_step=step,
                           enable_dedup=enable_dedup, learning_rates=lrs)

    def size(self) -> tf.Tensor:
        return tf.add_n(self._per_task(lambda t: t.size()))

    def max_update_ts(self) -> tf.Tensor:
        return tf.reduce_max(tf.stack(self._per_task(lambda t: t.max_update_ts())))

    def save(self, basename, nshards=-1) -> tf.Tensor:
        """Every task writes its shards of an nshards-shard checkpoint (a multiple of N;
        -1: N * clip(largest task size / 1e6, 1, 4)), then the first task commits the set
        (one manifest, docs/checkpoints.md). Returns every path, in shard order."""
        n = self.num_ps
        if isinstance(nshards, int) and nshards != -1 and (nshards < 1 or nshards % n):
            raise ValueError(f"nshards must be -1 or a multiple of the {n} ps tasks, "
                             f"got {nshards}")
        nshards = _scalar_i64(nshards, "nshards")
        auto = n * tf.clip_by_value(
            tf.reduce_max(tf.stack(self._per_task(lambda t: t.size()))) // AUTO_SHARD_ENTRIES,
            1, MAX_AUTO_SHARDS_PER_TASK)
        total = tf.where(nshards < 0, auto, nshards)
        lines = self._per_task(lambda t, i: t.write_part_shards(basename, total, i, n),
                               list(range(n)))
        with tf.device(self.ps_devices[0]):
            return commit_part_shards(basename, total, tf.concat(lines, 0))

    def stage_restore(self, basename) -> list:
        """Step 1 of a two-step restore: every task reads and checks its share of a checkpoint
        of any shard count; nothing changes yet. Returns one token per task."""
        n = self.num_ps
        return self._per_task(lambda t, i: t.stage_restore(basename, i, n), list(range(n)))

    def commit_restore(self, tokens) -> "ShardedHashTable":
        """Step 2: every task takes its staged share, then all tasks take the newest timestamp
        of the whole checkpoint as their TTL reference time (one table's max_update_ts)."""
        restored = self._with_tables(self._per_task(lambda t, k: t.commit_restore(k), tokens))
        newest = tf.reduce_max(tf.stack(restored._per_task(lambda t: t.max_update_ts())))
        empty_ids = tf.zeros([0], tf.int64)
        empty_rows = tf.zeros([0, self.dim_size], tf.float32)
        return restored._with_tables(restored._per_task(
            lambda t: t.assign_add(empty_ids, empty_rows, req_time=newest)))

    def discard_restore(self, tokens) -> tf.Operation:
        return tf.group(self._per_task(lambda t, k: t.discard_restore(k).as_op(), tokens))

    def restore(self, basename) -> "ShardedHashTable":
        """Replace the content with a checkpoint of any shard count."""
        return self.commit_restore(self.stage_restore(basename))
