"""TFRecord framing (TensorFlow `io::RecordWriter`, uncompressed), as Monolith's checkpoints use.

Each record: uint64 LE length, uint32 LE masked CRC32C of those 8 bytes, payload, uint32 LE
masked CRC32C of the payload. No file header or footer; an empty stream is a 0-byte file.
Readers verify both CRCs and treat any truncation as corruption, never as a short read.
"""
from __future__ import annotations

import struct
from typing import Iterable

import crc32c as _crc32c

from engines.errors import CheckpointError
from engines.formats.safe_read import read_regular_file

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")   # length, masked CRC of the length bytes
_FOOTER = struct.Struct("<I")    # masked CRC of the payload


def masked_crc(data: bytes) -> int:
    """CRC32C (Castagnoli) of data, rotated right by 15 bits plus a constant, as TFRecord stores it.

    The mask keeps a CRC computed over data that itself contains CRCs from being trivially zero.
    """
    c = _crc32c.crc32c(data)
    return (((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    """One record: header, payload, footer."""
    length = struct.pack("<Q", len(payload))
    return b"".join((length, struct.pack("<I", masked_crc(length)), payload,
                     _FOOTER.pack(masked_crc(payload))))


def encode_records(records: Iterable[bytes]) -> bytes:
    """The concatenated frames of records, in order."""
    return b"".join(frame(r) for r in records)


def decode_records(data: bytes, path: str) -> list[bytes]:
    """All payloads of a TFRecord stream, every CRC checked.

    Raises CheckpointError "<path>: record <i>: <what>" on a truncated header, payload or footer
    and on a length or payload CRC mismatch. `path` only labels the messages.
    """
    view = memoryview(data)
    end = len(view)
    out = []
    pos = 0
    while pos < end:
        if end - pos < _HEADER.size:
            raise _corrupt(path, len(out), pos, f"truncated header ({end - pos} of {_HEADER.size} bytes)")
        length, length_crc = _HEADER.unpack_from(view, pos)
        # Check the length's CRC before trusting it: a flipped bit must not look like truncation.
        if masked_crc(view[pos:pos + 8]) != length_crc:
            raise _corrupt(path, len(out), pos, "length CRC mismatch")
        start = pos + _HEADER.size
        if end - start < length:
            raise _corrupt(path, len(out), pos, f"truncated payload ({end - start} of {length} bytes)")
        stop = start + length
        if end - stop < _FOOTER.size:
            raise _corrupt(path, len(out), pos, f"truncated footer ({end - stop} of {_FOOTER.size} bytes)")
        payload = view[start:stop]
        if masked_crc(payload) != _FOOTER.unpack_from(view, stop)[0]:
            raise _corrupt(path, len(out), pos, "payload CRC mismatch")
        out.append(bytes(payload))
        pos = stop + _FOOTER.size
    return out


def _corrupt(path: str, index: int, offset: int, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: record {index}: {what} (record starts at byte {offset})")


def read_records(path: str) -> list[bytes]:
    """decode_records of a whole file; a missing, unreadable or non-regular file is a
    CheckpointError."""
    return decode_records(read_regular_file(path), path)
