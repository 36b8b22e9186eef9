"""Seeded id batches, values and gradients for scenarios.

Every array depends only on (scenario seed, step, op index, purpose), never on the engine,
so each engine sees exactly the same inputs.
"""
from __future__ import annotations

import numpy as np

from lab.scenarios.model import IdSpec

# Salts keep the streams of different purposes independent.
_IDS, _VALUES, _GRADS, _PREFILL = 1, 2, 3, 4


def rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *map(int, keys)])


def draw_ids(spec: IdSpec, n: int, seed: int, step: int) -> np.ndarray:
    """The ids of one step: int64 [n]."""
    if spec.kind == "monolith_dup":
        return np.arange(n, dtype=np.int64) // spec.repeat
    g = rng(seed, _IDS, step)
    if spec.kind == "uniform":
        return g.integers(0, spec.vocab, size=n, dtype=np.int64)
    ranks = g.zipf(spec.a, size=n)                       # >= 1, heavy-tailed
    return ((ranks - 1) % spec.vocab).astype(np.int64)


def prefill_ids(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


def rows(kind: str, n: int, dim: int, seed: int, *keys: int) -> np.ndarray:
    """float32 [n, dim]: 'ones', 'zeros' or 'random' (normal, scale 0.1, seeded by keys)."""
    if kind == "ones":
        return np.ones((n, dim), np.float32)
    if kind == "zeros":
        return np.zeros((n, dim), np.float32)
    return (rng(seed, *keys).standard_normal((n, dim), dtype=np.float32) * np.float32(0.1))


def values(kind: str, n: int, dim: int, seed: int, step: int, index: int) -> np.ndarray:
    return rows(kind, n, dim, seed, _VALUES, step, index)


def grads(kind: str, n: int, dim: int, seed: int, step: int, index: int) -> np.ndarray:
    return rows(kind, n, dim, seed, _GRADS, step, index)


def prefill_values(n: int, dim: int, seed: int, chunk: int) -> np.ndarray:
    return rows("random", n, dim, seed, _PREFILL, chunk)


def grads_from_lookup(embeddings: np.ndarray) -> np.ndarray:
    """The gradient of 0.5 * ||e - 0.25||^2: a training loop whose updates depend on what the
    engine returned, so a wrong lookup shows up in later steps too."""
    return (embeddings - np.float32(0.25)).astype(np.float32)


def split_evenly(n: int, parts: int) -> np.ndarray:
    """int32 [parts] block sizes summing to n (the first n % parts blocks get one more)."""
    base, extra = divmod(n, parts)
    return (np.full(parts, base, np.int64) + (np.arange(parts) < extra)).astype(np.int32)
