"""The engine interface every hashtable-lab engine implements (see docs/architecture.md).

Public methods of `Table`, `HashFilter` and `Engine` validate their arguments here, once, and then
call the engine's `_`-prefixed implementation with clean numpy arrays. Engines therefore never
re-check dtypes or shapes, and every engine rejects bad input with the same message.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Iterable, Sequence

import numpy as np

from engines import validation as _v

TABLE_OPS = frozenset({
    "assign", "assign_add", "lookup", "lookup_entry", "apply_gradients", "size",
    "save", "restore", "save_as_tensor",
})
OPTIMIZERS = frozenset({
    "sgd", "adagrad", "ftrl", "adadelta", "adam", "amsgrad", "momentum", "rmsprop",
    "rmspropv2", "batch_softmax", "moving_average", "group_adagrad",
})
INITIALIZERS = frozenset({"zeros", "ones", "constants", "random_uniform"})
COMPRESSORS = frozenset({"fp32", "fp16", "fixed_r8", "one_bit"})
FILTERS = frozenset({"sliding", "probabilistic", "dummy"})


class EngineUnavailable(RuntimeError):
    """The engine cannot be used here; `reason` says why (not built, no CUDA device, ...)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupt or does not fit the table."""


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What an engine implements. The conformance suite skips what is not declared."""
    ops: frozenset = TABLE_OPS
    optimizers: frozenset = OPTIMIZERS
    initializers: frozenset = INITIALIZERS
    compressors: frozenset = COMPRESSORS
    filters: frozenset = FILTERS
    fused: bool = True
    ttl: bool = True
    dedup: bool = True
    multi_segment: bool = True
    quirks: bool = True
    gpu: bool = False
    threads: bool = False
    device_arrays: bool = False

    def as_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            val = getattr(self, f.name)
            out[f.name] = sorted(val) if isinstance(val, frozenset) else val
        return out


@dataclasses.dataclass(frozen=True)
class EngineInfo:
    name: str
    available: bool
    reason: str
    capabilities: Capabilities | None


