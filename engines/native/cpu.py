"""`native-cpu`: the C++ engine. Python only validates (engines/api.py) and passes arrays.

Every table op releases the GIL inside C++; see engines/native/README.md for the threading and
concurrency contract.
"""
from __future__ import annotations

import glob
import os
import re

import numpy as np

from engines import api
from engines import validation as _v
from engines.formats import shards as shard_files

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

OPT_KINDS = {"sgd": 0, "adagrad": 1, "ftrl": 2, "adadelta": 3, "adam": 4, "amsgrad": 5,
             "momentum": 6, "rmsprop": 7, "rmspropv2": 8, "batch_softmax": 9,
             "moving_average": 10, "group_adagrad": 11}
INIT_KINDS = {"zeros": 0, "ones": 1, "constants": 2, "random_uniform": 3}
COMP_KINDS = {None: 0, "fp32": 1, "fp16": 2, "fixed_r8": 3, "one_bit": 4}
_SHARD_SUFFIX = re.compile(r"-[0-9]{5}-of-([0-9]{5})")


def native_module():
    """The compiled extension; EngineUnavailable when it was not built."""
    try:
        from engines.native import _native_cpu
    except ImportError as exc:
        raise api.EngineUnavailable(f"not built: {exc} (pip install -e . builds it)") from exc
    return _native_cpu


def _int64(value: int, name: str) -> int:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{name} must fit in int64, got {value}")
    return value


def _checkpoint_errors(fn, *args):
    """Run a native checkpoint call; its CheckpointFailure becomes engines.api.CheckpointError."""
    try:
        return fn(*args)
    except ValueError as exc:
        # Matched by name as well as class: any native module's CheckpointFailure qualifies.
        if type(exc).__name__ != "CheckpointFailure":
            raise
        raise api.CheckpointError(str(exc)) from None


def _segment_dict(seg) -> dict:
    d = {"dim": seg.dim, "offset": seg.offset, "state_offset": seg.state_offset,
         "state_words": seg.state_words, "opt": OPT_KINDS[seg.optimizer],
         "init": INIT_KINDS[seg.initializer], "comp": COMP_KINDS[seg.compressor]}
    for params in (seg.init_params, seg.opt_params, seg.comp_params):
        for key, value in params.items():
            if isinstance(value, (bool, np.bool_)):
                d[key] = bool(value)
            elif isinstance(value, (int, np.integer)):
                d[key] = int(value)
            elif isinstance(value, (float, np.floating)):
                d[key] = float(value)
    return d


def remove_stale_shards(basename: str, nshards: int) -> None:
    """Delete `basename-NNNNN-of-MMMMM` files with MMMMM != nshards (an older save's set)."""
    prefix = os.path.basename(basename)
    stale = []
    for path in glob.glob(glob.escape(basename) + "-*"):
        m = _SHARD_SUFFIX.fullmatch(os.path.basename(path)[len(prefix):])
        if m is not None and int(m.group(1)) != nshards:
            stale.append(path)
    for path in stale:
        try:
            os.remove(path)
        except FileNotFoundError:  # a concurrent cleaner got there first
            pass
    if stale:
        from engines.formats.atomic import fsync_dir
        fsync_dir(os.path.dirname(os.path.abspath(basename)))


class NativeTable(api.Table):
    def __init__(self, engine, spec, learning_rates, hash_filter, seed, quirks):
        super().__init__(spec, learning_rates)
        self.engine_name = engine.name
        self._filter = hash_filter
        self._lrs = np.asarray(self.learning_rates, np.float32)
        mod = native_module()
        self._t = mod.Table(engine._pool, None if hash_filter is None else hash_filter._f,
                            [_segment_dict(s) for s in spec.segments], spec.dim,
                            spec.state_words, seed % (1 << 64), quirks, spec.fid_version,
                            np.ascontiguousarray(spec.expire_days_array(), np.int64))

    def _assign(self, ids, values, req_time):
        self._t.assign(ids, values, _int64(req_time, "req_time"), False)

    def _assign_add(self, ids, values, req_time):
        self._t.assign(ids, values, _int64(req_time, "req_time"), True)

    def _lookup(self, ids):
        return self._t.lookup(ids)

    def _lookup_entry(self, ids):
        return self._t.lookup_entry(ids)

    def _apply_gradients(self, ids, grads, global_step, enable_dedup, req_time, lrs):
        lr_arr = self._lrs if lrs is self.learning_rates else np.asarray(lrs, np.float32)
        self._t.apply_gradients(ids, grads, _int64(global_step, "global_step"), enable_dedup,
                                _int64(req_time, "req_time"), lr_arr)

    def _size(self):
        return self._t.size()

    def _max_update_ts(self):
        return self._t.max_update_ts()

    def _save(self, basename, nshards):
        paths = self._t.save(basename, nshards)
        remove_stale_shards(basename, len(paths))
        return paths

    def _restore(self, basename):
        paths = shard_files.find_shards(basename)
        _checkpoint_errors(self._t.restore, paths)

    def _save_as_tensor(self, shard_idx, num_shards, limit, offset):
        _int64(offset, "offset")
        _int64(limit, "limit")
        if num_shards >= 1 << 32:
            raise ValueError(f"num_shards must be < 2**32, got {num_shards}")
        new_offset, dumps = self._t.save_as_tensor(shard_idx, num_shards, limit, offset)
        return new_offset, dumps

    def memory_bytes(self) -> int:
        """Bytes held by the slot arrays and row chunks (not counting Python objects)."""
        return self._t.memory_bytes()


class NativeCpuEngine(api.Engine):
    name = "native-cpu"
    capabilities = api.Capabilities(threads=True)

    def __init__(self, threads: int | None = None):
        if threads is None:
            threads = os.cpu_count() or 1
        threads = _v.check_int(threads, "threads")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if threads > 1024:
            raise ValueError(f"threads must be <= 1024, got {threads}")
        self.threads = threads
        self._pool = native_module().Pool(threads)

    @classmethod
    def probe(cls) -> None:
        native_module()

    def _create_table(self, spec, learning_rates, hash_filter, seed, monolith_quirks):
        from engines.native.filters import NativeHashFilter
        if hash_filter is not None and not isinstance(hash_filter, NativeHashFilter):
            raise TypeError("hash_filter: the filter was created by another engine "
                            f"({type(hash_filter).__name__}); create it with this engine's "
                            "create_hash_filter")
        return NativeTable(self, spec, learning_rates, hash_filter, seed, monolith_quirks)

    def _create_hash_filter(self, spec):
        from engines.native.filters import NativeHashFilter
        return NativeHashFilter(spec, self.name)
