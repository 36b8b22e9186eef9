"""Feature-id slot extraction (core §5.2): fid v2 (15-bit slot in bits 48..62, used by TTL and
the hash filter) and fid v1 (10-bit slot in bits 54..63)."""
from __future__ import annotations

import numpy as np

from engines.protos.embedding_hash_table_pb2 import EntryDump


def slots(ids, fid_version: int = 2) -> np.ndarray:
    """int64 slot of every id."""
    u = np.asarray(ids, dtype=np.int64).view(np.uint64)
    if fid_version == 1:
        return (u >> np.uint64(54)).astype(np.int64)
    if fid_version == 2:
        return ((u >> np.uint64(48)) & np.uint64(0x7FFF)).astype(np.int64)
    raise ValueError(f"fid_version must be 1 or 2, got {fid_version!r}")


def extract_slot_from_entry(entries, fid_v2: bool = True) -> np.ndarray:
    """Monolith's extract_slot_from_entry op: the int32 slot of each serialized EntryDump's id.
    An unparsable entry counts as id 0 (Monolith only logs a warning there)."""
    out = np.zeros(len(entries), np.int32)
    for i, raw in enumerate(entries):
        try:
            entry_id = EntryDump.FromString(raw).id
        except Exception:
            entry_id = 0
        out[i] = slots(np.array([entry_id], np.int64), 2 if fid_v2 else 1)[0]
    return out
