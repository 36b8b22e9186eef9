"""Crash-safe file replacement: a reader sees the old file or the complete new one, never a part."""
from __future__ import annotations

import contextlib
import os
import secrets


def write_file_atomic(path: str, data: bytes) -> None:
    """Write data to path via a hidden temp file in the same directory, fsync, rename, fsync dir.

    The temp name starts with '.', so shard globs (`basename-*`) never see it. On any error the
    temp file is removed and whatever was at `path` before is left untouched.
    """
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{name}.tmp-{secrets.token_hex(8)}")
    try:
        # O_EXCL: never clobber a file that happens to have the temp name.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    fsync_dir(directory)


def fsync_dir(directory: str) -> None:
    """Make renames and removals in directory durable (no-op where directories cannot be opened)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:
        if os.name == "nt":  # Windows cannot open directories; rename durability is the FS's job
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
