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

from engines import fused, tolerance, vocabulary
from engines import validation as _v
from engines.config import parse_table_config
from engines.errors import CheckpointError, EngineUnavailable
from engines.filters import FilterSpec

__all__ = ["Capabilities", "CheckpointError", "Divergence", "Engine", "EngineInfo",
           "EngineUnavailable", "HashFilter", "Requirements", "Table"]

TABLE_OPS = frozenset(vocabulary.TABLE_OPS)
OPTIMIZERS = frozenset(vocabulary.OPTIMIZERS)
INITIALIZERS = frozenset(vocabulary.INITIALIZERS)
COMPRESSORS = frozenset(vocabulary.COMPRESSORS)
FILTERS = frozenset(vocabulary.FILTERS)


@dataclasses.dataclass(frozen=True)
class Requirements:
    """What a table, a scenario, a test or a benchmark needs from an engine; compare it with
    `Capabilities.missing`."""
    ops: frozenset = frozenset()
    optimizers: frozenset = frozenset()
    initializers: frozenset = frozenset()
    compressors: frozenset = frozenset()
    filters: frozenset = frozenset()
    fused: bool = False
    ttl: bool = False
    dedup: bool = False
    multi_segment: bool = False
    quirks: bool = False
    threads: bool = False          # more than one thread

    @classmethod
    def of(cls, **kw) -> "Requirements":
        """Requirements(...) that also takes single names or any iterable for the set fields,
        and ignores None (so callers can pass optional wishes straight through)."""
        sets = {"ops", "optimizers", "initializers", "compressors", "filters"}
        clean = {}
        for key, value in kw.items():
            if value is None:
                continue
            if key in sets:
                value = frozenset([value] if isinstance(value, str) else value)
            clean[key] = value
        return cls(**clean)

    def __or__(self, other: "Requirements") -> "Requirements":
        return Requirements(**{
            f.name: (getattr(self, f.name) | getattr(other, f.name))
            for f in dataclasses.fields(self)})


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

    @classmethod
    def from_dict(cls, d: dict) -> "Capabilities":
        """The inverse of as_dict (for capabilities that travelled through JSON or pickle)."""
        return cls(**{k: frozenset(v) if isinstance(v, (list, tuple, set, frozenset)) else v
                      for k, v in d.items()})

    def missing(self, needs: Requirements) -> list[str]:
        """What `needs` asks for that this engine does not declare, as short phrases ("op
        save", "optimizer adam", "sliding hash filter", "TTL", ...); empty when it can run."""
        out = []
        for field, label in (("ops", "op {}"), ("optimizers", "optimizer {}"),
                             ("initializers", "initializer {}"),
                             ("compressors", "compressor {}"), ("filters", "{} hash filter")):
            have = getattr(self, field)
            out += [label.format(name) for name in sorted(getattr(needs, field) - have)]
        for flag, label in (("fused", "fused ops"), ("ttl", "TTL"), ("dedup", "dedup"),
                            ("multi_segment", "multi-segment entries"),
                            ("quirks", "monolith_quirks"), ("threads", "threads")):
            if getattr(needs, flag) and not getattr(self, flag):
                out.append(label)
        return out


def table_requirements(spec, hash_filter_kind: str | None = None,
                       quirks: bool = False) -> Requirements:
    """What creating a table of this layout needs (engines.config.TableSpec)."""
    return Requirements(
        optimizers=frozenset(s.optimizer for s in spec.segments),
        initializers=frozenset(s.initializer for s in spec.segments),
        compressors=frozenset(s.compressor for s in spec.segments if s.compressor is not None),
        filters=frozenset([hash_filter_kind] if hash_filter_kind else []),
        multi_segment=spec.num_segments > 1, quirks=bool(quirks))


