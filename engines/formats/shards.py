"""Sharded checkpoint files `basename-NNNNN-of-MMMMM`: naming, id -> shard, and the crash-safe
shard-set protocol of docs/checkpoints.md (write and read).

A save stages every shard under a hidden temporary name, commits by writing a pending
`basename.manifest`, renames the shards into place and marks the manifest committed, so a
kill at any moment leaves the previous complete set or the new one. A restore reads the set
the manifest names (checking each file's size and CRC32C), or, for a checkpoint without a
manifest (Monolith's), the files named exactly `basename-NNNNN-of-MMMMM`. Every file is
checked to be a regular file before it is read.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets

import crc32c as _crc32c
import numpy as np

from engines.errors import CheckpointError
from engines.formats.atomic import fsync_dir, write_file_atomic
from engines.formats.manifest import (
    MAX_SHARDS, Manifest, ManifestShard, manifest_bytes, manifest_path, parse_shard_name,
    read_manifest, shard_suffix, temp_target,
)
from engines.formats.safe_read import read_regular_file
from engines.formats.tfrecord import decode_records, encode_records

_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)


def shard_name(basename: str, i: int, n: int) -> str:
    return basename + shard_suffix(i, n)


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


def auto_nshards(live_entries: int) -> int:
    """Monolith's automatic shard count (nshards = -1): min(4, max(1, entries // 1e6))."""
    return min(4, max(1, live_entries // 1_000_000))


def _split(basename: str) -> tuple[str, str]:
    """(directory to list, file-name prefix) of a basename."""
    directory, prefix = os.path.split(basename)
    return directory or ".", prefix


def _names_starting(directory: str, start: str) -> list[str]:
    """Sorted names in directory that start with `start` and are longer; [] without the
    directory (a missing directory holds no checkpoint)."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        raise CheckpointError(f"{directory}: cannot list directory: {e.strerror or e}") from None
    return sorted(n for n in names if len(n) > len(start) and n.startswith(start))


# ---- reading -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ShardFile:
    """Where to read one shard, and what its manifest promises (None: no manifest)."""
    path: str
    size: int | None = None
    crc: int | None = None


@dataclasses.dataclass(frozen=True)
class ShardSet:
    files: tuple[ShardFile, ...]
    from_manifest: bool

    @property
    def count(self) -> int:
        return len(self.files)


def find_shard_set(basename: str) -> ShardSet:
    """basename's shard set: from its manifest when there is one, else discovered from the
    names `basename-NNNNN-of-MMMMM` (other `basename-*` names belong to another table, such
    as `basename-v2`, and are ignored). CheckpointError when there is none, a shard is
    missing, the counts disagree or the manifest is malformed."""
    directory, prefix = _split(basename)
    head = os.path.dirname(basename)
    manifest = read_manifest(basename)
    if manifest is not None:
        files = []
        for s in manifest.shards:
            path = os.path.join(head, s.name)
            if manifest.pending and os.path.lexists(os.path.join(directory, s.temp)):
                path = os.path.join(head, s.temp)   # not renamed yet: the new set's copy
            files.append(ShardFile(path, s.size, s.crc))
        return ShardSet(tuple(files), True)
    found: dict[int, str] = {}
    n = first = None
    for name in _names_starting(directory, prefix + "-"):
        parsed = parse_shard_name(name, prefix)
        if parsed is None:
            continue                                  # another table's file
        i, count = parsed
        path = os.path.join(head, name)
        if n is None:
            n, first = count, path
        elif count != n:
            raise CheckpointError(f"{path} says -of-{count:05d} but {first} says -of-{n:05d}")
        if count < 1 or i >= count:
            raise CheckpointError(f"{path}: shard index {i} is out of range for -of-{count:05d}")
        found[i] = path
    if n is None:
        raise CheckpointError(f"no checkpoint files for {basename}")
    for i in range(n):
        if i not in found:
            raise CheckpointError(f"shard {i} of {n} is missing: {shard_name(basename, i, n)}")
    return ShardSet(tuple(ShardFile(found[i]) for i in range(n)), False)


def find_shards(basename: str) -> list[str]:
    """The paths of basename's shard set, in shard order (see find_shard_set)."""
    return [f.path for f in find_shard_set(basename).files]


def has_checkpoint(basename: str) -> bool:
    """Whether basename has a manifest or at least one file named as its shard."""
    directory, prefix = _split(basename)
    if os.path.lexists(manifest_path(basename)):
        return True
    return any(parse_shard_name(name, prefix) is not None
               for name in _names_starting(directory, prefix + "-"))


def read_shard_records(shard: ShardFile) -> list[bytes]:
    """The records of one shard: a regular file of the manifest's size, every record's CRCs
    checked, then the whole file's CRC32C against the manifest's."""
    data = read_regular_file(shard.path, expected_size=shard.size)
    records = decode_records(data, shard.path)
    if shard.crc is not None and _crc32c.crc32c(data) != shard.crc:
        raise CheckpointError(f"{shard.path}: CRC32C differs from the checkpoint manifest's "
                              f"(a foreign or modified shard)")
    return records


def read_shards(basename: str) -> list[list[bytes]]:
    """The records of every shard, in shard order; every file is read and checked first."""
    return [read_shard_records(f) for f in find_shard_set(basename).files]


# ---- writing -----------------------------------------------------------------------------

def _remove_leftovers(basename: str, directory: str, prefix: str) -> set[str]:
    """Delete hidden temporaries of this basename left by a killed save, except those a
    pending manifest names (they may hold the only copy of the checkpoint until the new
    manifest replaces it); returns those kept."""
    try:
        current = read_manifest(basename)
    except CheckpointError:
        current = None                               # unreadable: it names nothing to keep
    keep = {s.temp for s in current.shards} if current is not None and current.pending else set()
    for name in _names_starting(directory, "." + prefix):
        target = temp_target(name)
        if target is None or name in keep:
            continue
        if target == prefix + ".manifest" or parse_shard_name(target, prefix) is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, name))
    return keep


