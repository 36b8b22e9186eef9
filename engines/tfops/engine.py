"""`tf-native`: the engine interface over the TensorFlow op library, op by op, eagerly.

Every table op runs a `monolith_hash_table_*` kernel (engines/tfops/src), which calls the same
C++ table the native-cpu engine binds, so results and checkpoint bytes are the native engine's.
The conformance suite and the lab run through the ops this way; graphs and tf.function use
engines.tfops.HashTable directly.

`engines.get("tf-native", ps=N)` (N >= 1) makes every table a ShardedHashTable over N
parameter-server tasks of this process's in-process cluster (engines/tfops/cluster.py), driven
by a TF1 session per table: the lab's `sharded_*` scenarios measure TF's runtime that way.
"""
from __future__ import annotations

import dataclasses
import errno
import functools
import os
import re
import warnings

from engines import api
from engines.errors import CheckpointWarning
from engines import validation as _v
from engines.native.common import NativeTable, int64_arg


# What TensorFlow wraps around a kernel's message: the function node and op (eager); the
# definition trace, the node and the task it ran on (sessions).
_TF_DECORATION = re.compile(r"^\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\].*$|"
                            r"\s*\[\[\{\{node .*$", re.DOTALL)
_TF_PREAMBLE = re.compile(r"^Graph execution error:.*(?:From /job:[^\n]*:|Node: '[^']*')\n",
                          re.DOTALL)


def kernel_message(exc) -> str:
    """A kernel's own error message, without TensorFlow's decorations."""
    return _TF_DECORATION.sub("", _TF_PREAMBLE.sub("", exc.message)).strip()


