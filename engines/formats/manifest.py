"""`basename.manifest`: the list of a shard set's files with their sizes and CRC32Cs, the commit
point of a save (docs/checkpoints.md, "The manifest").

    hashlab-checkpoint-manifest 2
    state committed                      (or: pending)
    generation 7                         (the save's number: the previous manifest's + 1)
    shards 2
    shard 0 t-00000-of-00002 1234 0a1b2c3d
    shard 1 t-00001-of-00002 987 00ff00ff   (pending: a sixth field, the temporary name)

Version 1 (written before generations existed) has no generation line and is still read, as
generation 0. The C++ codec (engines/native/src/checkpoint_files.cc) writes and parses the
same text byte for byte; parsing is strict, and anything else is a CheckpointError.
"""
from __future__ import annotations

import dataclasses
import os
import re

from engines.errors import CheckpointError
from engines.formats.safe_read import read_regular_file

HEADER = "hashlab-checkpoint-manifest 2"
HEADER_V1 = "hashlab-checkpoint-manifest 1"   # read only: no generation line
SUFFIX = ".manifest"
MAX_BYTES = 16 << 20
MAX_SHARDS = 99_999  # the -%05d-of-%05d name cannot express more

_SHARD_SUFFIX = re.compile(r"-([0-9]{5})-of-([0-9]{5})")
_TEMP_TAIL = re.compile(r"\.tmp-[0-9a-f]{16}")
_CRC = re.compile(r"[0-9a-f]{8}")


@dataclasses.dataclass(frozen=True)
class ManifestShard:
    name: str          # the final file name, in the manifest's directory
    size: int
    crc: int           # unmasked CRC32C of the whole file
    temp: str = ""     # the hidden temporary name (pending manifests only)


@dataclasses.dataclass(frozen=True)
class Manifest:
    pending: bool
    shards: tuple[ManifestShard, ...]
    generation: int = 0   # the save that wrote it: its predecessor's generation + 1


def next_generation(current: Manifest | None) -> int:
    """The generation of a save that replaces `current` (None: no readable manifest)."""
    return 1 if current is None or current.generation >= (1 << 64) - 1 else \
        current.generation + 1


def manifest_path(basename: str) -> str:
    return basename + SUFFIX


def shard_suffix(i: int, n: int) -> str:
    return f"-{i:05d}-of-{n:05d}"


def parse_shard_name(name: str, prefix: str) -> tuple[int, int] | None:
    """(i, n) when `name` is exactly `<prefix>-NNNNN-of-MMMMM`, else None."""
    if not name.startswith(prefix):
        return None
    m = _SHARD_SUFFIX.fullmatch(name, len(prefix))
    return (int(m.group(1)), int(m.group(2))) if m else None


def temp_target(name: str) -> str | None:
    """The file a hidden temporary `.<target>.tmp-<16 hex digits>` stands for, else None."""
    if not name.startswith("."):
        return None
    tail = name.rfind(".tmp-")
    if tail <= 0 or not _TEMP_TAIL.fullmatch(name, tail):
        return None
    return name[1:tail]


def manifest_bytes(m: Manifest) -> bytes:
    lines = [HEADER, "state pending" if m.pending else "state committed",
             f"generation {m.generation}", f"shards {len(m.shards)}"]
    for i, s in enumerate(m.shards):
        line = f"shard {i} {s.name} {s.size} {s.crc:08x}"
        lines.append(line + f" {s.temp}" if m.pending else line)
    # File names are the file system's bytes (UTF-8), the rest is ASCII.
    return os.fsencode("".join(line + "\n" for line in lines))


def _number(word: str) -> int | None:
    """A decimal uint64 without sign or leading zeros, else None."""
    if not word or len(word) > 20 or not word.isascii() or not word.isdigit():
        return None
    if len(word) > 1 and word[0] == "0":
        return None
    value = int(word)
    return value if value < 1 << 64 else None


def parse_manifest(data: bytes, prefix: str, path: str) -> Manifest:
    """The manifest in `data` (of the basename whose file-name part is `prefix`), checked
    strictly; CheckpointError "<path>: not a valid checkpoint manifest: <what>" otherwise."""
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path}: not a valid checkpoint manifest: {what}")

    text = os.fsdecode(bytes(data))
    if not text.endswith("\n"):
        raise bad("it must end with a newline")
    lines = text[:-1].split("\n")
    if not lines or lines[0] not in (HEADER, HEADER_V1):
        raise bad(f"the first line must be '{HEADER}' (or version 1's '{HEADER_V1}')")
    head = 3 if lines[0] == HEADER_V1 else 4          # lines before the shard lines
    if len(lines) < head:
        raise bad(f"it ends after line {len(lines)}")
    if lines[1] not in ("state pending", "state committed"):
        raise bad("line 2 must be 'state committed|pending'")
    pending = lines[1] == "state pending"
    generation = 0
    if head == 4:
        words = lines[2].split(" ")
        generation = _number(words[1]) if len(words) == 2 and words[0] == "generation" \
            else None
        if not generation:
            raise bad("line 3 must be 'generation <1..2^64-1>'")
    count = lines[head - 1].split(" ")
    n = _number(count[1]) if len(count) == 2 and count[0] == "shards" else None
    if n is None or not 1 <= n <= MAX_SHARDS:
        raise bad(f"line {head} must be 'shards <1..{MAX_SHARDS}>'")
    if len(lines) != head + n:
        raise bad(f"it lists {len(lines) - head} shard lines for {n} shards")
    shards = []
    for i in range(n):
        words = lines[head + i].split(" ")
        where = f"shard line {i}"
        if len(words) != (6 if pending else 5) or words[0] != "shard":
            raise bad(f"{where} is malformed")
        if _number(words[1]) != i:
            raise bad(f"{where} is out of order")
        name = words[2]
        if parse_shard_name(name, prefix) != (i, n):
            raise bad(f"{where}: '{name}' is not shard {i} of {n} of {prefix}")
        size = _number(words[3])
        if size is None:
            raise bad(f"{where}: bad size")
        if not _CRC.fullmatch(words[4]):
            raise bad(f"{where}: bad crc32c")
        temp = ""
        if pending:
            temp = words[5]
            if temp_target(temp) != name or not temp.startswith(f".{name}.tmp-"):
                raise bad(f"{where}: bad temporary name '{temp}'")
        shards.append(ManifestShard(name, size, int(words[4], 16), temp))
    return Manifest(pending, tuple(shards), generation)


def manifest_snapshot(basename: str) -> bytes | None:
    """The bytes of basename's manifest, or None when there is none (a manifest-less
    checkpoint). A reader keeps them to tell whether a save replaced the manifest while it
    read the shards (docs/checkpoints.md, "Readers during a save")."""
    path = manifest_path(basename)
    try:
        os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot stat checkpoint manifest: "
                              f"{e.strerror or e}") from None
    return bytes(read_regular_file(path, max_size=MAX_BYTES, what="checkpoint manifest"))


def parse_snapshot(snapshot: bytes | None, basename: str) -> Manifest | None:
    if snapshot is None:
        return None
    return parse_manifest(snapshot, os.path.basename(basename), manifest_path(basename))


def read_manifest(basename: str) -> Manifest | None:
    """basename's manifest, or None when there is none (a manifest-less checkpoint)."""
    return parse_snapshot(manifest_snapshot(basename), basename)
