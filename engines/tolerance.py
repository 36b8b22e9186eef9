"""The tolerance policy of docs/semantics.md §4, written once: the conformance suite
(engines.testing.compare) and the lab's parity reports (lab.parity.compare, lab.report) both
read it from here.

- Storage ops (assign, lookup, checkpoints) agree bit for bit.
- Once optimizer math touched a table, floats may differ by at most MAX_ULP ulps; absolute
  differences up to ABS_FLOOR always pass (next to zero a tiny value is many ulps from 0).
- Everything else (ids, counts, timestamps, layouts) is exact.

Serialized EntryDumps are compared field by field: `message_fields` walks a protobuf message
into (field path, kind, values), so a legal ulp difference in one float is told apart from a
wrong id, count or layout.
"""
from __future__ import annotations

import numpy as np
from google.protobuf.descriptor import FieldDescriptor

from engines.ulp import ulp_distance

MAX_ULP = 4
ABS_FLOOR = 1e-12
FLOAT, EXACT = "float", "exact"
_FLOAT_TYPES = (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE)


def within_ulps(actual, expected, max_ulp: float = MAX_ULP, abs_floor: float = ABS_FLOOR,
                max_rel: float | None = None) -> np.ndarray:
    """Elementwise: at most `max_ulp` float32 ulps apart, or within `abs_floor` absolutely, or
    (when given) within `max_rel` of the expected value's magnitude."""
    a = np.asarray(actual, dtype=np.float32)
    e = np.asarray(expected, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        diff = np.abs(a.astype(np.float64) - e.astype(np.float64))
        close = diff <= abs_floor
        if max_rel is not None:
            close |= diff <= max_rel * np.abs(e.astype(np.float64))
    return (ulp_distance(a, e) <= max_ulp) | close


def is_repeated(field) -> bool:
    """Whether a protobuf field is repeated, on every protobuf runtime we support
    (FieldDescriptor.label is gone in protobuf 7; is_repeated is missing from old ones)."""
    flag = getattr(field, "is_repeated", None)
    return flag if flag is not None else field.label == FieldDescriptor.LABEL_REPEATED


def message_fields(msg, prefix: str = "entry") -> list[tuple[str, str, object]]:
    """(field path, FLOAT or EXACT, value) for every set field of msg, recursing into
    sub-messages: a message field gives its element count ("path#count", EXACT) and then the
    fields of each element ("path[k].field"); float fields give a list of their values."""
    out = []
    for field, value in msg.ListFields():
        name = f"{prefix}.{field.name}"
        items = list(value) if is_repeated(field) else [value]
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            out.append((name + "#count", EXACT, len(items)))
            for k, item in enumerate(items):
                out.extend(message_fields(item, f"{name}[{k}]"))
        elif field.type in _FLOAT_TYPES:
            out.append((name, FLOAT, items))
        else:
            out.append((name, EXACT, items if is_repeated(field) else value))
    return out
