"""`native-gpu`: the native engine's tables in CUDA device memory (engines/native/cuda/).

Arrays: every op takes numpy arrays (copied to the device and back) or CUDA device arrays that
speak DLPack (CuPy, PyTorch, ...), used in place without a copy. `lookup` returns numpy for numpy
ids and a device array for device ids: a CuPy array for CuPy ids, a torch tensor for torch ids,
otherwise nanobind's DLPack-capable `nb_ndarray`; `lookup(ids, out=device_array)` writes into a
caller's float32 [n, dim] device array instead (no allocation). Ops run on the legacy default
stream and synchronize before returning, so inputs made on CuPy's/PyTorch's default stream are
ready and results are complete; work on other streams must be synchronized by the caller.

Validation is engines/api.py's like every engine's: this table only overrides the argument
hooks (`_ids_arg`, `_rows_arg`, `_out_arg`) so device arrays are checked in place.

Nothing here touches CUDA at import: the extension is imported, and the device probed, only by
`probe()` / engine creation (engines.available() and engines.get()).

Hash filters are the native CPU filters (engines/native/filters.py). Admission is sequential in
batch order (the sliding filter's state depends on it), so the table sends the ids it lacks to
the host once per batch, in batch order (no dedup) or first-occurrence order (dedup), and the
filter decides them all in one C++ call; the device then updates only the admitted ids.
"""
from __future__ import annotations

import numpy as np

from engines import api
from engines import validation as _v
from engines.native.common import NativeTable, config_text, load_module
from engines.native.filters import NativeHashFilter

_DLPACK_CUDA = (2, 13)  # kDLCUDA, kDLCUDAManaged


def native_module():
    """The compiled CUDA extension; EngineUnavailable when it was not built."""
    return load_module("_native_cuda")


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


class NativeGpuTable(NativeTable):
    def __init__(self, engine, spec, learning_rates, hash_filter, seed, quirks):
        super().__init__(spec, learning_rates)
        self._init_lrs()
        self.device = engine.device
        self._mod = mod = native_module()
        self._t = mod.Table(engine.device, config_text(spec, seed, quirks),
                            spec.initial_capacity if spec.initial_capacity > 1 else 0)
        if hash_filter is not None:
            self._t.set_filter(hash_filter.admit)

    # ---- argument hooks: device arrays are checked in place ------------------------------
    def _device_info(self, arr, name):
        _dev_type, _dev_id, dtype, shape, contiguous = self._mod.array_info(arr)
        if not contiguous:
            raise ValueError(f"{name} must be C-contiguous (device arrays are used in place)")
        return dtype, tuple(shape)

    def _ids_arg(self, ids, name="ids"):
        if not is_device_array(ids):
            return super()._ids_arg(ids, name)
        dtype, shape = self._device_info(ids, name)
        if dtype != "int64":
            raise TypeError(f"{name} must have dtype int64, got {dtype}")
        if len(shape) != 1:
            raise ValueError(f"{name} must be 1-D, got shape {shape}")
        return ids, int(shape[0])

    def _rows_arg(self, rows, n, name):
        if not is_device_array(rows):
            return super()._rows_arg(rows, n, name)
        dtype, shape = self._device_info(rows, name)
        dim = self.dim
        if dtype != "float32":
            raise TypeError(f"{name} must have dtype float32, got {dtype}")
        if not (shape == (n, dim) or shape == (n * dim,)):
            if len(shape) == 2 and shape[0] != n:
                raise ValueError(f"{name} has {shape[0]} rows but ids has {n} elements")
            raise ValueError(f"{name} must have shape [{n}, {dim}], got {shape}")
        bad = self._mod.first_nonfinite(rows, dim) if n and dim else -1
        if bad >= 0:
            raise ValueError(f"{name} contains a non-finite value (NaN or Inf) at row {bad}; "
                             f"values and gradients must be finite")
        return rows

    def _out_arg(self, out, n):
        if not is_device_array(out):
            return super()._out_arg(out, n)
        dtype, shape = self._device_info(out, "out")
        if dtype != "float32" or shape != (n, self.dim):
            raise ValueError(f"out must be a float32 device array of shape [{n}, {self.dim}], "
                             f"got {dtype} {shape}")
        return out

    # ---- engine hooks ----------------------------------------------------------------------
    def _lookup(self, ids):
        res = self._t.lookup(ids, None)
        return _like(ids, res) if is_device_array(ids) else res

    def _lookup_into(self, ids, out):
        if not is_device_array(out):
            return super()._lookup_into(ids, out)
        self._t.lookup(ids, out)
        return out


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
        return NativeGpuTable(self, spec, learning_rates, hash_filter, seed, monolith_quirks)

    def _create_hash_filter(self, spec):
        # The filters are the CPU engine's (EngineUnavailable when it is not built).
        return NativeHashFilter(spec, load_module("_native_cpu"))
