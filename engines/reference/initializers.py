"""Initializers (core §4.1) with the counter-based random_uniform of docs/semantics.md §2."""
from __future__ import annotations

import numpy as np

F = np.float32
_U64 = np.uint64
GOLDEN = _U64(0x9E3779B97F4A7C15)


def mix64(x):
    """splitmix64 finaliser on uint64 arrays or scalars (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = x ^ (x >> _U64(30))
        z = z * _U64(0xBF58476D1CE4E5B9)
        z = z ^ (z >> _U64(27))
        z = z * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def uniform_bits(ids: np.ndarray, seed: int, k: np.ndarray) -> np.ndarray:
    """f32 u in [0, 1) for every (id, element k): [len(ids), len(k)]."""
    seed_mix = mix64(_U64(seed % (1 << 64)))
    key = mix64(ids.astype(np.int64).view(np.uint64) ^ seed_mix)
    with np.errstate(over="ignore"):
        ctr = (k.astype(np.uint64) + _U64(1)) * GOLDEN
        r = mix64(key[:, None] + ctr[None, :])
    return (r >> _U64(40)).astype(np.float32) * F(2.0 ** -24)


def fill(segments, emb: np.ndarray, ids: np.ndarray, seed: int) -> None:
    """Initialise the embedding rows `emb` ([m, D_total]) of new `ids`, segment by segment."""
    for seg in segments:
        cols = slice(seg.offset, seg.offset + seg.dim)
        kind = seg.initializer
        if kind == "zeros":
            emb[:, cols] = F(0)
        elif kind == "ones":
            emb[:, cols] = F(1)
        elif kind == "constants":
            emb[:, cols] = F(seg.init_params["constant"])
        elif kind == "random_uniform":
            lo, hi = F(seg.init_params["minval"]), F(seg.init_params["maxval"])
            u = uniform_bits(ids, seed, np.arange(seg.offset, seg.offset + seg.dim))
            emb[:, cols] = u * (hi - lo) + lo          # two f32 roundings, no FMA
        else:  # parse_table_config rejects anything else
            raise ValueError(f"initializer: unknown initializer {kind!r}")
