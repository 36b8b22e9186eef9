"""`native-gpu`: the native engine's tables in CUDA device memory (engines/native/cuda/).

Arrays: every op takes numpy arrays (copied to the device and back) or CUDA device arrays that
speak DLPack (CuPy, PyTorch, ...), used in place without a copy. `lookup` returns numpy for numpy
ids and a device array for device ids: a CuPy array for CuPy ids, a torch tensor for torch ids,
otherwise nanobind's DLPack-capable `nb_ndarray`; `lookup(ids, out=device_array)` writes into a
caller's float32 [n, dim] device array instead (no allocation). Ops run on the legacy default
stream and synchronize before returning, so inputs made on CuPy's/PyTorch's default stream are
ready and results are complete; work on other streams must be synchronized by the caller.

Nothing here touches CUDA at import: the extension is imported, and the device probed, only by
`probe()` / engine creation (engines.available() and engines.get()).

Hash filters are the native CPU filters (engines/native/filters.py). Admission is sequential in
batch order (the sliding filter's state depends on it), so the table sends the ids it lacks to
the host, in batch order (no dedup) or first-occurrence order (dedup), and the filter decides
there; the device then updates only the admitted ids. This costs one Python call per absent id
and needs the _native_cpu module.
"""
from __future__ import annotations

import numpy as np

from engines import api
from engines import validation as _v
from engines.formats import shards as shard_files
from engines.formats.atomic import write_file_atomic
from engines.native.cpu import _int64, _segment_dict, remove_stale_shards

_DLPACK_CUDA = (2, 13)  # kDLCUDA, kDLCUDAManaged


def native_module():
    """The compiled CUDA extension; EngineUnavailable when it was not built."""
    try:
        from engines.native import _native_cuda
    except ImportError as exc:
        raise api.EngineUnavailable(f"not built: {exc}") from exc
    return _native_cuda


def is_device_array(x) -> bool:
    """True for a CUDA array exposed through DLPack (CuPy, torch.cuda, nb_ndarray, ...)."""
    if isinstance(x, np.ndarray):
        return False
    dev = getattr(x, "__dlpack_device__", None)
    if dev is None:
        return False
    try:
        return int(dev()[0]) in _DLPACK_CUDA
    except Exception:  # pragma: no cover - a foreign object with a broken protocol
        return False


def _like(template, result):
    """Return a device result in the framework of the caller's input (zero-copy DLPack)."""
    root = type(template).__module__.split(".")[0]
    if root == "cupy":
        import cupy
        return cupy.from_dlpack(result)
    if root == "torch":
        import torch
        return torch.from_dlpack(result)
    return result


def _check_device_ids(mod, ids, name: str = "ids") -> int:
    _dev_type, _dev_id, dtype, shape, contiguous = mod.array_info(ids)
    if dtype != "int64":
        raise TypeError(f"{name} must have dtype int64, got {dtype}")
    if len(shape) != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(shape)}")
    if not contiguous:
        raise ValueError(f"{name} must be C-contiguous (device arrays are used in place)")
    return int(shape[0])


def _check_device_rows(mod, rows, n: int, dim: int, name: str) -> None:
    _dev_type, _dev_id, dtype, shape, contiguous = mod.array_info(rows)
    shape = tuple(shape)
    if dtype != "float32":
        raise TypeError(f"{name} must have dtype float32, got {dtype}")
    if not (shape == (n, dim) or shape == (n * dim,)):
        if len(shape) == 2 and shape[0] != n:
            raise ValueError(f"{name} has {shape[0]} rows but ids has {n} elements")
        raise ValueError(f"{name} must have shape [{n}, {dim}], got {shape}")
    if not contiguous:
        raise ValueError(f"{name} must be C-contiguous (device arrays are used in place)")
    bad = mod.first_nonfinite(rows, dim) if n and dim else -1
    if bad >= 0:
        raise ValueError(f"{name} contains a non-finite value (NaN or Inf) at row {bad}; "
                         f"values and gradients must be finite")


