"""Engine-independent hash-filter pieces: the validated `FilterSpec` and the fixed filter hash.

Every engine builds its filters from a `FilterSpec` (made by `Engine.create_hash_filter`), and
every engine probes its count arrays with `filter_hash` (docs/semantics.md §1), so filter dumps
written by one engine or process restore into any other.
"""
from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from engines import validation as _v
from engines.formats.shards import MAX_SHARDS

MAX_SLOTS = 1 << 15           # fid-v2 slots: (fid >> 48) & 0x7FFF
# Elements per sliding-filter split at most (the native engines' kMaxSplitCapacity, filters.h):
# a split of 2**34 elements holds 1.2 * 2**34 two-byte cells, 41 GB.
MAX_SPLIT_CAPACITY = 1 << 34
MAX_COUNT = 15                # counts are 4 bits and saturate
INT32_MAX = (1 << 31) - 1
FILTER_HASH_SEED = 0x00007F1234567000
_ABSL_MUL = 0x9DDFEA08EB382D69
_M64 = (1 << 64) - 1
_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)

KINDS = ("sliding", "probabilistic", "dummy")
# Monolith's FilterType names (hash_filter_ops.py) -> ours.
KIND_ALIASES = {"sliding_hash_filter": "sliding", "probabilistic_filter": "probabilistic",
                "no_filter": "dummy"}


# ---- hashes --------------------------------------------------------------------------------

def filter_hash_int(fid: int) -> int:
    """absl's integer hash with the fixed seed: lo64(m) ^ hi64(m), m = (S + fid) * K (128-bit)."""
    m = ((FILTER_HASH_SEED + int(fid)) & _M64) * _ABSL_MUL
    return (m & _M64) ^ (m >> 64)


def filter_hash(fids) -> np.ndarray:
    """filter_hash_int elementwise: int64/uint64 array in, uint64 array out.

    numpy has no 128-bit product, so it is assembled from four 32x32->64-bit partial products.
    """
    a = _as_u64(fids) + np.uint64(FILTER_HASH_SEED)          # wraps mod 2^64
    a_lo, a_hi = a & _M32, a >> _S32
    b_lo, b_hi = np.uint64(_ABSL_MUL & 0xFFFFFFFF), np.uint64(_ABSL_MUL >> 32)
    ll, lh, hl, hh = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    mid = (ll >> _S32) + (lh & _M32) + (hl & _M32)          # < 3 * 2^32: no overflow
    lo = (ll & _M32) | (mid << _S32)
    hi = hh + (lh >> _S32) + (hl >> _S32) + (mid >> _S32)
    return lo ^ hi


def signature(fid):
    """The 12-bit cell signature: bits 17..28 of the id (int in, int out; array in, array out)."""
    if isinstance(fid, np.ndarray):
        return (_as_u64(fid) >> np.uint64(17)) & np.uint64(0xFFF)
    return ((int(fid) & _M64) >> 17) & 0xFFF


def slot_v2(fid):
    """The fid-v2 slot (uint64(fid) >> 48) & 0x7FFF (int in, int out; array in, array out)."""
    if isinstance(fid, np.ndarray):
        return (_as_u64(fid) >> np.uint64(48)) & np.uint64(0x7FFF)
    return ((int(fid) & _M64) >> 48) & 0x7FFF


def _as_u64(x) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == np.int64:
        return a.view(np.uint64)                            # two's complement reinterpretation
    if a.dtype == np.uint64:
        return a
    raise TypeError(f"fids must have dtype int64 or uint64, got {a.dtype}")


# ---- spec ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FilterSpec:
    """A validated filter configuration. Build it with `FilterSpec.build`.

    `thresholds[slot]` is the occurrence threshold of each of the 32768 fid-v2 slots (read-only
    int32); `slot_thresholds` is the canonical sorted (slot, threshold) form of the overrides,
    which is what equality and hashing use.
    """
    kind: str
    capacity: int
    split_num: int
    occurrence_threshold: int
    slot_thresholds: tuple[tuple[int, int], ...]
    equal_probability: bool
    seed: int
    thresholds: np.ndarray = dataclasses.field(compare=False, repr=False)

    def threshold_of(self, fid: int) -> int:
        return int(self.thresholds[slot_v2(fid)])

    @classmethod
    def build(cls, kind: str = "sliding", capacity: int = 300_000_000, split_num: int = 7,
              occurrence_threshold: int = 0, slot_occurrence_thresholds=None,
              equal_probability: bool = False, seed: int = 0) -> "FilterSpec":
        if not isinstance(kind, str):
            raise TypeError(f"kind must be a str, got {type(kind).__name__}")
        canonical = KIND_ALIASES.get(kind, kind)
        if canonical not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS) + list(KIND_ALIASES)}, "
                             f"got {kind!r}")
        capacity = _v.check_range(capacity, "capacity", 1, _v.MAX_INT64, "2**63 - 1")
        split_num = _v.check_int(split_num, "split_num")
        if split_num < 1:
            raise ValueError(f"split_num must be >= 1, got {split_num}")
        if canonical == "sliding":
            _check_sliding_sizes(capacity, split_num)
        default = _check_threshold(occurrence_threshold, "occurrence_threshold")
        default, overrides = _parse_slot_thresholds(slot_occurrence_thresholds, default)
        table = np.full(MAX_SLOTS, default, dtype=np.int32)
        for slot, thr in overrides.items():
            table[slot] = thr
        table.flags.writeable = False
        return cls(kind=canonical, capacity=capacity, split_num=split_num,
                   occurrence_threshold=default, slot_thresholds=tuple(sorted(overrides.items())),
                   equal_probability=_v.check_bool(equal_probability, "equal_probability"),
                   seed=_v.check_int(seed, "seed") & _M64, thresholds=table)


