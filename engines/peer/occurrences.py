"""Monolith's occurrence semantics (docs/semantics.md §3) restated in numpy for the workers.

A worker runs in its peer's venv and cannot import our package (engines.reference.numpy_engine
needs numpy 2 and new protobuf; the TFRA venv has numpy 1.26), so it loads this file by path.
Without dedup every occurrence of an id is its own step: round k = every id's k-th occurrence.
With dedup a group's gradient is the f32 sum of its rows in occurrence order.
"""
from __future__ import annotations

import numpy as np


def occurrence_rounds(ids: np.ndarray):
    """Position lists, one per round: round k holds every id's k-th occurrence, in order."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.r_[0, np.flatnonzero(sorted_ids[1:] != sorted_ids[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(ids)]))
    rank = np.empty(len(ids), np.int64)
    rank[order] = np.arange(len(ids)) - run_start
    return [np.flatnonzero(rank == r) for r in range(int(rank.max()) + 1 if len(ids) else 0)]


def dedup(ids: np.ndarray, grads: np.ndarray):
    """(ids in first-occurrence order, f32 sums of their rows in occurrence order)."""
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    remap = np.empty(len(uniq), np.int64)
    remap[order] = np.arange(len(uniq))
    group = remap[inverse.reshape(-1)]
    summed = np.zeros((len(uniq), grads.shape[1]), np.float32)
    for r, sel in enumerate(occurrence_rounds(ids)):
        if r == 0:
            summed[group[sel]] = grads[sel]
        else:
            summed[group[sel]] += grads[sel]
    return uniq[order], summed