class Table(abc.ABC):
    """One embedding hash table. Create it with `Engine.create_table`."""

    def __init__(self, spec, learning_rates: Sequence[float]):
        # spec: engines.config.TableSpec (parsed, validated config)
        self.spec = spec
        self.learning_rates = _v.check_learning_rates(learning_rates, spec.num_segments,
                                                      "learning_rates")

    # ---- shape -------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def num_segments(self) -> int:
        return self.spec.num_segments

    # ---- public ops (validated) --------------------------------------------------------
    def assign(self, ids, values, req_time: int = 0) -> None:
        ids = _v.check_ids(ids)
        values = _v.check_rows(values, len(ids), self.dim, "values")
        self._assign(ids, values, _v.check_int(req_time, "req_time"))

    def assign_add(self, ids, values, req_time: int = 0) -> None:
        ids = _v.check_ids(ids)
        values = _v.check_rows(values, len(ids), self.dim, "values")
        self._assign_add(ids, values, _v.check_int(req_time, "req_time"))

    def lookup(self, ids) -> np.ndarray:
        return self._lookup(_v.check_ids(ids))

    def lookup_entry(self, ids) -> list[bytes]:
        return self._lookup_entry(_v.check_ids(ids))

    def apply_gradients(self, ids, grads, global_step: int = 0, enable_dedup: bool = False,
                        req_time: int = 0, learning_rates=None) -> None:
        ids = _v.check_ids(ids)
        grads = _v.check_rows(grads, len(ids), self.dim, "grads")
        lrs = (self.learning_rates if learning_rates is None else
               _v.check_learning_rates(learning_rates, self.num_segments, "learning_rates"))
        self._apply_gradients(ids, grads, _v.check_int(global_step, "global_step"),
                              _v.check_bool(enable_dedup, "enable_dedup"),
                              _v.check_int(req_time, "req_time"), lrs)

    def size(self) -> int:
        return int(self._size())

    def save(self, basename: str, nshards: int = -1) -> list[str]:
        basename = _v.check_basename(basename)
        nshards = _v.check_int(nshards, "nshards")
        if nshards == 0 or nshards < -1:
            raise ValueError(f"nshards must be -1 (automatic) or >= 1, got {nshards}")
        return self._save(basename, nshards)

    def restore(self, basename: str) -> None:
        self._restore(_v.check_basename(basename))

    def save_as_tensor(self, shard_idx: int, num_shards: int, limit: int,
                       offset: int) -> tuple[int, list[bytes]]:
        num_shards = _v.check_int(num_shards, "num_shards")
        shard_idx = _v.check_int(shard_idx, "shard_idx")
        limit = _v.check_int(limit, "limit")
        offset = _v.check_int(offset, "offset")
        if num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {num_shards}")
        if not 0 <= shard_idx < num_shards:
            raise ValueError(f"shard_idx must be in [0, {num_shards}), got {shard_idx}")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        return self._save_as_tensor(shard_idx, num_shards, limit, offset)

    # ---- metadata ----------------------------------------------------------------------
    @property
    def max_update_ts(self) -> int:
        """The largest req_time this table has seen (the TTL reference time)."""
        return int(self._max_update_ts())

    # ---- engine implementation hooks ---------------------------------------------------
    @abc.abstractmethod
    def _assign(self, ids, values, req_time): ...

    @abc.abstractmethod
    def _assign_add(self, ids, values, req_time): ...

    @abc.abstractmethod
    def _lookup(self, ids): ...

    @abc.abstractmethod
    def _lookup_entry(self, ids): ...

    @abc.abstractmethod
    def _apply_gradients(self, ids, grads, global_step, enable_dedup, req_time, lrs): ...

    @abc.abstractmethod
    def _size(self): ...

    @abc.abstractmethod
    def _save(self, basename, nshards): ...

    @abc.abstractmethod
    def _restore(self, basename): ...

    @abc.abstractmethod
    def _save_as_tensor(self, shard_idx, num_shards, limit, offset): ...

    @abc.abstractmethod
    def _max_update_ts(self): ...


class HashFilter(abc.ABC):
    """Admission filter: decides whether a new id may enter a table (fsf Part A)."""

    kind: str = ""

    def intercept_gradient(self, ids, grads) -> np.ndarray:
        ids = _v.check_ids(ids)
        grads = _v.check_rows(grads, len(ids), None, "grads")
        return self._intercept_gradient(ids, grads)

    def save(self, basename: str) -> list[str]:
        return self._save(_v.check_basename(basename))

    def restore(self, basename: str) -> None:
        self._restore(_v.check_basename(basename))

    @abc.abstractmethod
    def _intercept_gradient(self, ids, grads): ...

    @abc.abstractmethod
    def _save(self, basename): ...

    @abc.abstractmethod
    def _restore(self, basename): ...


