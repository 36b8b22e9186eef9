"""Reading a checkpoint file without trusting it: regular files only, never more bytes than the
file really has.

A FIFO, device, socket or directory is refused before a single byte is read; the file is
opened with O_NONBLOCK, so a FIFO never blocks the open waiting for a writer, and a symlink to
/dev/zero is judged by what it points to (a character device). Sizes are taken from fstat of
the open file, and a size the caller expects (a manifest's) is checked before anything is
allocated.
"""
from __future__ import annotations

import os
import stat

from engines.errors import CheckpointError


class CheckpointFileMissing(CheckpointError):
    """The file is not there (a reader may then look under another name)."""


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) \
    | getattr(os, "O_BINARY", 0)


def read_regular_file(path: str, expected_size: int | None = None,
                      max_size: int | None = None, what: str = "checkpoint file") -> bytearray:
    """The bytes of the regular file at path; CheckpointError naming it when it is missing,
    unreadable, not a regular file, not `expected_size` bytes long, or over `max_size`."""
    fd, size = open_regular(path, expected_size, max_size, what)
    try:
        return _read_exactly(fd, size, path, what)
    finally:
        os.close(fd)


def open_regular(path: str, expected_size: int | None = None, max_size: int | None = None,
                 what: str = "checkpoint file") -> tuple[int, int]:
    """(an open descriptor, its size) of the regular file at path, with the checks of
    read_regular_file; the caller reads it with read_open and closes it. An open file keeps
    the bytes it had when it was opened, whatever is renamed over its name afterwards."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise CheckpointFileMissing(f"{path}: {what} not found") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read {what}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CheckpointError(f"{path}: not a regular file (a directory, FIFO, socket or "
                                  f"device cannot be a {what})")
        size = st.st_size
        if expected_size is not None and size != expected_size:
            raise CheckpointError(f"{path}: {size} bytes, the checkpoint manifest says "
                                  f"{expected_size} (a foreign, truncated or partly written "
                                  f"shard)")
        if max_size is not None and size > max_size:
            raise CheckpointError(f"{path}: {size} bytes is too large for a {what}")
    except BaseException:
        os.close(fd)
        raise
    return fd, size


def read_open(fd: int, size: int, path: str, what: str = "checkpoint file") -> bytearray:
    """The `size` bytes of a descriptor from open_regular (which the caller still closes)."""
    return _read_exactly(fd, size, path, what)


def _read_exactly(fd: int, size: int, path: str, what: str) -> bytearray:
    # Exactly the size fstat reported: a file that grows while it is read cannot make us
    # allocate more than we checked.
    buf = bytearray(size)
    view = memoryview(buf)
    at = 0
    while at < size:
        try:
            got = os.readv(fd, [view[at:]]) if hasattr(os, "readv") else _read_into(fd, view[at:])
        except InterruptedError:
            continue
        except OSError as e:
            raise CheckpointError(f"{path}: cannot read {what}: {e.strerror or e}") from None
        if got == 0:
            raise CheckpointError(f"{path}: the file shrank while it was read")
        at += got
    return buf


def _read_into(fd: int, view: memoryview) -> int:
    chunk = os.read(fd, len(view))
    view[:len(chunk)] = chunk
    return len(chunk)