def _write_new_file(path: str, data: bytes) -> None:
    """Create path (O_EXCL: never clobber a file that happens to have the temporary name),
    write data, fsync; on failure the file is removed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(path)
        raise


def _names_our_temps(basename: str, staged: list[ManifestShard]) -> bool:
    """Whether the manifest on disk is the pending one naming `staged` (the commit happened
    although writing it reported an error, e.g. in the directory fsync)."""
    try:
        current = read_manifest(basename)
    except CheckpointError:
        return False
    return bool(staged) and current is not None and current.pending and \
        {s.temp for s in current.shards} == {s.temp for s in staged}


def write_shards(basename: str, shard_payloads: list[list[bytes]]) -> list[str]:
    """Write shard i's records as basename-i-of-n with the manifest protocol
    (docs/checkpoints.md, "Save"); returns the shard paths in order. Until the pending
    manifest is written, a failure removes the temporaries and leaves the previous checkpoint
    untouched; after it, the new set is the checkpoint."""
    n = len(shard_payloads)
    if not 1 <= n <= MAX_SHARDS:
        raise ValueError(f"shard count must be in [1, {MAX_SHARDS}], got {n}")
    directory, prefix = _split(basename)
    os.makedirs(directory, exist_ok=True)
    kept = _remove_leftovers(basename, directory, prefix)
    staged: list[ManifestShard] = []
    try:
        for i, records in enumerate(shard_payloads):
            name = prefix + shard_suffix(i, n)
            temp = f".{name}.tmp-{secrets.token_hex(8)}"
            data = encode_records(records)
            _write_new_file(os.path.join(directory, temp), data)
            staged.append(ManifestShard(name, len(data), _crc32c.crc32c(data), temp))
        # The commit point: from here on the new set is the checkpoint.
        write_file_atomic(manifest_path(basename), manifest_bytes(Manifest(True, tuple(staged))))
    except BaseException:
        if not _names_our_temps(basename, staged):
            for s in staged:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(directory, s.temp))
        raise
    for s in staged:
        os.replace(os.path.join(directory, s.temp), os.path.join(directory, s.name))
    stale = [name for name in _names_starting(directory, prefix + "-")
             if (parse_shard_name(name, prefix) or (0, n))[1] != n]   # an older save's set
    for name in stale + sorted(kept):     # + the temporaries of an earlier pending manifest
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(directory, name))
    fsync_dir(directory)
    write_file_atomic(manifest_path(basename), manifest_bytes(Manifest(False, tuple(staged))))
    return [shard_name(basename, i, n) for i in range(n)]
