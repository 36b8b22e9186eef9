"""Sharded checkpoint files `basename-NNNNN-of-MMMMM`: naming, id -> shard, discovery, write/read.

Discovery is stricter than Monolith's restore (fsf §B.5), which counts every `basename-*` match
and silently ignores odd names: here every match must be a shard of one consistent set, so a
stray or stale file is reported by name instead of producing a confusing open failure.
"""
from __future__ import annotations

import contextlib
import glob
import os
import re

import numpy as np

from engines.errors import CheckpointError
from engines.formats.atomic import fsync_dir, write_file_atomic
from engines.formats.tfrecord import encode_records, read_records

MAX_SHARDS = 99_999  # the -%05d-of-%05d name cannot express more
_SUFFIX = re.compile(r"-([0-9]{5})-of-([0-9]{5})")

_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)


def shard_name(basename: str, i: int, n: int) -> str:
    return f"{basename}-{i:05d}-of-{n:05d}"


def mix64(x) -> np.ndarray:
    """splitmix64 finaliser (docs/semantics.md §1), elementwise, wrapping mod 2^64.

    Accepts ints or int64/uint64 arrays (negative ids are reinterpreted as two's complement);
    returns a uint64 array of the same shape.
    """
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise TypeError(f"mix64 needs integers, got dtype {a.dtype}")
    shape = a.shape
    # 1-D arrays: numpy wraps array arithmetic silently but warns on 0-d scalar overflow.
    z = a.reshape(-1).astype(np.uint64)
    z = (z ^ (z >> np.uint64(30))) * _C1
    z = (z ^ (z >> np.uint64(27))) * _C2
    z = z ^ (z >> np.uint64(31))
    return z.reshape(shape)


def shard_of(ids: np.ndarray, n: int) -> np.ndarray:
    """Checkpoint shard of each id: mix64(uint64(id)) % n, as int64."""
    if not 1 <= n <= MAX_SHARDS:
        raise ValueError(f"shard count must be in [1, {MAX_SHARDS}], got {n}")
    return (mix64(ids) % np.uint64(n)).astype(np.int64)


def _matches(basename: str) -> list[tuple[str, re.Match | None]]:
    """Every path matching `basename-*` (glob metacharacters in basename taken literally),
    sorted, with its parsed shard suffix or None when the suffix is not a shard suffix."""
    prefix = os.path.basename(basename)
    paths = sorted(glob.glob(glob.escape(basename) + "-*"))
    return [(p, _SUFFIX.fullmatch(os.path.basename(p)[len(prefix):])) for p in paths]


def find_shards(basename: str) -> list[str]:
    """The paths of one complete shard set of basename, in shard order; CheckpointError otherwise."""
    matches = _matches(basename)
    if not matches:
        raise CheckpointError(f"no checkpoint files for {basename}")
    found: dict[int, str] = {}
    n = first = None
    for path, m in matches:
        if m is None:
            raise CheckpointError(f"stray file {path} matches {basename}-* but is not a shard")
        i, count = int(m.group(1)), int(m.group(2))
        if n is None:
            n, first = count, path
        elif count != n:
            raise CheckpointError(f"{path} says -of-{count:05d} but {first} says -of-{n:05d}")
        if count < 1 or i >= count:
            raise CheckpointError(f"{path}: shard index {i} is out of range for -of-{count:05d}")
        found[i] = path
    for i in range(n):
        if i not in found:
            raise CheckpointError(f"shard {i} of {n} is missing: {shard_name(basename, i, n)}")
    return [found[i] for i in range(n)]


def auto_nshards(live_entries: int) -> int:
    """Monolith's automatic shard count (nshards = -1): min(4, max(1, entries // 1e6))."""
    return min(4, max(1, live_entries // 1_000_000))


def remove_stale_shards(basename: str, keep_count: int) -> None:
    """Delete `basename-NNNNN-of-MMMMM` files with MMMMM != keep_count (an older save's set)."""
    stale = [p for p, m in _matches(basename) if m is not None and int(m.group(2)) != keep_count]
    for path in stale:
        with contextlib.suppress(FileNotFoundError):  # a concurrent cleaner got there first
            os.remove(path)
    if stale:
        fsync_dir(os.path.dirname(os.path.abspath(basename)))


def write_shards(basename: str, shard_payloads: list[list[bytes]]) -> list[str]:
    """Write shard i's records to basename-i-of-n (each file crash-safely), then remove the shard
    files of an earlier save with a different count, so the set left behind is complete and unique.
    """
    n = len(shard_payloads)
    if not 1 <= n <= MAX_SHARDS:
        raise ValueError(f"shard count must be in [1, {MAX_SHARDS}], got {n}")
    paths = []
    for i, records in enumerate(shard_payloads):
        path = shard_name(basename, i, n)
        write_file_atomic(path, encode_records(records))
        paths.append(path)
    remove_stale_shards(basename, n)
    return paths


def read_shards(basename: str) -> list[list[bytes]]:
    """The records of every shard, in shard order; every file is read and CRC-checked first."""
    return [read_records(path) for path in find_shards(basename)]
