"""Comparison helpers for the cross-engine conformance tests: EntryDump bytes decoded with
protobuf and compared field by field, floats within the ulp bound of engines.tolerance
(docs/semantics.md §4), everything else exact."""
from __future__ import annotations

import numpy as np

from engines.protos import embedding_hash_table_pb2 as pb
from engines.tolerance import FLOAT, MAX_ULP, message_fields, within_ulps
from engines.ulp import ulp_distance


def assert_floats_close(a, b, what: str, max_ulp: int = MAX_ULP) -> None:
    a = np.asarray(a, np.float32).reshape(-1)
    b = np.asarray(b, np.float32).reshape(-1)
    assert a.shape == b.shape, f"{what}: {a.shape} values vs {b.shape}"
    bad = ~within_ulps(a, b, max_ulp)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        ulp = ulp_distance(a, b)
        raise AssertionError(f"{what}[{i}]: {a[i]!r} vs {b[i]!r} ({ulp[i]:.0f} ulp)")


def assert_dumps_close(a: bytes, b: bytes, what: str, max_ulp: int = MAX_ULP) -> None:
    """Two serialized EntryDumps: same fields, floats within max_ulp, the rest exact."""
    if a == b:
        return
    assert (a == b"") == (b == b""), f"{what}: one entry is missing ({a!r} vs {b!r})"
    da, db = pb.EntryDump.FromString(a), pb.EntryDump.FromString(b)
    fa, fb = message_fields(da), message_fields(db)
    assert [(n, k) for n, k, _ in fa] == [(n, k) for n, k, _ in fb], \
        f"{what}: different fields\n{da}\nvs\n{db}"
    for (name, kind, va), (_, _, vb) in zip(fa, fb):
        if kind == FLOAT:
            assert_floats_close(va, vb, f"{what}: {name}", max_ulp)
        else:
            assert va == vb, f"{what}: {name}: {va} vs {vb}"
