"""Comparison helpers for the cross-engine conformance tests: EntryDump bytes decoded with
protobuf and compared field by field, floats within an ulp bound (docs/semantics.md §4),
everything else exact."""
from __future__ import annotations

import numpy as np

from engines.protos import embedding_hash_table_pb2 as pb
from engines.ulp import ulp_distance

MAX_ULP = 4
ABS_FLOOR = 1e-12


def assert_floats_close(a, b, what: str, max_ulp: int = MAX_ULP) -> None:
    a = np.asarray(a, np.float32).reshape(-1)
    b = np.asarray(b, np.float32).reshape(-1)
    assert a.shape == b.shape, f"{what}: {a.shape} values vs {b.shape}"
    ulp = ulp_distance(a, b)
    tiny = np.abs(a.astype(np.float64) - b.astype(np.float64)) <= ABS_FLOOR
    bad = (ulp > max_ulp) & ~tiny
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise AssertionError(f"{what}[{i}]: {a[i]!r} vs {b[i]!r} ({ulp[i]:.0f} ulp)")


def _message_fields(msg, prefix):
    """(name, kind, value) for every set field of msg, recursing into sub-messages."""
    out = []
    for field, value in msg.ListFields():
        name = f"{prefix}.{field.name}"
        if field.type == field.TYPE_MESSAGE:
            items = value if field.is_repeated else [value]
            out.append((name + "#count", "exact", len(items)))
            for k, item in enumerate(items):
                out.extend(_message_fields(item, f"{name}[{k}]"))
        elif field.type == field.TYPE_FLOAT:
            out.append((name, "float", list(value) if field.is_repeated else [value]))
        else:
            out.append((name, "exact", list(value) if field.is_repeated else value))
    return out


def assert_dumps_close(a: bytes, b: bytes, what: str, max_ulp: int = MAX_ULP) -> None:
    """Two serialized EntryDumps: same fields, floats within max_ulp, the rest exact."""
    if a == b:
        return
    assert (a == b"") == (b == b""), f"{what}: one entry is missing ({a!r} vs {b!r})"
    da, db = pb.EntryDump.FromString(a), pb.EntryDump.FromString(b)
    fa, fb = _message_fields(da, "entry"), _message_fields(db, "entry")
    assert [(n, k) for n, k, _ in fa] == [(n, k) for n, k, _ in fb], \
        f"{what}: different fields\n{da}\nvs\n{db}"
    for (name, kind, va), (_, _, vb) in zip(fa, fb):
        if kind == "float":
            assert_floats_close(va, vb, f"{what}: {name}", max_ulp)
        else:
            assert va == vb, f"{what}: {name}: {va} vs {vb}"
