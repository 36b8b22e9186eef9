"""Compare one op's outputs (engine vs reference) under the tolerance policy.

Policy (docs/semantics.md §4, engines.tolerance): storage ops are exact, bit for bit; once
optimizer math has touched a table, its floats may differ by at most `max_ulp` ulps (default
engines.tolerance.MAX_ULP; absolute differences up to `abs_floor` always pass). Integers
(sizes, offsets, ids, timestamps) are exact in every mode. Serialized entries and checkpoint files are compared as bytes first; if
the bytes differ they are decoded and compared field by field, so a legal ulp difference in
one float is told apart from a wrong id, count or layout.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from engines import tolerance
from lab.parity.ulp import ErrorStats, error_stats

EXACT, ULP = "exact", "ulp"


@dataclasses.dataclass(frozen=True)
class Policy:
    max_ulp: float = tolerance.MAX_ULP
    abs_floor: float = tolerance.ABS_FLOOR
    max_rel: float | None = None      # a known divergence's relative bound (engines.Divergence)


@dataclasses.dataclass(frozen=True)
class Verdict:
    ok: bool
    stats: ErrorStats = ErrorStats()
    note: str = ""


def _floats(actual, expected, mode, policy, what) -> Verdict:
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape:
        return Verdict(False, note=f"{what}: shape {a.shape} != reference {e.shape}")
    a32, e32 = a.astype(np.float32), e.astype(np.float32)
    if np.array_equal(a32.view(np.uint32), e32.view(np.uint32)):
        return Verdict(True)       # bit-identical (the usual case): no error to measure
    stats = error_stats(a32, e32)
    if mode == EXACT:
        bad = a32.view(np.uint32) != e32.view(np.uint32)
        rule = "bit-exact"
    else:
        bad = ~tolerance.within_ulps(a32, e32, policy.max_ulp, policy.abs_floor,
                                     policy.max_rel)
        rule = f"<= {policy.max_ulp:g} ulp" + \
            (f" or {policy.max_rel:g} relative" if policy.max_rel is not None else "")
    if not bad.any():
        return Verdict(True, stats)
    first = np.unravel_index(np.flatnonzero(bad.reshape(-1))[0], a.shape) if a.ndim else ()
    return Verdict(False, stats, f"{what}: {int(bad.sum())} of {bad.size} values break "
                                 f"{rule}; first at {tuple(int(i) for i in first)}: "
                                 f"{a32[first]!r} vs reference {e32[first]!r}")


def _ints(actual, expected, what) -> Verdict:
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape == e.shape and np.array_equal(a, e):
        return Verdict(True)
    return Verdict(False, note=f"{what}: {a.tolist() if a.size < 12 else a.shape} != "
                               f"reference {e.tolist() if e.size < 12 else e.shape}")


def flatten_message(msg) -> tuple[list, list]:
    """(float values, every other field with its path) of a protobuf message, recursively
    (engines.tolerance.message_fields)."""
    floats, exact = [], []
    for name, kind, value in tolerance.message_fields(msg):
        if kind == tolerance.FLOAT:
            floats.extend(value)
        else:
            exact.append((name, value))
    return floats, exact


def _dumps(actual: list[bytes], expected: list[bytes], mode, policy, what) -> Verdict:
    from engines.protos.embedding_hash_table_pb2 import EntryDump
    if len(actual) != len(expected):
        return Verdict(False, note=f"{what}: {len(actual)} records != reference "
                                   f"{len(expected)}")
    if actual == expected:
        return Verdict(True)
    fa, fe = [], []
    for i, (a, e) in enumerate(zip(actual, expected)):
        if a == e:
            continue
        if not a or not e:
            return Verdict(False, note=f"{what}[{i}]: present in one, missing (b'') in the "
                                       f"other")
        try:
            da, de = flatten_message(EntryDump.FromString(a)), flatten_message(
                EntryDump.FromString(e))
        except Exception as exc:   # a record that does not parse is simply wrong
            return Verdict(False, note=f"{what}[{i}]: not a valid EntryDump: {exc}")
        if da[1] != de[1] or len(da[0]) != len(de[0]):
            return Verdict(False, note=f"{what}[{i}]: non-float fields or layout differ "
                                       f"(ids, timestamps, counts, optimizer kinds)")
        fa.extend(da[0])
        fe.extend(de[0])
    verdict = _floats(np.array(fa, np.float32), np.array(fe, np.float32), mode, policy,
                      f"{what} floats")
    if verdict.ok:
        return Verdict(True, verdict.stats, f"{what}: bytes differ, values within tolerance")
    return verdict


def _files(actual: dict, expected: dict, mode, policy) -> Verdict:
    from engines.formats.tfrecord import read_records
    if sorted(actual) != sorted(expected):
        return Verdict(False, note=f"checkpoint files {sorted(actual)} != reference "
                                   f"{sorted(expected)}")
    stats, notes = ErrorStats(), []
    for name in sorted(expected):
        (dig_a, path_a), (dig_e, path_e) = actual[name], expected[name]
        if dig_a == dig_e:
            continue
        try:
            recs_a = read_records(path_a)
        except Exception as exc:
            return Verdict(False, stats, f"{name}: unreadable: {exc}")
        verdict = _dumps(recs_a, read_records(path_e), mode, policy, name)
        stats = stats.worst(verdict.stats)
        if not verdict.ok:
            return Verdict(False, stats, verdict.note)
        notes.append(verdict.note)
    return Verdict(True, stats, "; ".join(notes))


def compare_outputs(actual: dict, expected: dict, mode: str, policy: Policy = Policy()
                    ) -> Verdict:
    """One verdict for all outputs of one op (worst error over every part)."""
    if sorted(actual) != sorted(expected):
        return Verdict(False, note=f"outputs {sorted(actual)} != reference {sorted(expected)}")
    stats, notes = ErrorStats(), []
    for key in sorted(expected):
        a, e = actual[key], expected[key]
        if key in ("embeddings", "grads"):
            v = _floats(a, e, mode, policy, key)
        elif key == "entries":
            v = _dumps(a, e, mode, policy, "lookup_entry")
        elif key == "files":
            v = _files(a, e, mode, policy)
        else:
            v = _ints(a, e, key)
        stats = stats.worst(v.stats)
        if not v.ok:
            return Verdict(False, stats, v.note)
        if v.note:
            notes.append(v.note)
    return Verdict(True, stats, "; ".join(notes))
