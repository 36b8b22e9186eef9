"""Numpy reference hash filters: the executable form of fsf Part A with docs/semantics.md §1, §6.

Plain Python loops on purpose: this module is the spec other engines are checked against.

Two layers, as in Monolith:
- `filter_with_threshold(fid, count, threshold, in_table)` is Monolith's
  `Filter::ShouldBeFiltered(fid, count, slot_occurrence_threshold, table)`;
- `should_be_filtered(fid, count, in_table)` is the TF bridge: it looks the threshold up by the
  id's fid-v2 slot. `in_table` stands for Monolith's `table` argument: None = no table
  (intercept_gradient), False = a table op offering an id the table lacks, True = the id is
  in the table. Tables call it only for ids they lack (fsf §A.7).

Memory: like Monolith, a sliding filter allocates all its splits up front. The default
(capacity 300,000,000, split_num 7) is 7 x 60,000,064 uint16 cells, about 801 MiB, so tests use
small capacities.
"""
from __future__ import annotations

import abc

import numpy as np

from engines import api
from engines.filters import MAX_COUNT, FilterSpec, filter_hash_int, signature
from engines.formats import filter_dump
from engines.formats.shards import find_shards

SPLIT_MAX_STEP = 64          # HashFilter's probe length, and the cells padded after total_size
SLIDING_MAX_STEP = filter_dump.SLIDING_MAX_STEP   # probe length per split
MAX_FORWARD_STEP = filter_dump.MAX_FORWARD_STEP   # splits looked at from head forward
SLIDING_FILL_RATE = 1.2
_M64 = (1 << 64) - 1


class SplitArray:
    """Monolith's HashFilter<uint16_t>: one open-addressing array of (signature << 4 | count) cells.

    Positions returned by `find` play the role of Monolith's iterators (None = invalid).
    """

    def __init__(self, capacity: int, fill_rate: float = 1.5):
        self.capacity = int(capacity)
        self.fill_rate = float(fill_rate)
        self.total_size = int(self.capacity * self.fill_rate)   # double product, truncated
        if self.total_size < 1:
            raise ValueError(f"capacity: {capacity} x fill_rate {fill_rate} leaves no cells")
        self.cells = np.zeros(self.total_size + SPLIT_MAX_STEP, dtype=np.uint16)
        self.num_elements = 0
        self.failure_count = 0

    # ---- iterator-level operations -------------------------------------------------------
    def find(self, fid: int, max_step: int) -> int | None:
        """First cell in the probe window that is empty or carries fid's signature."""
        sig = signature(fid)
        pos = filter_hash_int(fid) % self.total_size
        for _ in range(max_step):
            cell = int(self.cells[pos])
            if cell == 0 or cell >> 4 == sig:
                return pos
            pos += 1
            if pos == len(self.cells):        # wrap at the end of the padded array
                pos = 0
        return None

    def is_empty(self, pos: int) -> bool:
        return int(self.cells[pos]) == 0

    def count_at(self, pos: int | None) -> int:
        return MAX_COUNT if pos is None else int(self.cells[pos]) & MAX_COUNT

    def add_at(self, pos: int, fid: int, add_count: int) -> int:
        """Add to the cell at pos (saturating at 15); returns the count before adding."""
        add_count = min(add_count, MAX_COUNT)
        cell = int(self.cells[pos])
        if cell == 0:
            self.num_elements = min(self.num_elements + 1, self.capacity)
            self.cells[pos] = (signature(fid) << 4) + add_count
            return 0
        count = cell & MAX_COUNT
        self.cells[pos] = cell | MAX_COUNT if count + add_count >= MAX_COUNT else cell + add_count
        return count

    # ---- filter-level operations ---------------------------------------------------------
    def add(self, fid: int, count: int) -> int:
        pos = self.find(fid, SPLIT_MAX_STEP)
        if pos is None:
            self.failure_count += 1
            return MAX_COUNT            # an unplaceable id looks frequent
        return self.add_at(pos, fid, count)

    def get(self, fid: int) -> int:
        return self.count_at(self.find(fid, SPLIT_MAX_STEP))

    def filter_with_threshold(self, fid: int, count: int, threshold: int) -> bool:
        if threshold <= 0:
            return False
        return self.add(fid, count) < threshold

    def full(self) -> bool:
        return self.num_elements >= self.capacity - 1

    def exceed_limit(self) -> bool:
        return self.num_elements >= self.capacity

    def clear(self) -> None:
        self.cells[:] = 0
        self.num_elements = 0
        self.failure_count = 0

    def estimated_total_element(self) -> int:
        return self.num_elements

    def __eq__(self, other) -> bool:
        if not isinstance(other, SplitArray):
            return NotImplemented
        return (self.total_size == other.total_size and self.num_elements == other.num_elements
                and self.capacity == other.capacity and self.fill_rate == other.fill_rate
                and np.array_equal(self.cells, other.cells))