def _errors_as_engine_errors(fn):
    """Kernel errors -> the engine interface's: InvalidArgument -> ValueError, DataLoss ->
    CheckpointError, "out of memory" -> MemoryError, file-system codes -> OSError."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        import tensorflow as tf
        try:
            return fn(*args, **kwargs)
        except tf.errors.InvalidArgumentError as exc:
            raise ValueError(kernel_message(exc)) from None
        except tf.errors.DataLossError as exc:
            raise api.CheckpointError(kernel_message(exc)) from None
        except tf.errors.ResourceExhaustedError as exc:
            if kernel_message(exc).startswith("out of memory"):
                raise MemoryError(kernel_message(exc)) from None
            raise _os_error(kernel_message(exc)) from None
        except (tf.errors.NotFoundError, tf.errors.PermissionDeniedError,
                tf.errors.AlreadyExistsError, tf.errors.FailedPreconditionError,
                tf.errors.OutOfRangeError, tf.errors.UnknownError) as exc:
            raise _os_error(kernel_message(exc)) from None
    return wrapped


def _os_error(message: str) -> OSError:
    """The OSError of a file-system failure in the op library, with the errno whose text
    (strerror) the kernel's message carries, as the other engines raise it: a TensorFlow
    status has a code and a message, not the errno. The longest matching text wins."""
    texts = [(os.strerror(code), code) for code in errno.errorcode]
    found = [(len(text), code) for text, code in texts if text and text in message]
    return OSError(max(found)[1], message) if found else OSError(message)


class TfNativeHashFilter(api.HashFilter):
    def __init__(self, spec):
        from engines.tfops.hash_filter import HashFilter
        self.spec = spec
        self.kind = spec.kind
        self.tf_filter = HashFilter(spec)

    @_errors_as_engine_errors
    def _intercept_gradient(self, ids, grads):
        return self.tf_filter.filter_gradient(ids, grads).numpy()

    @_errors_as_engine_errors
    def _save(self, basename):
        return self.tf_filter.save(basename)

    @_errors_as_engine_errors
    def _stage_restore(self, basename):
        return self.tf_filter.stage_restore(basename)

    @_errors_as_engine_errors
    def _commit_restore(self, staged):
        self.tf_filter.commit_restore(staged)


def _engine_errors(cls):
    """Wrap every public method of cls with _errors_as_engine_errors."""
    for name, fn in list(vars(cls).items()):
        if callable(fn) and not name.startswith("_"):
            setattr(cls, name, _errors_as_engine_errors(fn))
    return cls


class _StagedRestore:
    """A restore staged inside the table resource; dropped there unless committed."""

    def __init__(self, tf_table, token: int):
        self._tf_table, self._token = tf_table, token

    def commit(self):
        token, self._token = self._token, None
        self._tf_table.commit_restore(token)

    def __del__(self):
        if self._token is not None:     # not inside graph building: see hash_table.defer
            from engines.tfops.hash_table import defer   # loaded: it made the table
            defer(functools.partial(self._tf_table.discard_restore, self._token))


@_engine_errors
class _OpTable:
    """The verbs engines.native.common.NativeTable calls on a compiled table, as op calls on
    an eager HashTable (so tf-native shares the native engines' argument handling)."""

    def __init__(self, tf_table):
        self.tf_table = tf_table

    def assign(self, ids, values, req_time, add):
        (self.tf_table.assign_add if add else self.tf_table.assign)(ids, values, req_time)

    def lookup(self, ids):
        return self.tf_table.lookup(ids).numpy()

    def lookup_entry(self, ids):
        return [bytes(e) for e in self.tf_table.lookup_entry(ids).numpy()]

    def apply_gradients(self, ids, grads, global_step, dedup, req_time, lrs):
        self.tf_table.apply_gradients(ids, grads, global_step=global_step, enable_dedup=dedup,
                                      req_time=req_time, learning_rates=lrs)

    def size(self):
        return int(self.tf_table.size())

    def max_update_ts(self):
        return int(self.tf_table.max_update_ts())

    def memory_bytes(self):
        return int(self.tf_table.memory_bytes())

    def save(self, basename, nshards):
        paths, warning = self.tf_table.save_shards(basename, nshards)
        if warning.numpy():            # a step after the commit point failed; the save holds
            warnings.warn(CheckpointWarning(warning.numpy().decode()), stacklevel=3)
        return [p.decode() for p in paths.numpy()]

    def stage_restore(self, basename):
        return _StagedRestore(self.tf_table, int(self.tf_table.stage_restore(basename)))

    def commit_restore(self, staged):
        staged.commit()

    def save_as_tensor(self, shard_idx, num_shards, limit, offset):
        new_offset, dumps = self.tf_table.save_as_tensor(shard_idx, num_shards, limit, offset)
        return int(new_offset), [bytes(d) for d in dumps.numpy()]


class TfNativeTable(NativeTable):
    """An engine table over one eager HashTable."""

    def __init__(self, engine, spec, learning_rates, hash_filter, seed, quirks):
        super().__init__(spec, learning_rates)
        from engines.tfops.hash_table import HashTable
        self._init_lrs()
        self._t = _OpTable(HashTable(
            spec.config, self.learning_rates,
            hash_filter=None if hash_filter is None else hash_filter.tf_filter, seed=seed,
            monolith_quirks=quirks, fid_version=spec.fid_version, threads=engine.threads))

    @property
    def tf_table(self):
        return self._t.tf_table

    def _lookup(self, ids):
        return self._t.lookup(ids)


class TfNativeEngine(api.Engine):
    name = "tf-native"
    capabilities = api.Capabilities(threads=True)

    @classmethod
    def probe(cls) -> None:
        from engines.reference.tf_engine import TensorFlowEngine
        TensorFlowEngine.probe()            # TensorFlow is importable
        from engines.tfops import build
        # Without importing TensorFlow (listing engines must stay fast): a compiler, or a
        # library built earlier for the installed TensorFlow.
        try:
            build.compiler()
        except build.BuildError as exc:
            if not build.has_cached_library():
                raise api.EngineUnavailable(f"cannot build the op library: {exc}") from exc

    def __init__(self, threads: int | None = None, ps: int = 0):
        self.probe()
        if threads is None:
            threads = os.cpu_count() or 1
        threads = _v.check_int(threads, "threads")
        if not 1 <= threads <= 1024:
            raise ValueError(f"threads must be in [1, 1024], got {threads}")
        ps = _v.check_int(ps, "ps")
        if ps < 0:
            raise ValueError(f"ps must be >= 0 (0: a local table, N: N parameter-server "
                             f"tasks), got {ps}")
        self.threads = threads
        self.ps = ps
        from engines.tfops import build
        try:
            from engines.tfops.ops import lib
            lib()
        except build.BuildError as exc:
            raise api.EngineUnavailable(f"cannot build the op library: {exc}") from exc
        if ps:
            from engines.tfops import cluster
            self.cluster = cluster.local_cluster(ps)
            # Per-task filters and cross-task save_as_tensor are not implemented.
            self.capabilities = dataclasses.replace(
                self.capabilities, ops=api.TABLE_OPS - {"save_as_tensor"}, filters=frozenset())

    def create_sharded_table(self, config, ps: int, **kwargs) -> api.Table:
        """A table sharded over `ps` tasks of the in-process cluster (create_table's other
        arguments); ps=0 gives a local table. The lab's `ps` scenario field calls this."""
        return TfNativeEngine(threads=self.threads, ps=ps).create_table(config, **kwargs)

    def _create_table(self, spec, learning_rates, hash_filter, seed, monolith_quirks):
        if self.ps:
            if hash_filter is not None:
                raise ValueError("hash_filter: sharded tables (ps >= 1) take no hash filter "
                                 "(each parameter-server task would need its own)")
            from engines.tfops.sharded_engine import ShardedEngineTable
            return ShardedEngineTable(self, spec, learning_rates, seed, monolith_quirks)
        return TfNativeTable(self, spec, learning_rates, hash_filter, seed, monolith_quirks)

    def _create_hash_filter(self, spec):
        return TfNativeHashFilter(spec)

    def _fused_lookup(self, plan):
        if self.ps:
            return super()._fused_lookup(plan)
        from engines.tfops.hash_table import fused_lookup
        emb = _errors_as_engine_errors(fused_lookup)(
            [t.tf_table for t in plan.tables], plan.ids, plan.slot_sizes, plan.num_shards)[0]
        return emb.numpy()

    def _fused_apply_gradients(self, plan, grads, lrs, req_time, global_step, dedup):
        if self.ps:
            return super()._fused_apply_gradients(plan, grads, lrs, req_time, global_step, dedup)
        from engines.tfops.hash_table import fused_apply_gradient
        _errors_as_engine_errors(fused_apply_gradient)(
            [t.tf_table for t in plan.tables], plan.ids, None, plan.slot_sizes, grads,
            plan.id_offsets, plan.emb_offsets, lrs, int64_arg(req_time, "req_time"),
            int64_arg(global_step, "global_step"), plan.num_shards,
            enable_grad_accumulation=dedup)
