"""Monolith's `HashTable` surface (`hash_table_ops.py`) over the native core's TensorFlow ops.

    table = HashTable(engines.table_config(dim=8, optimizer="adagrad"))
    emb = table.lookup(ids)                                   # eager, tf.function or a graph
    with tf.GradientTape() as tape:
        tape.watch(table.handle)
        loss = f(table.lookup(ids))
    g = tape.gradient(loss, table.handle)                     # IndexedSlices(grads, ids)
    table = table.apply_gradients(g.indices, g.values)        # a new table, after the update

Every write returns a new `HashTable` whose handle carries the write (as data or as a control
dependency), so graphs chain updates the way Monolith's do. Tables created in a TF1 graph are
added to the graph collection `monolith_hash_tables` (the saver/restorer listeners of
engines/tfops/listeners.py find them there) and export to / import from `HashTableProto` in
meta graphs. Eager tables free their resource when the last copy is garbage collected.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import threading
import weakref

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

from engines.config import parse_table_config
from engines.lr import warmup_learning_rate
from engines.protos import hash_table_ops_pb2
from engines.native.common import config_text
from engines.tfops.ops import lib

HASH_TABLE_GRAPH_KEY = "monolith_hash_tables"
_BOOL_MAP = {None: hash_table_ops_pb2.HashTableProto.kBoolNone,
             False: hash_table_ops_pb2.HashTableProto.kFalse,
             True: hash_table_ops_pb2.HashTableProto.kTrue}
_BOOL_REVERSE_MAP = {v: k for k, v in _BOOL_MAP.items()}

_names_lock = threading.Lock()
_eager_names: "weakref.WeakValueDictionary[str, _ResourceDeleter]" = weakref.WeakValueDictionary()
_graph_names: "weakref.WeakKeyDictionary[tf.Graph, set]" = weakref.WeakKeyDictionary()
_eager_counter = itertools.count()


# Cleanups that garbage collection asked for while this thread was building a graph, run at
# the next safe point (run_deferred). A finalizer may run inside any allocation, also while
# this thread traces a tf.function and holds the graph's lock: an op issued there deadlocks
# (seen in the test suite), so there finalizers only append here (list.append is atomic).
_deferred: list = []


def defer(cleanup) -> None:
    """cleanup() now when this thread executes eagerly, else queued for run_deferred; safe to
    call from __del__ / weakref finalizers. (Reading the eager flag takes no lock; inside a
    traced function or graph it is False.)"""
    if not tf.executing_eagerly():
        _deferred.append(cleanup)
        return
    try:
        cleanup()
    except Exception:  # noqa: BLE001 - the resource or its cluster may be gone already
        pass


def run_deferred() -> None:
    """Run the queued cleanups, eagerly (tf.init_scope: outside any function being traced).
    Called where new tables are made, so collected tables free their memory then."""
    while _deferred:
        cleanup = _deferred.pop()
        try:
            with tf.init_scope():
                cleanup()
        except Exception:  # noqa: BLE001 - the resource or its cluster may be gone already
            pass


def _destroy(handle) -> None:
    with tf.device(handle.device):
        tf.raw_ops.DestroyResourceOp(resource=handle, ignore_lookup_error=True)


class _ResourceDeleter:
    """Destroys eager resources when the last table copy holding this object goes away (or,
    if that happens while a graph is being built, at the next run_deferred)."""

    def __init__(self, *handles):
        self._handles = handles

    def own(self, *handles) -> None:
        self._handles += handles

    def __del__(self):
        for h in self._handles:
            defer(functools.partial(_destroy, h))


def _int64(x) -> int:
    """seed (any int, taken mod 2**64) as the signed int64 an `int` attr holds."""
    x = int(x) % (1 << 64)
    return x - (1 << 64) if x >= 1 << 63 else x


def _scalar_i64(x, name: str) -> tf.Tensor:
    if x is None:
        x = 0
    return tf.convert_to_tensor(x, tf.int64, name=name)


def _reserve_name(name: str | None, deleter) -> str:
    """Monolith's rule: a shared_name is used once per graph (here: once per live eager
    table); ValueError otherwise. No name: a fresh MonolithHashTable_<n>."""
    with _names_lock:
        if tf.executing_eagerly():
            if name is None:
                name = f"MonolithHashTable_{next(_eager_counter)}"
                while name in _eager_names:
                    name = f"MonolithHashTable_{next(_eager_counter)}"
            elif name in _eager_names:
                raise ValueError(f"shared_name {name} has already been used.")
            _eager_names[name] = deleter
            return name
        g = tf.compat.v1.get_default_graph()
        used = _graph_names.setdefault(g, set())
        if name is None:
            name = g.unique_name("MonolithHashTable", mark_as_used=False)
        if name in used:
            raise ValueError(f"shared_name {name} has already been used.")
        used.add(name)
        return name


def live_eager_tables() -> list[str]:
    """Names of the eager tables alive in this process."""
    with _names_lock:
        return list(_eager_names.keys())


def default_learning_rates(spec) -> tuple:
    """Monolith's per-segment default: the optimizer config's learning_rate, ramped up from 0
    over warmup_steps when those are set (engines.lr.warmup_learning_rate)."""
    return tuple(warmup_learning_rate(s.opt_params.get("learning_rate", 0.0),
                                      int(s.opt_params.get("warmup_steps", 0)))
                 for s in spec.segments)


def learning_rate_tensor(learning_rates, global_step) -> tf.Tensor:
    """float32 [segments]: each rate is a number, a tensor, or a callable of the global step
    (a Python int; engines.lr.PolynomialDecay is one) evaluated in f32 as Monolith does."""
    parts = []
    for lr in learning_rates:
        if isinstance(lr, (tf.Tensor, tf.Variable)):
            parts.append(tf.cast(tf.reshape(lr, []), tf.float32))
        elif callable(lr):
            parts.append(tf.reshape(tf.numpy_function(
                lambda step, fn=lr: np.float32(fn(int(step))), [global_step], tf.float32), []))
        else:
            parts.append(tf.constant(float(np.float32(lr)), tf.float32))
    return tf.stack(parts)


class HashTable:
    """An embedding hash table resource (`MonolithHashTable`) and Monolith's ops on it.

    config: an EmbeddingHashTableConfig (or its bytes), as for every engine.
    learning_rates: one per segment (numbers, tensors or callables of the global step);
        default: each segment's optimizer learning_rate (with its warmup).
    hash_filter: an engines.tfops.hash_filter.HashFilter (default: a dummy filter).
    threads: the table's worker threads (Monolith's use_multi_threads, fixed per table).
    device: where the resource lives, e.g. "/job:ps/task:0".
    """

    def __init__(self, config=None, learning_rates=None, *, name: str | None = None,
                 hash_filter=None, seed: int = 0, monolith_quirks: bool = False,
                 fid_version: int = 2, threads: int = 1, saver_parallel: int = -1,
                 extra_restore_names=(), device: str | None = None, table_proto=None,
                 import_scope: str | None = None):
        if table_proto is not None:
            self._init_from_proto(table_proto, import_scope)
            return
        if config is None:
            raise ValueError("config: an EmbeddingHashTableConfig is required")
        spec = parse_table_config(config, fid_version=fid_version)
        if learning_rates is None:
            learning_rates = default_learning_rates(spec)
        learning_rates = tuple(learning_rates) if isinstance(learning_rates, (list, tuple)) \
            else (learning_rates,)
        if len(learning_rates) != spec.num_segments:
            raise ValueError(f"learning_rates must have one value per segment "
                             f"({spec.num_segments}), got {len(learning_rates)}")
        self._spec = spec
        self._dim_size = spec.dim
        self._learning_rates = learning_rates
        self._slot_expire_time_config = spec.config.slot_expire_time_config.SerializeToString()
        self._saver_parallel = int(saver_parallel)
        self._extra_restore_names = list(extra_restore_names or [])
        self.export_share_embedding = None
        self._hash_filter = hash_filter
        run_deferred()
        eager = tf.executing_eagerly()
        self._deleter = _ResourceDeleter() if eager else None
        self._init_table_name = _reserve_name(name, self._deleter)
        L = lib()
        with tf.device(device) if device else contextlib.nullcontext():
            if hash_filter is None:
                filter_handle = L.monolith_dummy_hash_filter(
                    shared_name=self._init_table_name + "_dummy_filter")
            else:
                filter_handle = hash_filter.handle
            self._table = L.monolith_hash_table(
                filter_handle, config=config_text(spec, seed, bool(monolith_quirks)),
                threads=int(threads), shared_name=self._init_table_name,
                name=None if eager else self._init_table_name)
        if eager:
            self._deleter.own(self._table, *(() if hash_filter else (filter_handle,)))
            self._learning_rate_tensor = None
        else:   # what to_proto names (apply_gradients evaluates rates at its own step)
            step = tf.compat.v1.train.get_global_step()
            self._learning_rate_tensor = learning_rate_tensor(
                learning_rates, tf.constant(0, tf.int64) if step is None else
                tf.cast(step, tf.int64))
            tf_ops.get_collection_ref(HASH_TABLE_GRAPH_KEY).append(self)

    def _init_from_proto(self, proto, import_scope):
        g = tf.compat.v1.get_default_graph()
        self._table = g.as_graph_element(tf_ops.prepend_name_scope(proto.table_tensor,
                                                                   import_scope))
        self._spec = None
        self._dim_size = proto.dim_size
        self._init_table_name = proto.shared_name
        self._slot_expire_time_config = proto.slot_expire_time_config
        self._learning_rate_tensor = g.as_graph_element(
            tf_ops.prepend_name_scope(proto.learning_rate_tensor, import_scope))
        self._learning_rates = None
        self._saver_parallel = proto.saver_parallel
        self._extra_restore_names = list(proto.extra_restore_names)
        self.export_share_embedding = _BOOL_REVERSE_MAP[proto.export_share_embedding]
        self._hash_filter = None
        self._deleter = None

    # ---- meta graphs ---------------------------------------------------------------------
    def to_proto(self, export_scope=None):
        if export_scope is not None and not self._table.name.startswith(export_scope):
            return None
        proto = hash_table_ops_pb2.HashTableProto()
        proto.table_tensor = tf_ops.strip_name_scope(self._table.name, export_scope)
        proto.dim_size = self._dim_size
        proto.shared_name = self._init_table_name
        proto.slot_expire_time_config = self._slot_expire_time_config
        proto.learning_rate_tensor = tf_ops.strip_name_scope(self._learning_rate_tensor.name,
                                                             export_scope)
        proto.saver_parallel = self._saver_parallel
        proto.extra_restore_names.extend(self._extra_restore_names)
        proto.export_share_embedding = _BOOL_MAP[self.export_share_embedding]
        return proto

    @staticmethod
    def from_proto(table_proto, import_scope=None):
        return HashTable(table_proto=table_proto, import_scope=import_scope)

    # ---- properties ----------------------------------------------------------------------
    @property
    def table(self):
        """The table's resource handle tensor."""
        return self._table

    handle = table

    @property
    def name(self) -> str:
        return self._init_table_name

    @property
    def dim_size(self) -> int:
        return self._dim_size

    @property
    def spec(self):
        """The parsed config (engines.config.TableSpec); None for a table from a proto."""
        return self._spec

    @property
    def extra_restore_names(self) -> list:
        return self._extra_restore_names

    @property
    def saver_parallel(self) -> int:
        return self._saver_parallel

    @property
    def num_segments(self) -> int:
        return self._spec.num_segments if self._spec is not None else \
            int(self._learning_rate_tensor.shape[0])

    def as_op(self):
        return self._table

    def _copy_with_new_table(self, new_table) -> "HashTable":
        copied = copy.copy(self)
        copied._table = new_table
        return copied

    def table_update(self, update_op) -> "HashTable":
        with tf.control_dependencies([update_op]):
            return self._copy_with_new_table(tf.identity(self._table))

    def _learning_rates_for(self, learning_rates, global_step) -> tf.Tensor:
        if learning_rates is None:
            if self._learning_rates is None:          # a table imported from a proto
                return self._learning_rate_tensor
            learning_rates = self._learning_rates
        if isinstance(learning_rates, (tf.Tensor, tf.Variable)):
            return tf.cast(tf.reshape(learning_rates, [-1]), tf.float32)
        rates = learning_rates if isinstance(learning_rates, (list, tuple)) else \
            list(np.reshape(learning_rates, -1))
        if all(isinstance(r, (int, float, np.number)) for r in rates):
            return tf.constant(np.asarray(rates, np.float32))
        return learning_rate_tensor(rates, global_step)

    # ---- ops -----------------------------------------------------------------------------
    def assign(self, ids, values, req_time=None) -> "HashTable":
        return self._copy_with_new_table(lib().monolith_hash_table_assign(
            self._table, tf.convert_to_tensor(ids, tf.int64),
            tf.convert_to_tensor(values, tf.float32), _scalar_i64(req_time, "req_time")))

    def assign_add(self, ids, values, req_time=None) -> "HashTable":
        return self._copy_with_new_table(lib().monolith_hash_table_assign_add(
            self._table, tf.convert_to_tensor(ids, tf.int64),
            tf.convert_to_tensor(values, tf.float32), _scalar_i64(req_time, "req_time")))

    def lookup(self, ids) -> tf.Tensor:
        """float32 [len(ids), dim]; absent ids give zero rows (nothing is inserted)."""
        return lib().monolith_hash_table_lookup(self._table, tf.convert_to_tensor(ids, tf.int64),
                                                dim_size=self._dim_size)

    def lookup_entry(self, ids) -> tf.Tensor:
        """Serialized EntryDump per id ("" for absent ids)."""
        return lib().monolith_hash_table_lookup_entry(self._table,
                                                      tf.convert_to_tensor(ids, tf.int64))

    def apply_gradients(self, ids, grads, global_step=None, enable_dedup: bool = False,
                        req_time=None, learning_rates=None) -> "HashTable":
        """One optimizer step per id occurrence (or per distinct id with enable_dedup, in
        first-occurrence order). global_step: default the graph's global step, else 0."""
        if global_step is None and not tf.executing_eagerly():
            global_step = tf.compat.v1.train.get_global_step()
        step = (tf.cast(global_step, tf.int64) if isinstance(global_step, (tf.Tensor, tf.Variable))
                else _scalar_i64(global_step, "global_step"))
        updated = lib().monolith_hash_table_optimize(
            self._table, tf.convert_to_tensor(ids, tf.int64),
            tf.convert_to_tensor(grads, tf.float32),
            self._learning_rates_for(learning_rates, step), _scalar_i64(req_time, "req_time"),
            step, enable_dedup=bool(enable_dedup))
        return self.table_update(updated)

    def size(self) -> tf.Tensor:
        return lib().monolith_hash_table_size(self._table)

    def max_update_ts(self) -> tf.Tensor:
        """The largest req_time the table has seen (its TTL reference time)."""
        return lib().hashlab_hash_table_max_update_ts(self._table)

    def memory_bytes(self) -> tf.Tensor:
        return lib().hashlab_hash_table_memory_bytes(self._table)

    def save(self, basename, random_sleep_ms: int = 0) -> "HashTable":
        """Monolith's save: `basename-NNNNN-of-MMMMM` files, MMMMM = saver_parallel (-1: auto)."""
        return self._copy_with_new_table(lib().monolith_hash_table_save(
            self._table, tf.convert_to_tensor(basename, tf.string),
            nshards=self._saver_parallel, random_sleep_ms=int(random_sleep_ms)))

    def save_shards(self, basename, nshards=-1) -> tuple[tf.Tensor, tf.Tensor]:
        """Save with the shard count as a tensor (-1: automatic); returns the paths and what
        failed after the commit point ("" when nothing did; the save succeeded either way,
        docs/checkpoints.md)."""
        return lib().hashlab_hash_table_save(
            self._table, tf.convert_to_tensor(basename, tf.string),
            _scalar_i64(nshards, "nshards"))

    def write_part_shards(self, basename, nshards, first_shard, shard_stride) -> tf.Tensor:
        """Step 1 of a sharded table's save (see sharded.py): write shards {s : s %
        shard_stride == first_shard} under temporary names; returns their manifest lines."""
        return lib().hashlab_hash_table_write_part_shards(
            self._table, tf.convert_to_tensor(basename, tf.string),
            _scalar_i64(nshards, "nshards"), _scalar_i64(first_shard, "first_shard"),
            _scalar_i64(shard_stride, "shard_stride"))

    def restore(self, basename) -> "HashTable":
        """Replace the content with the checkpoint at basename (any shard count)."""
        return self._copy_with_new_table(lib().monolith_hash_table_restore(
            self._table, tf.convert_to_tensor(basename, tf.string)))

    def restore_part(self, basename, part, num_parts) -> "HashTable":
        """Restore only the entries with shard_of(id, num_parts) == part."""
        return self._copy_with_new_table(lib().hashlab_hash_table_restore_part(
            self._table, tf.convert_to_tensor(basename, tf.string),
            _scalar_i64(part, "part"), _scalar_i64(num_parts, "num_parts")))

    def stage_restore(self, basename, part=0, num_parts=1) -> tf.Tensor:
        """Step 1 of a two-step restore: read and check (the part of) a checkpoint without
        changing the table; returns a token for commit_restore / discard_restore."""
        return lib().hashlab_hash_table_stage_restore(
            self._table, tf.convert_to_tensor(basename, tf.string), _scalar_i64(part, "part"),
            _scalar_i64(num_parts, "num_parts"))

    def commit_restore(self, token) -> "HashTable":
        return self._copy_with_new_table(lib().hashlab_hash_table_commit_restore(
            self._table, _scalar_i64(token, "token")))

    def discard_restore(self, token) -> "HashTable":
        return self._copy_with_new_table(lib().hashlab_hash_table_discard_restore(
            self._table, _scalar_i64(token, "token")))

    def save_as_tensor(self, shard_idx, num_shards, limit, offset):
        """(new_offset, serialized EntryDumps) of up to `limit` entries of checkpoint shard
        shard_idx of num_shards, from `offset` on (ids in ascending order)."""
        return lib().monolith_hash_table_save_as_tensor(
            self._table, tf.convert_to_tensor(shard_idx, tf.int32),
            tf.convert_to_tensor(num_shards, tf.int32), tf.convert_to_tensor(limit, tf.int64),
            tf.convert_to_tensor(offset, tf.int64), name="monolith_hash_table_save_as_tensor")