class _ReferenceFilter(api.HashFilter):
    def __init__(self, spec: FilterSpec):
        self.spec = spec

    def should_be_filtered(self, fid: int, count: int = 1, in_table: bool | None = None) -> bool:
        return self.filter_with_threshold(fid, count, self.spec.threshold_of(fid), in_table)

    @abc.abstractmethod
    def filter_with_threshold(self, fid, count, threshold, in_table=None) -> bool:
        """Monolith's Filter::ShouldBeFiltered(fid, count, slot_occurrence_threshold, table)."""

    def _intercept_gradient(self, ids, grads):
        out = grads.copy()
        for i, fid in enumerate(ids.tolist()):       # in order: duplicates see earlier counts
            if self.should_be_filtered(fid, 1, None):
                out[i] = 0
        return out

    # Filters without state read every id as saturated and count nothing.
    def add(self, fid: int, count: int) -> int:
        return MAX_COUNT

    def get(self, fid: int) -> int:
        return MAX_COUNT

    def estimated_total_element(self) -> int:
        return 0

    def failure_count(self) -> int:
        return 0


class SlidingHashFilter(_ReferenceFilter):
    """A ring of n = max(split_num, 5) SplitArrays; counts move forward as the head rotates."""

    kind = "sliding"

    def __init__(self, spec: FilterSpec):
        super().__init__(spec)
        self.split_num = spec.split_num              # unclamped: saved and validated as is
        self.capacity = max(spec.capacity, 300)
        n = max(spec.split_num, 5)
        self.max_backward_step = n - MAX_FORWARD_STEP
        self.splits = [SplitArray(self.capacity // (n - 1), SLIDING_FILL_RATE) for _ in range(n)]
        self.head = 0
        self.head_increment = 0
        self._failure_count = 0

    def _next(self, i: int) -> int:
        return (i + 1) % len(self.splits)

    def _prev(self, i: int) -> int:
        return (i - 1) % len(self.splits)

    def _find(self, begin: int, max_look: int, fid: int, exhaust: bool, step):
        """(split, pos) of the first split from `begin` (moving by `step`) whose window has a
        usable cell: any valid cell, or with exhaust only a non-empty (matching) one."""
        index = begin
        for _ in range(max_look):
            split = self.splits[index]
            pos = split.find(fid, SLIDING_MAX_STEP)
            if pos is not None and not (exhaust and split.is_empty(pos)):
                return split, pos
            index = step(index)
        return None

    def _find_old(self, fid: int):
        return self._find(self._prev(self.head), min(self.head_increment, self.max_backward_step),
                          fid, True, self._prev)

    def add(self, fid: int, count: int) -> int:
        cur = self._find(self.head, MAX_FORWARD_STEP, fid, False, self._next)
        if cur is None:
            self._failure_count += 1
            return MAX_COUNT
        split, pos = cur
        if not split.is_empty(pos):
            return split.add_at(pos, fid, count)     # counted in this generation: no rotation
        old = self._find_old(fid)
        old_count = 0 if old is None else old[0].count_at(old[1])
        split.add_at(pos, fid, old_count + count)    # carry the old generation's count forward
        if self.splits[self.head].full():
            self.head = self._next(self.head)
            self.head_increment += 1
            self.splits[self._next(self.head)].clear()   # the spare ahead of the new head
        return old_count

    def get(self, fid: int) -> int:
        cur = self._find(self.head, MAX_FORWARD_STEP, fid, False, self._next)
        if cur is None:
            return MAX_COUNT
        if not cur[0].is_empty(cur[1]):
            return cur[0].count_at(cur[1])
        old = self._find_old(fid)
        return 0 if old is None else old[0].count_at(old[1])

    def filter_with_threshold(self, fid, count, threshold, in_table=None) -> bool:
        # The table argument is ignored: callers decide which ids to offer.
        if threshold <= 0:
            return False                             # and the count is not touched
        return self.add(fid, count) < threshold

    def estimated_total_element(self) -> int:
        return sum(s.num_elements for s in self.splits)

    def failure_count(self) -> int:
        return self._failure_count

    # ---- checkpoints (fsf §A.8, engines/formats/filter_dump.py) -------------------------
    def _save(self, basename):
        return filter_dump.save_sliding(basename, filter_dump.SlidingDump(
            self.split_num, self.max_backward_step, self.head, self.head_increment,
            self._failure_count,
            [filter_dump.SplitDump(s.failure_count, s.total_size, s.num_elements, s.fill_rate,
                                   s.cells) for s in self.splits]))

    def _stage_restore(self, basename):
        return filter_dump.load_sliding(basename, self.split_num, self.max_backward_step,
                                        [s.cells for s in self.splits])

    def _commit_restore(self, dump):
        for split, saved in zip(self.splits, dump.splits):    # everything is valid
            split.failure_count = saved.failure_count
            split.total_size = saved.total_size
            split.num_elements = saved.num_elements
            split.fill_rate = saved.fill_rate
            split.cells = saved.cells
        self.head, self.head_increment = dump.head, dump.head_increment
        self._failure_count = dump.failure_count


class ProbabilisticFilter(_ReferenceFilter):
    """Admits an id the table lacks with probability ~count/threshold (or the equal-probability
    schedule); stores nothing. Draws come from a seeded xorshift128+ stream (semantics §6)."""

    kind = "probabilistic"

    def __init__(self, spec: FilterSpec):
        super().__init__(spec)
        self.equal_probability = spec.equal_probability
        self.rng = XorShift(spec.seed)

    def filter_with_threshold(self, fid, count, threshold, in_table=None) -> bool:
        if in_table is None or in_table:
            return False                             # no table, or already in it: no draw
        r = self.rng.rand32()
        if self.equal_probability:
            p = equal_probability_p(threshold)
            # float (1 - p) raised to an integer count promotes to double in C++.
            inserted = r < 4294967295.0 * (1.0 - float(np.float32(1) - p) ** count)
        else:
            inserted = r * threshold < 4294967295 * count   # int64 in Monolith; exact here
        return not inserted

    def _save(self, basename):
        return []                                    # split_num() == 0: no files

    def _stage_restore(self, basename):
        # Monolith's restore op validates the file set before the (no-op) filter restore, so a
        # basename without files fails ("There is no valid sharded files").
        find_shards(basename)

    def _commit_restore(self, staged):
        return None


class DummyHashFilter(_ReferenceFilter):
    """Never filters, stores nothing, saves nothing, restores nothing."""

    kind = "dummy"

    def filter_with_threshold(self, fid, count, threshold, in_table=None) -> bool:
        return False

    def _save(self, basename):
        return []

    def _stage_restore(self, basename):
        return None

    def _commit_restore(self, staged):
        return None


def equal_probability_p(threshold: int) -> np.float32:
    """p = 1 - powf(0.05f, 1.f / thr) in float32: after thr single occurrences an id has been
    admitted with probability 95%. thr = 0 gives p = 1 (1/0 = inf, 0.05^inf = 0)."""
    with np.errstate(divide="ignore"):
        exponent = np.float32(1) / np.float32(threshold)
    return np.float32(1) - np.power(np.float32(0.05), exponent)


class XorShift:
    """Monolith's XorShift with a given seed instead of time(): 16 words from xorshift64*, then
    Rand32 = low 32 bits of xorshift128+ over the first two words.

    xorshift64* needs a nonzero state, so seed 0 (mod 2^64) is replaced by the golden-ratio
    constant 0x9E3779B97F4A7C15.
    """

    def __init__(self, seed: int):
        x = (seed & _M64) or 0x9E3779B97F4A7C15
        words = []
        for _ in range(16):
            x ^= x >> 12
            x ^= (x << 25) & _M64
            x ^= x >> 27
            words.append((x * 2685821657736338717) & _M64)
        self.s = words

    def rand32(self) -> int:
        x, y = self.s[0], self.s[1]
        self.s[0] = y
        x ^= (x << 23) & _M64
        x ^= x >> 17
        x ^= y ^ (y >> 26)
        self.s[1] = x
        return (x + y) & 0xFFFFFFFF


_KINDS = {"sliding": SlidingHashFilter, "probabilistic": ProbabilisticFilter,
          "dummy": DummyHashFilter}


def make_reference_filter(spec: FilterSpec) -> api.HashFilter:
    return _KINDS[spec.kind](spec)