def _admission(native_filter):
    """The table's admission callback. Closes over the filter only (not the table), so the
    C++ table holding it forms no reference cycle."""
    def admit(ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
        out = np.empty(len(ids), dtype=np.uint8)
        for i, (fid, count) in enumerate(zip(ids.tolist(), counts.tolist())):
            out[i] = not native_filter.should_be_filtered(fid, count, 0)
        return out
    return admit


class NativeGpuTable(api.Table):
    def __init__(self, engine, spec, learning_rates, hash_filter, seed, quirks):
        super().__init__(spec, learning_rates)
        self.engine_name = engine.name
        self.device = engine.device
        self._filter = hash_filter
        self._lrs = np.asarray(self.learning_rates, np.float32)
        self._mod = mod = native_module()
        capacity = int(spec.config.initial_capacity) if spec.config.initial_capacity > 1 else 0
        self._t = mod.Table(engine.device, [_segment_dict(s) for s in spec.segments], spec.dim,
                            spec.state_words, seed % (1 << 64), quirks, spec.fid_version,
                            np.ascontiguousarray(spec.expire_days_array(), np.int64), capacity)
        if hash_filter is not None:
            self._t.set_filter(_admission(hash_filter._f))

    # ---- public ops: device arrays bypass the numpy checks of engines.api ------------------
    def lookup(self, ids, out=None):
        if not is_device_array(ids) and out is None:
            return super().lookup(ids)
        if is_device_array(ids):
            _check_device_ids(self._mod, ids)
        else:
            ids = _v.check_ids(ids)
        if out is not None and not is_device_array(out):
            raise TypeError(f"out must be a CUDA device array, got {type(out).__name__}")
        res = self._t.lookup(ids, out)
        return res if out is not None else _like(ids, res)

    def assign(self, ids, values, req_time: int = 0) -> None:
        ids, values = self._rows_args(ids, values, "values")
        self._assign(ids, values, _v.check_int(req_time, "req_time"))

    def assign_add(self, ids, values, req_time: int = 0) -> None:
        ids, values = self._rows_args(ids, values, "values")
        self._assign_add(ids, values, _v.check_int(req_time, "req_time"))

    def apply_gradients(self, ids, grads, global_step: int = 0, enable_dedup: bool = False,
                        req_time: int = 0, learning_rates=None) -> None:
        ids, grads = self._rows_args(ids, grads, "grads")
        lrs = (self.learning_rates if learning_rates is None else
               _v.check_learning_rates(learning_rates, self.num_segments, "learning_rates"))
        self._apply_gradients(ids, grads, _v.check_int(global_step, "global_step"),
                              _v.check_bool(enable_dedup, "enable_dedup"),
                              _v.check_int(req_time, "req_time"), lrs)

    def _rows_args(self, ids, rows, name):
        if is_device_array(ids):
            n = _check_device_ids(self._mod, ids)
        else:
            ids = _v.check_ids(ids)
            n = len(ids)
        if is_device_array(rows):
            _check_device_rows(self._mod, rows, n, self.dim, name)
        else:
            rows = _v.check_rows(rows, n, self.dim, name)
        return ids, rows

    # ---- engine hooks ----------------------------------------------------------------------
    def _assign(self, ids, values, req_time):
        self._t.assign(ids, values, _int64(req_time, "req_time"), False)

    def _assign_add(self, ids, values, req_time):
        self._t.assign(ids, values, _int64(req_time, "req_time"), True)

    def _lookup(self, ids):
        return self._t.lookup(ids, None)

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
        files = self._t.encode_shards(nshards)
        paths = []
        for i, data in enumerate(files):
            path = shard_files.shard_name(basename, i, len(files))
            write_file_atomic(path, data)
            paths.append(path)
        remove_stale_shards(basename, len(files))
        return paths

    def _restore(self, basename):
        paths = shard_files.find_shards(basename)
        try:
            self._t.restore(paths)
        except self._mod.CheckpointFailure as exc:
            raise api.CheckpointError(str(exc)) from None

    def _save_as_tensor(self, shard_idx, num_shards, limit, offset):
        _int64(offset, "offset")
        _int64(limit, "limit")
        if num_shards >= 1 << 32:
            raise ValueError(f"num_shards must be < 2**32, got {num_shards}")
        return self._t.save_as_tensor(shard_idx, num_shards, limit, offset)

    def memory_bytes(self) -> int:
        """Device bytes held by the slot array, page table and row pages."""
        return self._t.memory_bytes()


class NativeGpuEngine(api.Engine):
    name = "native-gpu"
    capabilities = api.Capabilities(gpu=True, device_arrays=True, threads=False)

    def __init__(self, device: int = 0):
        device = _v.check_int(device, "device")
        mod = native_module()
        count = mod.device_count()
        if not 0 <= device < max(count, 1) or count == 0:
            reason = mod.probe()
            if reason:
                raise api.EngineUnavailable(reason)
            raise ValueError(f"device must be in [0, {count}), got {device}")
        self.device = device

    @classmethod
    def probe(cls) -> None:
        reason = native_module().probe()
        if reason:
            raise api.EngineUnavailable(reason)

    def _create_table(self, spec, learning_rates, hash_filter, seed, monolith_quirks):
        if hash_filter is not None:
            from engines.native.filters import NativeHashFilter
            if not isinstance(hash_filter, NativeHashFilter):
                raise TypeError("hash_filter: the filter was created by another engine "
                                f"({type(hash_filter).__name__}); create it with this engine's "
                                "create_hash_filter")
        return NativeGpuTable(self, spec, learning_rates, hash_filter, seed, monolith_quirks)

    def _create_hash_filter(self, spec):
        from engines.native.cpu import native_module as cpu_module
        from engines.native.filters import NativeHashFilter
        cpu_module()  # the filters are the CPU engine's: EngineUnavailable when it is not built
        return NativeHashFilter(spec, self.name)
