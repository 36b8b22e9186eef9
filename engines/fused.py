"""Fused multi-table lookup/optimize (fsf Part C): layout planning and the block loop.

The layout is shard-major: block `idx = shard*K + table` holds `fused_slot_size[idx]` ids.
Offsets have K*N+1 entries (inclusive prefix sums). Engines may override the block loop with
a native one; the plan and its validation are shared.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from engines import validation as _v


@dataclasses.dataclass(frozen=True)
class FusedPlan:
    tables: tuple
    ids: np.ndarray
    num_tables: int
    num_shards: int
    slot_sizes: np.ndarray      # int32 [K*N]
    id_offsets: np.ndarray      # int32 [K*N+1]
    emb_offsets: np.ndarray     # int32 [K*N+1]
    emb_splits: np.ndarray      # int32 [N]
    total_embs: int

    def blocks(self):
        """(shard, table index, table, id slice, emb slice) in shard-major order."""
        k = self.num_tables
        for s in range(self.num_shards):
            for t, table in enumerate(self.tables):
                idx = s * k + t
                yield (s, t, table,
                       slice(int(self.id_offsets[idx]), int(self.id_offsets[idx + 1])),
                       slice(int(self.emb_offsets[idx]), int(self.emb_offsets[idx + 1])))


def plan(tables, ids, fused_slot_size, num_shards) -> FusedPlan:
    """The block layout of a fused call; the caller (engines.api) has checked that `tables`
    are tables of its engine."""
    tables = tuple(tables)
    if not tables:
        raise ValueError("tables: at least one table is required")
    num_shards = _v.check_int(num_shards, "num_shards")
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    ids = _v.check_ids(ids)
    sizes = np.asarray(fused_slot_size)
    if sizes.dtype.kind not in "iu" or sizes.ndim != 1:
        raise TypeError(f"fused_slot_size must be a 1-D integer array, got {sizes.dtype} "
                        f"with shape {sizes.shape}")
    k = len(tables)
    if len(sizes) != k * num_shards:
        raise ValueError(f"fused_slot_size must have K*N = {k}*{num_shards} = {k * num_shards} "
                         f"elements, got {len(sizes)}")
    if (sizes < 0).any():
        raise ValueError("fused_slot_size must be >= 0")
    if int(sizes.sum()) != len(ids):
        raise ValueError(f"fused_slot_size sums to {int(sizes.sum())} but ids has {len(ids)}")
    dims = np.array([t.dim for t in tables], np.int64)
    block_dims = np.tile(dims, num_shards)
    sizes64 = sizes.astype(np.int64)
    id_off = np.r_[0, np.cumsum(sizes64)]
    emb_off = np.r_[0, np.cumsum(sizes64 * block_dims)]
    splits = (sizes64 * block_dims).reshape(num_shards, k).sum(axis=1)
    if emb_off[-1] >= 2 ** 31:
        raise ValueError("fused ops: total embedding size does not fit int32 offsets")
    return FusedPlan(tables, ids, k, num_shards, sizes.astype(np.int32),
                     id_off.astype(np.int32), emb_off.astype(np.int32),
                     splits.astype(np.int32), int(emb_off[-1]))


def check_offsets(p: FusedPlan, id_offsets, grad_offsets) -> None:
    for name, given, want in (("id_offsets", id_offsets, p.id_offsets),
                              ("grad_offsets", grad_offsets, p.emb_offsets)):
        if given is None:
            continue
        arr = np.asarray(given)
        if arr.shape != want.shape or not np.array_equal(arr.astype(np.int64), want):
            raise ValueError(f"{name} does not match fused_slot_size and the table dims "
                             f"(expected {want.tolist()}, got {arr.tolist()})")


def check_learning_rates(p: FusedPlan, learning_rates) -> np.ndarray:
    want = sum(t.num_segments for t in p.tables)
    return np.asarray(_v.check_learning_rates(learning_rates, want, "learning_rates"),
                      np.float32)


def lookup_by_blocks(p: FusedPlan) -> np.ndarray:
    out = np.zeros(p.total_embs, np.float32)
    for _, _, table, ids_sl, emb_sl in p.blocks():
        if ids_sl.stop > ids_sl.start:
            out[emb_sl] = table._lookup(p.ids[ids_sl]).reshape(-1)
    return out


def apply_by_blocks(p: FusedPlan, grads, lrs, req_time, global_step, dedup) -> None:
    """Shards in order, tables in order; the lr vector restarts for every shard. Every block
    is applied, empty ones too, so each table sees req_time (its max_update_ts)."""
    lr_starts = np.r_[0, np.cumsum([t.num_segments for t in p.tables])]
    for _, t, table, ids_sl, emb_sl in p.blocks():
        n = ids_sl.stop - ids_sl.start
        table_lrs = tuple(float(x) for x in lrs[lr_starts[t]:lr_starts[t + 1]])
        table._apply_gradients(p.ids[ids_sl], grads[emb_sl].reshape(n, table.dim),
                               global_step, dedup, req_time, table_lrs)