class Engine(abc.ABC):
    """A table factory plus the multi-table (fused) ops."""

    name: str = ""
    capabilities: Capabilities = Capabilities()

    def create_table(self, config, learning_rates: Sequence[float] = (0.1,), hash_filter=None,
                     seed: int = 0, monolith_quirks: bool = False, fid_version: int = 2) -> Table:
        from engines.config import parse_table_config
        spec = parse_table_config(config, fid_version=fid_version)
        self._check_spec_supported(spec)
        if hash_filter is not None and not isinstance(hash_filter, HashFilter):
            raise TypeError(f"hash_filter must be a HashFilter from create_hash_filter, "
                            f"got {type(hash_filter).__name__}")
        table = self._create_table(spec, tuple(learning_rates), hash_filter,
                                   _v.check_int(seed, "seed"),
                                   _v.check_bool(monolith_quirks, "monolith_quirks"))
        table.capabilities = self.capabilities     # what callers may use on this table
        return table

    def create_hash_filter(self, kind: str = "sliding", capacity: int = 300_000_000,
                           split_num: int = 7, occurrence_threshold: int = 0,
                           slot_occurrence_thresholds=None, equal_probability: bool = False,
                           seed: int = 0) -> HashFilter:
        from engines.filters import FilterSpec
        spec = FilterSpec.build(kind=kind, capacity=capacity, split_num=split_num,
                                occurrence_threshold=occurrence_threshold,
                                slot_occurrence_thresholds=slot_occurrence_thresholds,
                                equal_probability=equal_probability, seed=seed)
        if spec.kind not in self.capabilities.filters:
            raise ValueError(f"kind: engine {self.name!r} does not support {spec.kind!r} filters")
        return self._create_hash_filter(spec)

    def fused_lookup(self, tables: Sequence[Table], ids, fused_slot_size, num_shards: int):
        """-> (embeddings f32[total], recv_splits i32[N], id_offsets i32[K*N+1],
        emb_offsets i32[K*N+1], indices i64 = ids)."""
        if not self.capabilities.fused:
            raise NotImplementedError(f"engine {self.name!r} has no fused ops")
        from engines import fused
        plan = fused.plan(tables, ids, fused_slot_size, num_shards, engine=self)
        emb = self._fused_lookup(plan)
        return emb, plan.emb_splits, plan.id_offsets, plan.emb_offsets, plan.ids

    def fused_apply_gradients(self, tables: Sequence[Table], ids, indices, fused_slot_size,
                              grads, id_offsets, grad_offsets, learning_rates, req_time: int = 0,
                              global_step: int = 0, num_shards: int = 1,
                              enable_grad_accumulation: bool = False) -> None:
        if not self.capabilities.fused:
            raise NotImplementedError(f"engine {self.name!r} has no fused ops")
        from engines import fused
        plan = fused.plan(tables, ids, fused_slot_size, num_shards, engine=self)
        fused.check_offsets(plan, id_offsets, grad_offsets)
        if indices is not None:
            _v.check_ids(indices, "indices")
        grads = _v.check_flat(grads, plan.total_embs, "grads")
        lrs = fused.check_learning_rates(plan, learning_rates)
        self._fused_apply_gradients(plan, grads, lrs, _v.check_int(req_time, "req_time"),
                                    _v.check_int(global_step, "global_step"),
                                    _v.check_bool(enable_grad_accumulation,
                                                  "enable_grad_accumulation"))

    # ---- engine implementation hooks ---------------------------------------------------
    def _check_spec_supported(self, spec) -> None:
        caps = self.capabilities
        for seg in spec.segments:
            if seg.optimizer not in caps.optimizers:
                raise ValueError(f"optimizer: engine {self.name!r} does not support "
                                 f"{seg.optimizer!r}")
            if seg.initializer not in caps.initializers:
                raise ValueError(f"initializer: engine {self.name!r} does not support "
                                 f"{seg.initializer!r}")
            if seg.compressor is not None and seg.compressor not in caps.compressors:
                raise ValueError(f"compressor: engine {self.name!r} does not support "
                                 f"{seg.compressor!r}")
        if spec.num_segments > 1 and not caps.multi_segment:
            raise ValueError(f"segments: engine {self.name!r} supports one segment only")

    @abc.abstractmethod
    def _create_table(self, spec, learning_rates, hash_filter, seed, monolith_quirks): ...

    def _create_hash_filter(self, spec):
        raise NotImplementedError(f"engine {self.name!r} has no hash filters")

    def _fused_lookup(self, plan):
        from engines import fused
        return fused.lookup_by_blocks(plan)

    def _fused_apply_gradients(self, plan, grads, lrs, req_time, global_step, dedup):
        from engines import fused
        fused.apply_by_blocks(plan, grads, lrs, req_time, global_step, dedup)


def iter_ids(ids: Iterable[int]) -> np.ndarray:
    """Convenience for tests and scenarios: a Python list of ids as an int64 array."""
    return np.asarray(list(ids), dtype=np.int64)