def commit_part_shards(basename, nshards, lines) -> tf.Tensor:
    """Step 2 of a sharded table's save: commit every task's shards as one crash-safe set
    (docs/checkpoints.md); returns the paths in shard order."""
    return lib().hashlab_commit_shard_set(tf.convert_to_tensor(basename, tf.string),
                                          _scalar_i64(nshards, "nshards"),
                                          tf.convert_to_tensor(lines, tf.string))


def fused_lookup(tables, ids, fused_slot_size, num_of_shards: int, req_time=None):
    """(embeddings, recv_splits, id_offsets, emb_offsets, indices) of K tables over N shards;
    `fused_slot_size[s*K + t]` ids of table t in shard s (Monolith's fused_lookup)."""
    return lib().monolith_hash_table_fused_lookup(
        [t.as_op() for t in tables], tf.convert_to_tensor(ids, tf.int64),
        tf.convert_to_tensor(fused_slot_size, tf.int32), _scalar_i64(req_time, "req_time"),
        num_of_shards=int(num_of_shards))


def fused_apply_gradient(tables, ids, indices, fused_slot_size, id_grads, id_offsets,
                         grad_offsets, learning_rate_tensors, req_time, global_step,
                         num_of_shards: int, enable_grad_accumulation: bool = False) -> list:
    """Apply flat gradients laid out as fused_lookup's embeddings; returns the updated tables.
    learning_rate_tensors: every table's per-segment rates, in table order (reused for every
    shard)."""
    handles = lib().monolith_hash_table_fused_optimize(
        [t.as_op() for t in tables], tf.convert_to_tensor(ids, tf.int64),
        tf.convert_to_tensor(ids if indices is None else indices, tf.int64),
        tf.convert_to_tensor(fused_slot_size, tf.int32),
        tf.convert_to_tensor(id_grads, tf.float32), tf.convert_to_tensor(id_offsets, tf.int32),
        tf.convert_to_tensor(grad_offsets, tf.int32),
        tf.convert_to_tensor(learning_rate_tensors, tf.float32),
        _scalar_i64(req_time, "req_time"), _scalar_i64(global_step, "global_step"),
        num_of_shards=int(num_of_shards),
        enable_grad_accumulation=bool(enable_grad_accumulation))
    return [t._copy_with_new_table(h) for t, h in zip(tables, handles)]


def _register_proto_functions() -> None:
    try:
        tf_ops.register_proto_function(HASH_TABLE_GRAPH_KEY,
                                       proto_type=hash_table_ops_pb2.HashTableProto,
                                       to_proto=HashTable.to_proto,
                                       from_proto=HashTable.from_proto)
    except KeyError:          # already registered in this process
        pass


_register_proto_functions()
