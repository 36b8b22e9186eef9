"""What the CPU and GPU builds of the native engine share on the Python side: loading a compiled
module, the config marshaller (the one way a TableSpec reaches C++), and the table verbs both
modules implement with the same signatures.

The marshalled text format is defined in engines/native/src/table_config.h; the TensorFlow op
library takes the same text as a string attr.
"""
from __future__ import annotations

import importlib
import math

import numpy as np

from engines import api, vocabulary
from engines.errors import EngineUnavailable

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def load_module(name: str, hint: str = ""):
    """engines.native.<name>, or EngineUnavailable when it was not built. A module whose enums
    or shared constants disagree with Python's (a stale build) is unavailable too, with the
    reason."""
    try:
        module = importlib.import_module(f"engines.native.{name}")
    except ImportError as exc:
        raise EngineUnavailable(f"not built: {exc}{hint}") from exc
    try:
        vocabulary.check_native_names(module)
        check_native_constants(module)
    except ImportError as exc:
        raise EngineUnavailable(str(exc)) from exc
    return module


def shared_constants() -> dict:
    """The constants the C++ core defines (binding_common.h, bind_constants) and the Python
    engines use too, with Python's values."""
    from engines import filters
    from engines.formats import entry_codec, manifest, shards
    return {"MAX_SHARDS": manifest.MAX_SHARDS, "OPEN_BATCH": shards.OPEN_BATCH,
            "READ_ATTEMPTS": shards.READ_ATTEMPTS, "CANONICAL_NAN": entry_codec.CANONICAL_NAN,
            "MAX_SPLIT_CAPACITY": filters.MAX_SPLIT_CAPACITY}


def check_native_constants(module) -> None:
    """ImportError when a native module's constants differ from Python's."""
    for name, value in shared_constants().items():
        got = getattr(module, name, None)
        if got != value:
            raise ImportError(f"{module.__name__}.{name} is {got}, Python has {value}: rebuild "
                              f"the native modules")


def _value(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(np.float32(value))
        if not math.isfinite(f):
            raise ValueError(f"config: non-finite value {value!r}")
        return f.hex()            # exact: C++ reads hex floats with strtod
    raise TypeError(f"config: cannot marshal {type(value).__name__} value {value!r}")


def config_text(spec, seed: int, quirks: bool) -> str:
    """The marshalled form of a TableSpec (engines.config) plus the table's seed and quirks."""
    lines = ["hashlab-table-config 1", f"dim {spec.dim}", f"state_words {spec.state_words}",
             f"seed {int(seed) % (1 << 64)}", f"quirks {_value(bool(quirks))}",
             f"fid_version {spec.fid_version}", f"expire_default {spec.default_expire_days}"]
    lines += [f"expire_slot {slot} {days}" for slot, days in sorted(spec.slot_expire_days.items())]
    for seg in spec.segments:
        fields = {"dim": seg.dim, "offset": seg.offset, "state_offset": seg.state_offset,
                  "state_words": seg.state_words}
        words = [f"{k}={v}" for k, v in fields.items()]
        words += [f"optimizer={seg.optimizer}", f"initializer={seg.initializer}",
                  f"compressor={seg.compressor or vocabulary.NO_COMPRESSOR}"]
        for params in (seg.opt_params, seg.init_params, seg.comp_params):
            words += [f"{k}={_value(v)}" for k, v in sorted(params.items())]
        lines.append("segment " + " ".join(words))
    return "\n".join(lines) + "\n"


def int64_arg(value: int, name: str) -> int:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{name} must fit in int64, got {value}")
    return value


class NativeTable(api.Table):
    """The table verbs the compiled modules implement alike (`self._t`: their Table)."""

    _t = None
    _lrs = None

    def _assign(self, ids, values, req_time):
        self._t.assign(ids, values, int64_arg(req_time, "req_time"), False)

    def _assign_add(self, ids, values, req_time):
        self._t.assign(ids, values, int64_arg(req_time, "req_time"), True)

    def _lookup_entry(self, ids):
        return self._t.lookup_entry(ids)

    def _apply_gradients(self, ids, grads, global_step, enable_dedup, req_time, lrs):
        lr_arr = self._lrs if lrs is self.learning_rates else np.asarray(lrs, np.float32)
        self._t.apply_gradients(ids, grads, int64_arg(global_step, "global_step"), enable_dedup,
                                int64_arg(req_time, "req_time"), lr_arr)

    def _size(self):
        return self._t.size()

    def _max_update_ts(self):
        return self._t.max_update_ts()

    def _save(self, basename, nshards):
        return self._t.save(basename, nshards)

    def _stage_restore(self, basename):
        return self._t.stage_restore(basename)     # an opaque C++ staging area

    def _commit_restore(self, staged):
        self._t.commit_restore(staged)

    def _save_as_tensor(self, shard_idx, num_shards, limit, offset):
        return self._t.save_as_tensor(shard_idx, num_shards, limit, offset)

    def memory_bytes(self) -> int:
        """Bytes held by the table's storage (slots and rows; host or device memory)."""
        return self._t.memory_bytes()

    def _init_lrs(self):
        self._lrs = np.asarray(self.learning_rates, np.float32)
