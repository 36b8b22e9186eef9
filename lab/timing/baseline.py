"""Same-run baselines: what the machine does with the same payload and no hash table.

- Row ops: a numpy dense `take` of the same number of rows from a dense float32 array of the
  table's shape (random row indices, seeded).
- save / restore: `ndarray.tofile` / `np.fromfile` of an array of the checkpoint's size.

Engine medians divided by these give ratios that stay comparable across noisy machines,
which is what the gate compares.
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from lab.timing.stats import median

DENSE_TAKE, TOFILE, FROMFILE = "dense_take", "tofile", "fromfile"


def kind_for(op: str) -> str | None:
    if op == "save":
        return TOFILE
    if op == "restore":
        return FROMFILE
    if op == "size":
        return None
    return DENSE_TAKE


class Baselines:
    """Measures each distinct baseline once per run (cached by its shape)."""

    def __init__(self, repeats: int = 5, workdir: str | None = None):
        self.repeats = max(3, repeats)
        self.workdir = workdir or tempfile.gettempdir()
        self._cache: dict[tuple, float] = {}

    def seconds(self, kind: str | None, rows: int, width: int, n: int, nbytes: int) -> float:
        if kind is None or (kind == DENSE_TAKE and (n == 0 or width == 0)) or (
                kind != DENSE_TAKE and nbytes == 0):
            return float("nan")
        key = (kind, rows, width, n) if kind == DENSE_TAKE else (kind, nbytes)
        if key not in self._cache:
            self._cache[key] = (self._take(max(rows, n), width, n) if kind == DENSE_TAKE
                                else self._file(kind, nbytes))
        return self._cache[key]

    def _timed(self, fn) -> float:
        fn()                                           # warm-up (page faults, caches)
        samples = []
        for _ in range(self.repeats):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        return median(samples)

    def _take(self, rows: int, width: int, n: int) -> float:
        rng = np.random.default_rng(12345)
        dense = rng.random((rows, width), dtype=np.float32)
        idx = rng.integers(0, rows, size=n)
        return self._timed(lambda: np.take(dense, idx, axis=0))

    def _file(self, kind: str, nbytes: int) -> float:
        payload = np.ones(max(nbytes // 4, 1), np.float32)
        fd, path = tempfile.mkstemp(prefix="hashlab-baseline-", dir=self.workdir)
        os.close(fd)
        try:
            payload.tofile(path)
            if kind == TOFILE:
                return self._timed(lambda: payload.tofile(path))
            return self._timed(lambda: np.fromfile(path, dtype=np.float32))
        finally:
            os.unlink(path)
