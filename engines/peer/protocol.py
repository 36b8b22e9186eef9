"""The pipe protocol between a peer engine ("tfra", "torchrec") and its worker process.

One frame = `uint64 LE body length` + body; body = `uint32 LE header length` + UTF-8 JSON
header + the raw bytes of the frame's arrays, back to back. The header carries
`{"v": PROTOCOL_VERSION, "op": ..., "id": request id, "args": {...}, "arrays": [{"name",
"dtype", "shape"}...]}`; a reply repeats op and id and adds `"ok"` (and `"error"` with the
worker's message and traceback when not ok) and `"seconds"` (worker-side time of the op).

This module imports only the standard library and numpy: a worker loads it by file path inside
its peer's venv (the TFRA venv has numpy 1.26 and no access to our package).
"""
from __future__ import annotations

import json
import os
import selectors
import struct
import time

import numpy as np

PROTOCOL_VERSION = 1
_LEN = struct.Struct("<Q")
_HLEN = struct.Struct("<I")
MAX_FRAME = 1 << 34          # 16 GiB: anything larger is a corrupt length, not a real frame


class ProtocolError(RuntimeError):
    """A malformed frame, a protocol version mismatch or an unexpected reply."""


class WorkerDied(RuntimeError):
    """The worker process exited or stopped answering."""


class WorkerError(RuntimeError):
    """The worker ran the request and it failed; the message is the worker's."""


def encode(header: dict, arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """A whole frame for header plus named arrays (any dtype numpy can name, any shape)."""
    header = dict(header)
    header.setdefault("v", PROTOCOL_VERSION)
    specs, blobs = [], []
    for name, arr in (arrays or {}).items():
        arr = np.asarray(arr)
        arr = arr if arr.flags.c_contiguous else arr.copy(order="C")   # keeps 0-d shapes
        if arr.dtype.hasobject:
            raise ProtocolError(f"array {name!r}: object arrays cannot be sent")
        specs.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape)})
        blobs.append(arr.tobytes())
    header["arrays"] = specs
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    body_len = _HLEN.size + len(head) + sum(len(b) for b in blobs)
    return b"".join([_LEN.pack(body_len), _HLEN.pack(len(head)), head, *blobs])


def decode(body: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, arrays) of one frame body (the bytes after the length prefix)."""
    if len(body) < _HLEN.size:
        raise ProtocolError(f"frame body of {len(body)} bytes has no header length")
    (hlen,) = _HLEN.unpack_from(body, 0)
    end = _HLEN.size + hlen
    if end > len(body):
        raise ProtocolError(f"header length {hlen} exceeds the frame ({len(body)} bytes)")
    try:
        header = json.loads(body[_HLEN.size:end].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"unreadable frame header: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not a JSON object")
    arrays, pos = {}, end
    for spec in header.get("arrays", []):
        dtype = np.dtype(spec["dtype"])
        shape = tuple(int(s) for s in spec["shape"])
        nbytes = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        if pos + nbytes > len(body):
            raise ProtocolError(f"array {spec['name']!r} runs past the end of the frame")
        arrays[spec["name"]] = np.frombuffer(body, dtype, int(np.prod(shape, dtype=np.int64)),
                                             pos).reshape(shape).copy()
        pos += nbytes
    if pos != len(body):
        raise ProtocolError(f"{len(body) - pos} stray bytes after the frame's arrays")
    return header, arrays


def check_version(header: dict) -> None:
    if header.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version mismatch: this side speaks {PROTOCOL_VERSION}, "
                            f"the other sent {header.get('v')!r}")


def write_frame(fd: int, header: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
    data = memoryview(encode(header, arrays))
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _read_exact(fd: int, n: int, deadline: float | None, alive) -> bytes:
    """n bytes from fd. With a deadline, waits in short slices and asks `alive()` between
    them, so a dead or hung peer is reported instead of blocking forever."""
    chunks, left = [], n
    sel = selectors.DefaultSelector() if deadline is not None else None
    try:
        if sel is not None:
            sel.register(fd, selectors.EVENT_READ)
        while left:
            if sel is not None:
                if not sel.select(timeout=0.05):
                    if alive is not None and not alive():
                        raise WorkerDied("the worker process exited")
                    if time.monotonic() > deadline:
                        raise WorkerDied("the worker did not answer in time")
                    continue
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise WorkerDied("the other side closed the pipe")
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        if sel is not None:
            sel.close()
    return b"".join(chunks)


def read_frame(fd: int, timeout: float | None = None, alive=None) -> tuple[dict, dict]:
    """One frame from fd: (header, arrays). timeout=None blocks (the worker's side)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    (length,) = _LEN.unpack(_read_exact(fd, _LEN.size, deadline, alive))
    if length > MAX_FRAME:
        raise ProtocolError(f"frame length {length} is not plausible (corrupt stream?)")
    return decode(_read_exact(fd, length, deadline, alive))
