"""The numpy reference engine: the executable form of docs/semantics.md.

Storage is a dict id -> row plus dense row arrays (embedding, optimizer state words,
timestamps). Ops that touch one id several times are split into "rounds" of distinct ids
(the k-th occurrence of every id forms round k), which keeps per-id order while letting
each round run as one vectorised numpy step.
"""
from __future__ import annotations

import numpy as np

from engines import api
from engines.formats import entry_codec
from engines.formats import shards as shard_files
from engines.reference import compressors, initializers, optimizers
from engines.reference.filters import make_reference_filter

F = np.float32
SECONDS_PER_DAY = 86400


def occurrence_rank(ids: np.ndarray) -> np.ndarray:
    """rank[i] = how many earlier positions hold ids[i] (0 for a first occurrence)."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.r_[0, np.flatnonzero(sorted_ids[1:] != sorted_ids[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(ids)]))
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids)) - run_start
    return rank


def occurrence_rounds(ids: np.ndarray) -> list[np.ndarray]:
    """The positions of each round, in order: round k holds every id's k-th occurrence, in
    position order. O(n log n) in total, however often an id repeats."""
    if not len(ids):
        return []
    rank = occurrence_rank(ids)
    by_round = np.argsort(rank, kind="stable")          # stable: position order in a round
    return np.split(by_round, np.cumsum(np.bincount(rank))[:-1])


def group_first_occurrence(ids: np.ndarray):
    """(unique ids in first-occurrence order, group index of every position)."""
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")           # groups by first occurrence
    remap = np.empty(len(uniq), dtype=np.int64)
    remap[order] = np.arange(len(uniq))
    return uniq[order], remap[inverse.reshape(-1)]


def first_and_last_position(group: np.ndarray):
    """(first position, last position) of every group 0..max(group) (each must occur)."""
    _, first = np.unique(group, return_index=True)
    _, last_reversed = np.unique(group[::-1], return_index=True)
    return first, len(group) - 1 - last_reversed


class NumpyTable(api.Table):
    def __init__(self, engine, spec, learning_rates, hash_filter, seed, quirks):
        super().__init__(spec, learning_rates)
        self._filter = hash_filter
        self._seed = seed
        self._quirks = quirks
        self._opts = [optimizers.make(s.optimizer, s.dim, s.opt_params) for s in spec.segments]
        self._expire = spec.expire_days_array()
        self._scales = [F(s.comp_params["init_scale"]) if s.compressor == "one_bit" else None
                        for s in spec.segments]
        for s in spec.segments:
            if s.compressor == "one_bit" and s.comp_params["step_size"] <= 0:
                raise ValueError(f"config: one_bit step_size must be > 0 "
                                 f"(segment {s.index})")
        self._clear()
        self._max_ts = 0

    # ---- storage ------------------------------------------------------------------------
    def _clear(self):
        self._index: dict[int, int] = {}
        self._ids = np.empty(0, np.int64)
        self._emb = np.empty((0, self.dim), np.float32)
        self._state = np.empty((0, self.spec.state_words), np.float32)
        self._ts = np.empty(0, np.uint32)

    def _rows_of(self, ids: np.ndarray) -> np.ndarray:
        get = self._index.get
        return np.fromiter((get(i, -1) for i in ids.tolist()), dtype=np.int64, count=len(ids))

    def _grow(self, need: int):
        cap = len(self._ids)
        if need <= cap:
            return
        new_cap = max(need, 2 * cap, 16)
        self._ids = np.resize(self._ids, new_cap)
        self._ts = np.resize(self._ts, new_cap)
        emb = np.zeros((new_cap, self.dim), np.float32)
        emb[:cap] = self._emb
        state = np.zeros((new_cap, self.spec.state_words), np.float32)
        state[:cap] = self._state
        self._emb, self._state = emb, state

    def _insert(self, new_ids: np.ndarray) -> np.ndarray:
        """Append distinct new ids, run initialisers and optimizer Init; return their rows."""
        n0 = len(self._index)
        rows = np.arange(n0, n0 + len(new_ids))
        self._grow(n0 + len(new_ids))
        self._ids[rows] = new_ids
        self._ts[rows] = 0
        emb = np.empty((len(new_ids), self.dim), np.float32)
        initializers.fill(self.spec.segments, emb, new_ids, self._seed)
        self._emb[rows] = emb
        st = np.zeros((len(new_ids), self.spec.state_words), np.float32)
        for seg, opt in zip(self.spec.segments, self._opts):
            opt.init(st[:, seg.state_offset:seg.state_offset + seg.state_words])
        self._state[rows] = st
        self._index.update(zip(new_ids.tolist(), rows.tolist()))
        return rows

    def _upsert_rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows of distinct ids, inserting (with init) the missing ones."""
        rows = self._rows_of(ids)
        missing = rows < 0
        if missing.any():
            rows[missing] = self._insert(ids[missing])
        return rows

    def _n(self) -> int:
        return len(self._index)

    # ---- admission ----------------------------------------------------------------------
    def _admitted(self, ids: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
        """Mask of the positions that may be written: present ids always; absent ones if the
        filter admits them (checked in order, against the table as it was before the call)."""
        present = self._rows_of(ids) >= 0
        if self._filter is None or present.all():
            return np.ones(len(ids), bool)
        keep = present.copy()
        for i in np.flatnonzero(~present).tolist():
            c = 1 if counts is None else int(counts[i])
            keep[i] = not self._filter.should_be_filtered(int(ids[i]), c, in_table=False)
        return keep

    # ---- ops ----------------------------------------------------------------------------
    # max_update_ts moves only when an op succeeded (also when every id was filtered): a call
    # that fails, e.g. with MemoryError, must not change it.
    def _note_time(self, req_time: int):
        self._max_ts = max(self._max_ts, req_time)

    def _rows_by_position(self, ids: np.ndarray):
        """(row of every position, group of every position, distinct ids): missing ids are
        inserted (init-on-insert) in first-occurrence order."""
        uniq, group = group_first_occurrence(ids)
        return self._upsert_rows(uniq)[group], group, uniq

    def _write(self, ids, values, req_time, add: bool):
        keep = self._admitted(ids)
        ids, values = ids[keep], values[keep]
        if len(ids):
            rows, group, uniq = self._rows_by_position(ids)
            first, last = first_and_last_position(group)
            if add:   # every occurrence in order, each an f32 addition (np.add.at: unbuffered)
                np.add.at(self._emb, rows, values)
            else:     # the last occurrence of an id wins
                self._emb[rows[first]] = values[last]
            self._ts[rows[first]] = np.uint32(req_time)
        self._note_time(req_time)

    def _assign(self, ids, values, req_time):
        self._write(ids, values, req_time, add=False)

    def _assign_add(self, ids, values, req_time):
        self._write(ids, values, req_time, add=True)

    def _lookup(self, ids):
        rows = self._rows_of(ids)
        out = np.zeros((len(ids), self.dim), np.float32)
        hit = rows >= 0
        out[hit] = self._retrieve(self._emb[rows[hit]])
        return out

    def _retrieve(self, emb: np.ndarray) -> np.ndarray:
        out = emb.copy()
        for seg, scale in zip(self.spec.segments, self._scales):
            cols = slice(seg.offset, seg.offset + seg.dim)
            if seg.compressor == "fixed_r8":
                out[:, cols] = compressors.fake_quantize(emb[:, cols], seg.comp_params["r"])
            elif seg.compressor == "one_bit":
                out[:, cols] = compressors.hashnet_forward(emb[:, cols], scale,
                                                           seg.comp_params["amplitude"])
        return out

    def _apply_gradients(self, ids, grads, global_step, enable_dedup, req_time, lrs):
        if enable_dedup:
            uniq, group = group_first_occurrence(ids)
            # The group's gradient: a copy of its first row, then += the others in order.
            first, _ = first_and_last_position(group)
            summed = grads[first].copy()
            later = np.ones(len(ids), bool)
            later[first] = False
            np.add.at(summed, group[later], grads[later])
            counts = np.bincount(group, minlength=len(uniq))
            keep = self._admitted(uniq, counts)
            step_ids, step_grads = uniq[keep], summed[keep]
        else:
            keep = self._admitted(ids)
            step_ids, step_grads = ids[keep], grads[keep]
        if len(step_ids):
            self._update_hashnet_scales(global_step)
            rows, _, _ = self._rows_by_position(step_ids)
            for sel in occurrence_rounds(step_ids):
                self._step(rows[sel], step_grads[sel].copy(), global_step, req_time, lrs)
        self._note_time(req_time)

    def _update_hashnet_scales(self, global_step):
        for k, seg in enumerate(self.spec.segments):
            if seg.compressor == "one_bit" and global_step % seg.comp_params["step_size"] == 0:
                self._scales[k] = compressors.hashnet_scale(seg.comp_params["init_scale"],
                                                            seg.comp_params["max_scale"],
                                                            global_step)

    def _step(self, rows, grads, global_step, req_time, lrs):
        """One optimizer step for distinct rows."""
        self._ts[rows] = np.uint32(req_time)
        w = self._emb[rows]
        st = self._state[rows]
        for seg, opt, scale, lr in zip(self.spec.segments, self._opts, self._scales, lrs):
            cols = slice(seg.offset, seg.offset + seg.dim)
            g = grads[:, cols]
            if seg.compressor == "one_bit":
                g = compressors.hashnet_backward(w[:, cols], g, scale,
                                                 seg.comp_params["amplitude"])
            ws = w[:, cols]
            ss = st[:, seg.state_offset:seg.state_offset + seg.state_words]
            opt.step(ws, np.ascontiguousarray(g), ss, lr, global_step, self._quirks)
            w[:, cols] = ws
            st[:, seg.state_offset:seg.state_offset + seg.state_words] = ss
        self._emb[rows] = w
        self._state[rows] = st

    def _size(self):
        return self._n()

    def _max_update_ts(self):
        return self._max_ts

    # ---- EntryDump ----------------------------------------------------------------------
    def _encode(self, row: int, with_id: bool) -> bytes:
        return entry_codec.encode_entry(self.spec, self._emb[row], self._state[row],
                                        int(self._ts[row]),
                                        int(self._ids[row]) if with_id else None)

    def _lookup_entry(self, ids):
        return [self._encode(r, False) if r >= 0 else b"" for r in self._rows_of(ids).tolist()]

    def _live_rows_sorted(self) -> np.ndarray:
        n = self._n()
        return np.argsort(self._ids[:n], kind="stable")

    def _save(self, basename, nshards):
        if nshards == -1:
            nshards = shard_files.auto_nshards(self._n())
        rows = self._live_rows_sorted()
        ids = self._ids[rows]
        age = np.int64(self._max_ts) - self._ts[rows].astype(np.int64)
        expire = self._expire[self.spec.slots(ids)] * SECONDS_PER_DAY
        rows = rows[age < expire]                         # TTL: drop age >= expire
        shard = shard_files.shard_of(self._ids[rows], nshards)
        payloads = [[self._encode(r, True) for r in rows[shard == i].tolist()]
                    for i in range(nshards)]
        return shard_files.write_shards(basename, payloads)

    def _save_as_tensor(self, shard_idx, num_shards, limit, offset):
        rows = self._live_rows_sorted()
        rows = rows[shard_files.shard_of(self._ids[rows], num_shards) == shard_idx]
        chosen = rows[offset:offset + limit]
        return offset + len(chosen), [self._encode(r, True) for r in chosen.tolist()]

    def _stage_restore(self, basename):
        """Every record parsed and checked (engines.formats.entry_codec.stage_entries)."""
        return entry_codec.stage_entries(self.spec, basename, self._quirks)

    def _commit_restore(self, staged):
        self._clear()
        if len(staged.ids):
            rows = self._insert(staged.ids)                # init-on-insert, then overwrite
            if all(len(num) == self.dim for num in staged.nums):
                self._emb[rows] = np.stack(staged.nums)
            else:   # shorter dumps keep their initializer tail (core §1.5)
                for row, num in zip(rows.tolist(), staged.nums):
                    self._emb[row, :len(num)] = num
            self._state[rows] = staged.states
            self._ts[rows] = staged.stamps
        self._max_ts = max(self._max_ts, int(staged.stamps.max(initial=0)))


class NumpyEngine(api.Engine):
    name = "numpy"
    capabilities = api.Capabilities()

    def __init__(self, threads: int | None = None):
        # `threads` is accepted so scenarios can pass it uniformly; numpy runs single-threaded.
        self.threads = 1

    def _create_table(self, spec, learning_rates, hash_filter, seed, monolith_quirks):
        return NumpyTable(self, spec, learning_rates, hash_filter, seed, monolith_quirks)

    def _create_hash_filter(self, spec):
        return make_reference_filter(spec)