def sliding_split_capacity(capacity: int, split_num: int) -> int:
    """Elements per split of SlidingHashFilter(capacity, split_num) (fsf §A.4)."""
    return max(capacity, 300) // (max(split_num, 5) - 1)


def _check_sliding_sizes(capacity: int, split_num: int) -> None:
    if split_num > MAX_SHARDS:
        raise ValueError(f"split_num must be <= {MAX_SHARDS} (one -%05d-of-%05d file per "
                         f"split), got {split_num}")
    # Monolith clamps capacity up to 300; a split with trunc(split_capacity * 1.2) == 0 cells
    # would make it divide by zero on the first add, so reject it up front.
    per_split = sliding_split_capacity(capacity, split_num)
    if per_split > MAX_SPLIT_CAPACITY:
        raise ValueError(f"capacity {capacity} is too large for split_num {split_num}: a split "
                         f"would hold {per_split} elements (max(capacity, 300) // "
                         f"(max(split_num, 5) - 1)), at most 2**34")
    if int(per_split * 1.2) < 1:
        raise ValueError(f"capacity {capacity} is too small for split_num {split_num}: every "
                         f"split needs at least one element (max(capacity, 300) >= "
                         f"max(split_num, 5) - 1)")


def _check_threshold(thr, name: str) -> int:
    thr = _v.check_int(thr, name)
    if not 0 <= thr <= INT32_MAX:
        raise ValueError(f"{name}: thresholds must be in [0, {INT32_MAX}], got {thr}")
    return thr


def _parse_slot_thresholds(value, default: int) -> tuple[int, dict[int, int]]:
    """(default threshold, {slot: threshold}) from None, a dict, or a SlotOccurrenceThresholdConfig
    (message or its serialized bytes). A config's explicit default_occurrence_threshold replaces
    `default` unless that was given too with a different value (an ambiguous request)."""
    name = "slot_occurrence_thresholds"
    if value is None:
        return default, {}
    if isinstance(value, dict):
        pairs = list(value.items())
    else:
        from engines.protos import embedding_hash_table_pb2 as pb
        if isinstance(value, (bytes, bytearray, memoryview)):
            msg = pb.SlotOccurrenceThresholdConfig()
            try:
                msg.ParseFromString(bytes(value))
            except Exception as exc:  # protobuf's DecodeError
                raise ValueError(f"{name}: Unable to parse config. Make sure it is serialized "
                                 f"version of SlotOccurrenceThresholdConfig. ({exc})") from exc
        elif isinstance(value, pb.SlotOccurrenceThresholdConfig):
            msg = value
        else:
            raise TypeError(f"{name} must be a dict, a SlotOccurrenceThresholdConfig or its "
                            f"serialized bytes, got {type(value).__name__}")
        if msg.HasField("default_occurrence_threshold"):
            cfg_default = _check_threshold(msg.default_occurrence_threshold,
                                           f"{name}.default_occurrence_threshold")
            if default not in (0, cfg_default):
                raise ValueError(f"occurrence_threshold {default} conflicts with "
                                 f"{name}.default_occurrence_threshold {cfg_default}")
            default = cfg_default
        # Repeated entries for one slot: the last wins, as in Monolith's bridge loop.
        pairs = [(e.slot, e.occurrence_threshold) for e in msg.slot_occurrence_thresholds]
    out: dict[int, int] = {}
    for slot, thr in pairs:
        if isinstance(slot, bool) or not isinstance(slot, numbers.Integral):
            raise TypeError(f"{name}: slots must be integers, got {slot!r}")
        if not 0 <= int(slot) < MAX_SLOTS:
            raise ValueError(f"{name}: slot {int(slot)} is outside [0, {MAX_SLOTS})")
        out[int(slot)] = _check_threshold(thr, f"{name}[{int(slot)}]")
    return default, out
