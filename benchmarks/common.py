"""Shared pieces of the asv suites: engine creation (unavailable -> NotImplementedError, which
asv reports as skipped), seeded data, the dense-take baseline and a small timer for track_*.

Data is built in `setup` from fixed seeds; nothing touches CUDA at import time.
"""
from __future__ import annotations

import os
import time

import numpy as np

import engines

# The engine is a parameter of every suite. HASHLAB_ASV_ENGINES narrows the list for local
# runs (keep the default in CI so results stay comparable across commits).
ENGINES = [e for e in os.environ.get("HASHLAB_ASV_ENGINES", ",".join(engines.names()))
           .split(",") if e]
SEED = 20240601


def probe_engines() -> dict:
    """For `setup_cache`: {engine: (capabilities dict or None, reason)}. Probing once per suite
    keeps skipped parameter combinations cheap (no engine start, no TensorFlow import)."""
    return {i.name: (i.capabilities.as_dict() if i.available else None, i.reason)
            for i in engines.available() if i.name in ENGINES}


def make_engine(probe: dict, name: str, threads: int = 1, *, op=None, optimizer=None,
                fused=False, dedup=False):
    """The engine, or NotImplementedError (asv reports it as skipped) naming what is missing:
    the registry's reason, or the op / optimizer / feature the engine does not declare."""
    caps, reason = probe.get(name, (None, f"engine {name} is not registered"))
    if caps is None:
        raise NotImplementedError(f"engine {name} unavailable: {reason}")
    missing = engines.Capabilities.from_dict(caps).missing(engines.Requirements.of(
        ops=op, optimizers=optimizer, fused=fused, dedup=dedup, threads=threads > 1))
    if missing:
        raise NotImplementedError(f"engine {name} does not declare {', '.join(missing)}")
    return engines.get(name, threads=threads) if caps["threads"] else engines.get(name)


def rng(*keys) -> np.random.Generator:
    return np.random.default_rng([SEED, *keys])


def uniform_ids(n: int, vocab: int, key: int = 0) -> np.ndarray:
    return rng(1, key).integers(0, vocab, size=n, dtype=np.int64)


def zipf_ids(n: int, vocab: int, a: float = 1.2, key: int = 0) -> np.ndarray:
    return ((rng(2, key).zipf(a, size=n) - 1) % vocab).astype(np.int64)


def rows(n: int, dim: int, key: int = 0) -> np.ndarray:
    return rng(3, key).standard_normal((n, dim), dtype=np.float32) * np.float32(0.1)


def prefilled_table(engine, n: int, dim: int, optimizer: str = "sgd", chunk: int = 100_000):
    table = engine.create_table(engines.table_config(dim=dim, optimizer=optimizer))
    for start in range(0, n, chunk):
        ids = np.arange(start, min(n, start + chunk), dtype=np.int64)
        table.assign(ids, rows(len(ids), dim, key=start))
    return table


def median_seconds(fn, repeats: int = 5) -> float:
    """Median wall time of `fn()` after one warm-up call (for track_* benchmarks)."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))


class DenseTake:
    """The same-run baseline: numpy take of `n` random rows from a dense float32 array of the
    table's shape."""

    def __init__(self, table_rows: int, dim: int, n: int):
        self.dense = rng(4).random((table_rows, dim), dtype=np.float32)
        self.idx = rng(5).integers(0, table_rows, size=n)

    def __call__(self):
        return np.take(self.dense, self.idx, axis=0)
