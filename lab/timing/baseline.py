"""Same-run baselines: the machine doing the op's payload with no hash table, measured right
after each engine call (engine, baseline, engine, baseline, ...), so each pair gives one ratio
sample taken under the same machine conditions.

- Row ops: a numpy dense `take` of the same number of rows from a dense float32 array of the
  table's shape (random row indices, seeded).
- save: writes the checkpoint's byte count into as many files as the engine wrote, each one
  the way a crash-safe save does it (hidden temp file, fsync, rename), then fsyncs the folder.
- restore: reads those bytes back from as many files.

`prepare` builds the inputs (untimed) and returns the call to measure; the meter times it.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

DENSE_TAKE, WRITE_FSYNC, READ = "dense_take", "write_fsync", "read"


def kind_for(op: str) -> str | None:
    if op == "save":
        return WRITE_FSYNC
    if op == "restore":
        return READ
    if op == "size":
        return None
    return DENSE_TAKE


def has_payload(kind: str | None, n: int, width: int, nbytes: int) -> bool:
    if kind is None:
        return False
    return n > 0 and width > 0 if kind == DENSE_TAKE else nbytes > 0


class Baselines:
    """Builds each distinct baseline's inputs once (cached by shape). `takes`: a dict to keep
    the dense-take inputs in, shared by several Baselines (an A/B worker keeps them across
    rounds instead of drawing a 270 MB array again each round); default: this object's
    own."""

    def __init__(self, workdir: str, takes: dict | None = None):
        self.workdir = workdir
        self._takes: dict[tuple, Callable] = {} if takes is None else takes
        self._payloads: dict[int, bytes] = {}

    def prepare(self, kind: str | None, rows: int, width: int, n: int, nbytes: int,
                files: int = 1) -> Callable | None:
        """The baseline call for one engine call, or None when the op has no baseline."""
        if not has_payload(kind, n, width, nbytes):
            return None
        if kind == DENSE_TAKE:
            key = (max(rows, n), width, n)
            if key not in self._takes:
                self._takes[key] = self._take(*key)
            return self._takes[key]
        paths = [os.path.join(self.workdir, f"baseline-{i}.bin") for i in range(max(files, 1))]
        sizes = _split(nbytes, len(paths))
        if kind == WRITE_FSYNC:
            return lambda: self._write(paths, sizes)
        if not all(os.path.exists(p) and os.path.getsize(p) == s
                   for p, s in zip(paths, sizes)):
            self._write(paths, sizes)              # restore without a save baseline before it
        return lambda: [np.fromfile(p, dtype=np.uint8) for p in paths]

    @staticmethod
    def _take(rows: int, width: int, n: int) -> Callable:
        rng = np.random.default_rng(12345)
        dense = rng.random((rows, width), dtype=np.float32)
        idx = rng.integers(0, rows, size=n)
        return lambda: np.take(dense, idx, axis=0)

    def _payload(self, nbytes: int) -> memoryview:
        if nbytes not in self._payloads:
            self._payloads = {nbytes: np.random.default_rng(1).bytes(nbytes)}   # keep one
        return memoryview(self._payloads[nbytes])

    def _write(self, paths, sizes) -> None:
        data = self._payload(sum(sizes))
        offset = 0
        for path, size in zip(paths, sizes):
            tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data[offset:offset + size])
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            offset += size
        fd = os.open(self.workdir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]
