"""Sharded checkpoint files `basename-NNNNN-of-MMMMM`: naming, id -> shard, and the crash-safe
shard-set protocol of docs/checkpoints.md (write and read).

A save stages every shard under a hidden temporary name, commits by writing a pending
`basename.manifest`, renames the shards into place and marks the manifest committed, so a
kill at any moment leaves the previous complete set or the new one. An error before the
commit removes everything the save wrote and raises; after it, the save has succeeded and a
failed clean-up step is a CheckpointWarning. A restore reads the set the manifest names
(checking each file's size and CRC32C), or, for a checkpoint without a manifest (Monolith's),
the files named exactly `basename-NNNNN-of-MMMMM`; it holds the files open before it reads
them and starts over when a save replaced the manifest meanwhile, so a reader running while
another process saves gets one whole committed version. Every file is checked to be a
regular file before it is read.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import warnings
from typing import Callable, Iterator, TypeVar

import crc32c as _crc32c
import numpy as np

from engines.errors import CheckpointError, CheckpointWarning
from engines.formats.atomic import fsync_dir, write_file_atomic
from engines.formats.manifest import (
    MAX_SHARDS, Manifest, ManifestShard, manifest_bytes, manifest_path, manifest_snapshot,
    next_generation, parse_shard_name, parse_snapshot, read_manifest, shard_suffix, temp_target,
)
from engines.formats.safe_read import CheckpointFileMissing, open_regular, read_open
from engines.formats.tfrecord import decode_records, encode_records

# A reader holds at most this many shard files open at once (docs/checkpoints.md, "Readers
# during a save"); the C++ reader's kOpenBatch is the same.
OPEN_BATCH = 64
# A read that finds the manifest replaced under it starts over, at most this many times.
READ_ATTEMPTS = 20

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
    """Where to read one shard, and what its manifest promises (None: no manifest).
    `fallback`: the final name, when `path` is a pending manifest's temporary (a save renames
    it there, possibly while it is being read)."""
    path: str
    size: int | None = None
    crc: int | None = None
    fallback: str | None = None


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
    return _shard_set(basename, manifest_snapshot(basename))


def _shard_set(basename: str, snapshot: bytes | None) -> ShardSet:
    directory, prefix = _split(basename)
    head = os.path.dirname(basename)
    manifest = parse_snapshot(snapshot, basename)
    if manifest is not None:
        files = []
        for s in manifest.shards:
            final = os.path.join(head, s.name)
            if manifest.pending and os.path.lexists(os.path.join(directory, s.temp)):
                # not renamed yet: the new set's copy (or, once renamed, the final name)
                files.append(ShardFile(os.path.join(head, s.temp), s.size, s.crc, final))
            else:
                files.append(ShardFile(final, s.size, s.crc))
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


Shards = Iterator[tuple[ShardFile, list[bytes]]]
T = TypeVar("T")


def read_shard_set(basename: str, parse: Callable[[ShardSet, Shards], T]) -> T:
    """parse(shard_set, shards) on one committed version of basename's checkpoint, whatever
    another process saves meanwhile. `shards` yields (the file read, its records) in shard
    order, each file checked: a regular file of the manifest's size, every record's CRCs,
    then the whole file's CRC32C against the manifest's.

    Files are opened (in groups of OPEN_BATCH) before they are read, so their bytes are the
    ones they had when opened. When anything fails (in parse too) and the manifest is no
    longer the one the set came from, a save replaced the checkpoint meanwhile: the read
    starts over with the new manifest, at most READ_ATTEMPTS times. When it is still the same
    manifest, the checkpoint itself is at fault and the error is raised."""
    last = None
    for _ in range(READ_ATTEMPTS):
        snapshot = manifest_snapshot(basename)
        try:
            shard_set = _shard_set(basename, snapshot)
            with contextlib.closing(_pinned_shards(basename, shard_set)) as shards:
                return parse(shard_set, shards)
        except CheckpointError as exc:
            if _same_manifest(basename, snapshot):
                raise
            last = exc
    raise CheckpointError(f"{basename}: the checkpoint was replaced {READ_ATTEMPTS} times while "
                          f"it was read (another process keeps saving it); the last attempt "
                          f"failed with: {last}")


def _same_manifest(basename: str, snapshot: bytes | None) -> bool:
    try:
        return manifest_snapshot(basename) == snapshot
    except CheckpointError:
        return False          # unreadable now: the next attempt reports it


def _open_shard(shard: ShardFile) -> tuple[int, int, str]:
    """(descriptor, size, the path opened) of a shard: a pending temporary, or, once the save
    renamed it, its final name."""
    try:
        return (*open_regular(shard.path, shard.size), shard.path)
    except CheckpointFileMissing:
        if shard.fallback is None:
            raise
    return (*open_regular(shard.fallback, shard.size), shard.fallback)


def _pinned_shards(basename: str, shard_set: ShardSet) -> Shards:
    files = shard_set.files
    for start in range(0, len(files), OPEN_BATCH):
        batch = files[start:start + OPEN_BATCH]
        opened: list = []
        try:
            for shard in batch:
                opened.append(_open_shard(shard))
            if not shard_set.from_manifest and os.path.lexists(manifest_path(basename)):
                # A save wrote its manifest (before it renames anything): start over with it.
                raise CheckpointError(f"{manifest_path(basename)} appeared while the "
                                      f"checkpoint was read")
            for k, shard in enumerate(batch):
                fd, size, path = opened[k]
                try:
                    data = read_open(fd, size, path)
                finally:
                    opened[k] = None
                    os.close(fd)
                yield ShardFile(path, shard.size, shard.crc), _records(data, path, shard.crc)
        finally:
            for item in opened:
                if item is not None:
                    os.close(item[0])


def _records(data: bytearray, path: str, crc: int | None) -> list[bytes]:
    records = decode_records(data, path)
    if crc is not None and _crc32c.crc32c(data) != crc:
        raise CheckpointError(f"{path}: CRC32C differs from the checkpoint manifest's "
                              f"(a foreign or modified shard)")
    return records


def read_shards(basename: str) -> list[list[bytes]]:
    """The records of every shard, in shard order, of one committed version (read_shard_set);
    every file is read and checked first."""
    return read_shard_set(basename, lambda _, shards: [records for _, records in shards])


# ---- writing -----------------------------------------------------------------------------

def _list_for_save(directory: str) -> list[str]:
    """The directory's names; a save that cannot list them (to clean up an older save's
    files) refuses before it writes anything."""
    try:
        return os.listdir(directory)
    except OSError as e:
        raise OSError(e.errno, f"cannot list directory {directory}: {e.strerror}") from None


def _current_manifest(basename: str) -> Manifest | None:
    try:
        return read_manifest(basename)
    except CheckpointError:
        return None                                  # unreadable: it names nothing to keep


def _remove_leftovers(names: list[str], directory: str, prefix: str, keep: set[str]) -> None:
    """Delete hidden temporaries of this basename left by a killed save, except those a
    pending manifest names (`keep`: they may hold the only copy of the checkpoint until the
    new manifest replaces it)."""
    for name in sorted(names):
        target = temp_target(name) if name.startswith("." + prefix) else None
        if target is None or name in keep:
            continue
        if target == prefix + ".manifest" or parse_shard_name(target, prefix) is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, name))


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


def _check_final_names(directory: str, staged: list[ManifestShard]) -> None:
    """Before the commit: the renames after it must not fail on a directory in the way."""
    for s in staged:
        path = os.path.join(directory, s.name)
        if os.path.isdir(path) and not os.path.islink(path):
            raise IsADirectoryError(21, f"cannot save shard {s.name}: a directory has its name",
                                    path)


def write_shards(basename: str, shard_payloads: list[list[bytes]]) -> list[str]:
    """Write shard i's records as basename-i-of-n with the manifest protocol
    (docs/checkpoints.md, "Save"); returns the shard paths in order.

    The commit point is the rename of the pending manifest. Any error before it removes every
    file this save wrote, leaves the previous checkpoint untouched and is raised. After it the
    new set is the checkpoint and the save succeeds: a failed clean-up step (a rename into
    place, removing an older save's files, the committed manifest) is a CheckpointWarning,
    and a manifest left pending still names where every shard is."""
    n = len(shard_payloads)
    if not 1 <= n <= MAX_SHARDS:
        raise ValueError(f"nshards: shard count must be in [1, {MAX_SHARDS}], got {n}")
    directory, prefix = _split(basename)
    os.makedirs(directory, exist_ok=True)
    names = _list_for_save(directory)
    current = _current_manifest(basename)
    kept = {s.temp for s in current.shards} if current is not None and current.pending else set()
    _remove_leftovers(names, directory, prefix, kept)
    generation = next_generation(current)
    staged: list[ManifestShard] = []
    try:
        for i, records in enumerate(shard_payloads):
            name = prefix + shard_suffix(i, n)
            temp = f".{name}.tmp-{secrets.token_hex(8)}"
            data = encode_records(records)
            _write_new_file(os.path.join(directory, temp), data)
            staged.append(ManifestShard(name, len(data), _crc32c.crc32c(data), temp))
        _check_final_names(directory, staged)
        fsync_dir(directory)                     # the temporaries are durable before the commit
        # The commit point: once this rename happened, the new set is the checkpoint.
        write_file_atomic(manifest_path(basename),
                          manifest_bytes(Manifest(True, tuple(staged), generation)),
                          sync_dir=False)
    except BaseException:
        for s in staged:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(directory, s.temp))
        raise
    _after_commit(basename, directory, prefix, staged, generation, kept)
    return [shard_name(basename, i, n) for i in range(n)]


def _after_commit(basename: str, directory: str, prefix: str, staged: list[ManifestShard],
                  generation: int, superseded: set[str]) -> None:
    """Steps 5-7 of a save (docs/checkpoints.md): every failure here is a warning."""
    problems = []

    def attempt(what: str, step, missing_ok: bool = False) -> bool:
        try:
            step()
        except FileNotFoundError:
            if not missing_ok:
                problems.append(f"{what}: not found")
                return False
        except OSError as e:
            problems.append(f"{what}: {e.strerror or e}")
            return False
        return True

    # The commit must be durable before any final name changes (else a power loss could keep
    # the renames and lose the manifest that names their CRCs).
    renamed = attempt("fsync the directory after the commit", lambda: fsync_dir(directory))
    if renamed:
        for s in staged:
            renamed &= attempt(f"rename {s.temp} to {s.name}", lambda s=s: os.replace(
                os.path.join(directory, s.temp), os.path.join(directory, s.name)))
    n = len(staged)
    try:
        stale = [name for name in os.listdir(directory)
                 if (parse_shard_name(name, prefix) or (0, n))[1] != n]   # another count's set
    except OSError as e:
        stale = []
        problems.append(f"list the directory for an older save's shards: {e.strerror or e}")
    for name in sorted(stale) + sorted(superseded):   # + an earlier pending manifest's temps
        attempt(f"remove {name}", lambda name=name: os.remove(os.path.join(directory, name)),
                missing_ok=True)
    committed = renamed and attempt("fsync the directory", lambda: fsync_dir(directory)) and \
        attempt("write the committed manifest", lambda: write_file_atomic(
            manifest_path(basename), manifest_bytes(Manifest(False, tuple(staged), generation))))
    if problems:
        pending = "" if committed else (
            "; the manifest stays pending and names where each new shard is (restore reads "
            "them; the next save finishes the job)")
        warnings.warn(CheckpointWarning(
            f"{basename}: saved (the new checkpoint is committed), but a step after the "
            f"commit failed: {'; '.join(problems)}{pending}"), stacklevel=3)