@dataclasses.dataclass(frozen=True)
class Divergence:
    """A known, intended difference from the numpy reference (`Engine.known_divergences`)
    and the bound it stays within; the parity runner reports a larger difference as a
    failure. A value passes when it is at most `max_ulp` float32 ulps from the reference's,
    or within `max_rel` of the reference value's magnitude, or within `abs_floor` absolutely
    (weights that an update brings next to zero are many ulps and a large relative error away
    for a tiny absolute one). `per_step`: every bound is per optimizer step, and grows with
    the steps the table has taken (independent roundings add up)."""
    why: str
    max_ulp: float | None = None
    max_rel: float | None = None
    abs_floor: float = tolerance.ABS_FLOOR
    per_step: bool = False

    def __post_init__(self):
        if not isinstance(self.why, str) or not self.why:
            raise ValueError("why: say why the engine differs")
        if self.max_ulp is None and self.max_rel is None:
            raise ValueError("a divergence declares its bound: max_ulp, max_rel or both")
        for name in ("max_ulp", "max_rel", "abs_floor"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")

    def bound(self, steps: int = 1) -> tuple[float, float | None, float]:
        """(max_ulp, max_rel, abs_floor) after `steps` optimizer steps."""
        k = max(1, steps) if self.per_step else 1
        return ((self.max_ulp or 0) * k, None if self.max_rel is None else self.max_rel * k,
                self.abs_floor * k)

    def describe(self, steps: int = 1) -> str:
        """The declared bound, and what it allows after `steps` steps, in words."""
        def words(ulp, rel, floor):
            parts = ([f"{ulp:g} ulp"] if self.max_ulp is not None else []) + \
                ([f"{rel:g} relative"] if rel is not None else [])
            if self.abs_floor != tolerance.ABS_FLOOR:
                parts.append(f"{floor:g} absolute")
            return " or ".join(parts)
        text = words(self.max_ulp, self.max_rel, self.abs_floor)
        if self.per_step:
            text += f" per step ({words(*self.bound(steps))} after {max(1, steps)})"
        return text


@dataclasses.dataclass(frozen=True)
class EngineInfo:
    name: str
    available: bool
    reason: str
    capabilities: Capabilities | None
    origin: str = "built-in"     # built-in, a plug-in package, register(), a module:Factory
    broken: bool = False         # a plug-in that fails to load; `reason` says how


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
        ids, n = self._ids_arg(ids)
        values = self._rows_arg(values, n, "values")
        self._assign(ids, values, _v.check_req_time(req_time))

    def assign_add(self, ids, values, req_time: int = 0) -> None:
        ids, n = self._ids_arg(ids)
        values = self._rows_arg(values, n, "values")
        self._assign_add(ids, values, _v.check_req_time(req_time))

    def lookup(self, ids, out=None):
        """float32 [n, dim] embeddings; missing ids give zero rows. `out`: an array of that
        shape to write into instead of allocating one (returned)."""
        ids, n = self._ids_arg(ids)
        if out is None:
            return self._lookup(ids)
        return self._lookup_into(ids, self._out_arg(out, n))

    def lookup_entry(self, ids) -> list[bytes]:
        return self._lookup_entry(_v.check_ids(ids))

    def apply_gradients(self, ids, grads, global_step: int = 0, enable_dedup: bool = False,
                        req_time: int = 0, learning_rates=None) -> None:
        ids, n = self._ids_arg(ids)
        grads = self._rows_arg(grads, n, "grads")
        lrs = (self.learning_rates if learning_rates is None else
               _v.check_learning_rates(learning_rates, self.num_segments, "learning_rates"))
        self._apply_gradients(ids, grads, _v.check_global_step(global_step),
                              _v.check_bool(enable_dedup, "enable_dedup"),
                              _v.check_req_time(req_time), lrs)

    def size(self) -> int:
        return int(self._size())

    def save(self, basename: str, nshards: int = -1) -> list[str]:
        """Monolith's sharded layout with the crash-safe protocol of docs/checkpoints.md:
        an error means nothing changed; a failure after the commit point is a
        CheckpointWarning on a save that succeeded."""
        return self._save(_v.check_basename(basename), _v.check_nshards(nshards))

    def restore(self, basename: str) -> None:
        """Replace the content with a checkpoint; on any error the table is unchanged."""
        self._commit_restore(self._stage_restore(_v.check_basename(basename)))

    def save_as_tensor(self, shard_idx: int, num_shards: int, limit: int,
                       offset: int) -> tuple[int, list[bytes]]:
        return self._save_as_tensor(*_v.check_save_as_tensor(shard_idx, num_shards, limit,
                                                              offset))

    # ---- metadata ----------------------------------------------------------------------
    @property
    def max_update_ts(self) -> int:
        """The largest req_time this table has seen (the TTL reference time)."""
        return int(self._max_update_ts())

    # ---- argument hooks: how this engine takes arrays -----------------------------------
    # The defaults accept host (numpy-convertible) arrays. An engine that also takes device
    # arrays (native-gpu) overrides these three and nothing else; every check stays here.
    def _ids_arg(self, ids, name: str = "ids"):
        """(ids as the engine takes them, their count)."""
        ids = _v.check_ids(ids, name)
        return ids, len(ids)

    def _rows_arg(self, rows, n: int, name: str):
        return _v.check_rows(rows, n, self.dim, name)

    def _out_arg(self, out, n: int):
        return _v.check_out(out, n, self.dim, "out")

    def _lookup_into(self, ids, out):
        out[...] = self._lookup(ids)
        return out

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

    # restore runs in two steps, so that a model checkpoint can restore many tables (and
    # filters) all-or-nothing: stage every one of them, then commit them all.
    @abc.abstractmethod
    def _stage_restore(self, basename):
        """Read, check and parse everything; leave the table unchanged; return what
        _commit_restore needs (raise CheckpointError naming the file on any problem)."""

    @abc.abstractmethod
    def _commit_restore(self, staged):
        """Replace the content with `staged`; must not fail except on out-of-memory."""

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
        self._commit_restore(self._stage_restore(_v.check_basename(basename)))

    @abc.abstractmethod
    def _intercept_gradient(self, ids, grads): ...

    @abc.abstractmethod
    def _save(self, basename): ...

    # Two-step restore, as for tables (see Table._stage_restore).
    @abc.abstractmethod
    def _stage_restore(self, basename): ...

    @abc.abstractmethod
    def _commit_restore(self, staged): ...


class Engine(abc.ABC):
    """A table factory plus the multi-table (fused) ops."""

    name: str = ""
    capabilities: Capabilities = Capabilities()
    # Results that differ from the reference on purpose: {"adagrad" | "apply_gradients" |
    # "apply_gradients:adagrad": Divergence(why, max_ulp=..., ...)} (see Divergence).
    known_divergences: dict = {}

    def create_table(self, config, learning_rates: Sequence[float] = (0.1,), hash_filter=None,
                     seed: int = 0, monolith_quirks: bool = False, fid_version: int = 2) -> Table:
        spec = parse_table_config(config, fid_version=fid_version)
        monolith_quirks = _v.check_bool(monolith_quirks, "monolith_quirks")
        self._check_supported(table_requirements(spec, quirks=monolith_quirks))
        if hash_filter is not None and not isinstance(hash_filter, HashFilter):
            raise TypeError(f"hash_filter must be a HashFilter from create_hash_filter, "
                            f"got {type(hash_filter).__name__}")
        if hash_filter is not None and getattr(hash_filter, "engine_name", None) != self.name:
            raise TypeError("hash_filter: the filter was created by another engine "
                            f"({getattr(hash_filter, 'engine_name', None)!r}); create it with "
                            "this engine's create_hash_filter")
        table = self._create_table(spec, tuple(learning_rates), hash_filter,
                                   _v.check_int(seed, "seed"), monolith_quirks)
        table.capabilities = self.capabilities     # what callers may use on this table
        table.engine_name = self.name
        return table

    def create_hash_filter(self, kind: str = "sliding", capacity: int = 300_000_000,
                           split_num: int = 7, occurrence_threshold: int = 0,
                           slot_occurrence_thresholds=None, equal_probability: bool = False,
                           seed: int = 0) -> HashFilter:
        spec = FilterSpec.build(kind=kind, capacity=capacity, split_num=split_num,
                                occurrence_threshold=occurrence_threshold,
                                slot_occurrence_thresholds=slot_occurrence_thresholds,
                                equal_probability=equal_probability, seed=seed)
        if spec.kind not in self.capabilities.filters:
            raise ValueError(f"kind: engine {self.name!r} does not support {spec.kind!r} filters")
        hash_filter = self._create_hash_filter(spec)
        hash_filter.engine_name = self.name
        return hash_filter

    def fused_lookup(self, tables: Sequence[Table], ids, fused_slot_size, num_shards: int):
        """-> (embeddings f32[total], recv_splits i32[N], id_offsets i32[K*N+1],
        emb_offsets i32[K*N+1], indices i64 = ids)."""
        plan = self._fused_plan(tables, ids, fused_slot_size, num_shards)
        emb = self._fused_lookup(plan)
        return emb, plan.emb_splits, plan.id_offsets, plan.emb_offsets, plan.ids

    def fused_apply_gradients(self, tables: Sequence[Table], ids, indices, fused_slot_size,
                              grads, id_offsets, grad_offsets, learning_rates, req_time: int = 0,
                              global_step: int = 0, num_shards: int = 1,
                              enable_grad_accumulation: bool = False) -> None:
        plan = self._fused_plan(tables, ids, fused_slot_size, num_shards)
        fused.check_offsets(plan, id_offsets, grad_offsets)
        if indices is not None:
            _v.check_ids(indices, "indices")
        grads = _v.check_flat(grads, plan.total_embs, "grads")
        lrs = fused.check_learning_rates(plan, learning_rates)
        self._fused_apply_gradients(plan, grads, lrs, _v.check_req_time(req_time),
                                    _v.check_global_step(global_step),
                                    _v.check_bool(enable_grad_accumulation,
                                                  "enable_grad_accumulation"))

    def _fused_plan(self, tables, ids, fused_slot_size, num_shards):
        if not self.capabilities.fused:
            raise NotImplementedError(f"engine {self.name!r} has no fused ops")
        tables = tuple(tables)
        for i, t in enumerate(tables):
            if not isinstance(t, Table):
                raise TypeError(f"tables[{i}] is not a Table")
            if getattr(t, "engine_name", self.name) != self.name:
                raise TypeError(f"tables[{i}] belongs to engine {t.engine_name!r}, not "
                                f"{self.name!r}")
        return fused.plan(tables, ids, fused_slot_size, num_shards)

    def _check_supported(self, needs: Requirements) -> None:
        """ValueError naming the argument when this engine cannot build what `needs` asks."""
        missing = self.capabilities.missing(needs)
        if missing:
            argument = missing[0].split(" ")[0] if missing[0].startswith(
                ("optimizer", "initializer", "compressor")) else "config"
            raise ValueError(f"{argument}: engine {self.name!r} does not support "
                             f"{', '.join(missing)}")

    # ---- engine implementation hooks ---------------------------------------------------
    @abc.abstractmethod
    def _create_table(self, spec, learning_rates, hash_filter, seed, monolith_quirks): ...

    def _create_hash_filter(self, spec):
        raise NotImplementedError(f"engine {self.name!r} has no hash filters")

    def _fused_lookup(self, plan):
        return fused.lookup_by_blocks(plan)

    def _fused_apply_gradients(self, plan, grads, lrs, req_time, global_step, dedup):
        fused.apply_by_blocks(plan, grads, lrs, req_time, global_step, dedup)


def iter_ids(ids: Iterable[int]) -> np.ndarray:
    """Convenience for tests and scenarios: a Python list of ids as an int64 array."""
    return np.asarray(list(ids), dtype=np.int64)
