"""Native hash filters: the counting logic runs in C++ (inside the table's admission pass);
checkpoints go through engines/formats/filter_dump.py (fsf §A.8) like every engine's, since
filter saves are rare and small next to table saves."""
from __future__ import annotations

import numpy as np

from engines import api
from engines.formats import filter_dump
from engines.formats.shards import find_shards


class NativeHashFilter(api.HashFilter):
    """A filter of the _native_cpu module (`module`); the GPU engine uses these too."""

    def __init__(self, spec, mod):
        self.spec = spec
        self.kind = spec.kind
        thresholds = np.ascontiguousarray(spec.thresholds, np.int32)
        if spec.kind == "sliding":
            self._f = mod.Filter.sliding(spec.capacity, spec.split_num, thresholds)
        elif spec.kind == "probabilistic":
            self._f = mod.Filter.probabilistic(spec.seed, spec.equal_probability, thresholds)
        else:
            self._f = mod.Filter.dummy(thresholds)

    # ---- the Monolith filter interface (for parity tests) ------------------------------
    def should_be_filtered(self, fid: int, count: int = 1, in_table: bool | None = None) -> bool:
        return self._f.should_be_filtered(fid, count, -1 if in_table is None else int(in_table))

    def add(self, fid: int, count: int) -> int:
        return self._f.add(fid, count)

    def admit(self, ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """uint8 mask of the absent ids (offered in batch order, with their counts) that may
        enter a table: one call per batch, the whole pass in C++."""
        return self._f.admit(ids, counts)

    def get(self, fid: int) -> int:
        return self._f.get(fid)

    def estimated_total_element(self) -> int:
        return self._f.estimated_total_element()

    def failure_count(self) -> int:
        return self._f.failure_count()

    # ---- hooks -------------------------------------------------------------------------
    def _intercept_gradient(self, ids, grads):
        out = grads.copy()
        out[self._f.intercept_mask(ids).astype(bool)] = 0
        return out

    def _save(self, basename):
        if self.kind != "sliding":
            return []
        st = self._f.sliding_state()
        return filter_dump.save_sliding(basename, filter_dump.SlidingDump(
            st["split_num"], st["max_backward_step"], st["head"], st["head_increment"],
            st["failure_count"],
            [filter_dump.SplitDump(s["failure_count"], s["total_size"], s["num_elements"],
                                   s["fill_rate"], s["cells"]) for s in st["splits"]]))

    def _stage_restore(self, basename):
        if self.kind == "dummy":
            return None
        if self.kind == "probabilistic":
            find_shards(basename)       # as Monolith: the file set must exist
            return None
        st = self._f.sliding_state()
        return filter_dump.load_sliding(basename, st["split_num"], st["max_backward_step"],
                                        [s["cells"] for s in st["splits"]])

    def _commit_restore(self, dump):
        if dump is None:
            return
        self._f.sliding_set_state(
            dump.head, dump.head_increment, dump.failure_count,
            [(s.total_size, s.num_elements, s.fill_rate, s.failure_count, s.cells)
             for s in dump.splits])
