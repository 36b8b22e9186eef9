"""The "tensorflow" engine's table: all state lives in TensorFlow and ops run in tf.function.

Storage: a `MutableHashTable` id -> row, and per segment a `tf.Variable` [rows, D] for the
embedding plus one [rows, width] variable per optimizer state slot (the slots, concatenated,
are the numpy reference's state words, so EntryDump serialisation is shared), an int64 row ->
id variable and an int64 timestamp variable. Variables have an unknown leading dimension and
grow by reassignment (geometric), so the traced functions never need retracing.

Occurrence order is kept exactly as docs/semantics.md §3 says: ops that touch an id several
times run in "rounds" (round k = every id's k-th occurrence) inside one tf.while_loop.
Admission by a hash filter is the only host-side step (the reference filters are Python).
Checkpoint files go through engines/formats like every Python engine's (one validated reader,
one EntryDump codec).
"""
from __future__ import annotations

import logging

import numpy as np
from engines.reference.tf_runtime import remove_autograph_files, tf

from engines import api
from engines.formats import entry_codec, shards
from engines.reference import optimizers, tf_kernels, tf_ops, tf_optimizers

F = np.float32
SECONDS_PER_DAY = 86400
_MIN_CAPACITY = 16          # also keeps gather(row 0) valid while the table is empty

# Optimizer state slots (name, width) in the numpy reference's state-word order.
_SLOTS = {
    "sgd": lambda d: [],
    "adagrad": lambda d: [("norm", d)],
    "ftrl": lambda d: [("norm", d), ("zero", d)],
    "adadelta": lambda d: [("accum", d), ("accum_update", d)],
    "adam": lambda d: [("m", d), ("v", d), ("beta1_power", 1), ("beta2_power", 1)],
    "amsgrad": lambda d: [("m", d), ("v", d), ("vhat", d), ("beta1_power", 1),
                          ("beta2_power", 1)],
    "momentum": lambda d: [("n", d)],
    "rmsprop": lambda d: [("n", d)],
    "rmspropv2": lambda d: [("n", d)],
    "batch_softmax": lambda d: [("global_step", 2)],    # int64 as two f32 words
    "moving_average": lambda d: [],
    "group_adagrad": lambda d: [("grad_square_sum", 1)],
}


def _growable(width: int | None, dtype, name: str) -> tf.Variable:
    shape = [_MIN_CAPACITY] if width is None else [_MIN_CAPACITY, width]
    return tf.Variable(tf.zeros(shape, dtype), shape=tf.TensorShape([None] + shape[1:]),
                       trainable=False, name=name)


class _OwnTracingNotice(logging.Filter):
    """Drops TF's "frequent retracing" warning for our per-table functions only: every table
    traces its own graphs once by design (they close over that table's variables)."""

    def filter(self, record):
        msg = record.getMessage()
        return not ("retracing" in msg and "TensorFlowTable" in msg)


tf.get_logger().addFilter(_OwnTracingNotice())


def _exact(fn, signature):
    """tf.function of fn with a fixed signature (no retracing), run under exact_math."""
    traced = tf.function(fn, input_signature=signature)
    converted = []

    def call(*args):
        try:
            with tf_ops.exact_math():
                return traced(*args)
        finally:
            if not converted:         # the first call traced (and AutoGraph converted) fn
                converted.append(True)
                remove_autograph_files()
    return call


class _Segment:
    """One segment's variables and how it is stepped."""

    def __init__(self, seg, ref_opt, kernels: bool):
        self.spec = seg
        self.params = dict(seg.opt_params)
        self.emb = _growable(seg.dim, tf.float32, f"emb{seg.index}")
        self.slot_widths = [w for _, w in _SLOTS[seg.optimizer](seg.dim)]
        self.slots = [_growable(w, tf.float32, f"seg{seg.index}_{name}")
                      for name, w in _SLOTS[seg.optimizer](seg.dim)]
        assert sum(self.slot_widths) == seg.state_words
        init = np.zeros((1, seg.state_words), F)
        ref_opt.init(init)
        self.init_state = init[0]
        self.step = tf_optimizers.STEPS[seg.optimizer]
        self.kernel = tf_kernels.KERNELS.get(seg.optimizer) if kernels else None
        self.scratch = (_growable(seg.dim, tf.float32, f"seg{seg.index}_tf_mom")
                        if self.kernel is not None and seg.optimizer in tf_kernels.NEEDS_SCRATCH
                        else None)

    def variables(self):
        return [self.emb] + self.slots + ([self.scratch] if self.scratch is not None else [])

    def gather_state(self, rows):
        if not self.slots:
            return tf.zeros([tf.size(rows), 0], tf.float32)
        return tf.concat([tf.gather(s, rows) for s in self.slots], 1)

    def scatter_state(self, rows, st):
        start = 0
        for slot, width in zip(self.slots, self.slot_widths):
            slot.scatter_update(tf.IndexedSlices(st[:, start:start + width], rows))
            start += width


class TensorFlowTable(api.Table):
    def __init__(self, engine, spec, learning_rates, hash_filter, seed, quirks, kernels):
        super().__init__(spec, learning_rates)
        self._filter = hash_filter
        self._seed = seed
        self._quirks = quirks
        self._ref_opts = [optimizers.make(s.optimizer, s.dim, s.opt_params)
                          for s in spec.segments]
        for s in spec.segments:
            if s.compressor == "one_bit" and s.comp_params["step_size"] <= 0:
                raise ValueError(f"config: one_bit step_size must be > 0 (segment {s.index})")
        self._segs = [_Segment(s, o, kernels) for s, o in zip(spec.segments, self._ref_opts)]
        self._index = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, -1)
        self._count = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._row_ids = _growable(None, tf.int64, "row_ids")
        self._ts = _growable(None, tf.int64, "timestamps")
        self._max_ts = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._scales = tf.Variable(
            [F(s.comp_params["init_scale"]) if s.compressor == "one_bit" else F(0)
             for s in spec.segments], dtype=tf.float32, trainable=False)
        self._expire = tf.constant(spec.expire_days_array() * SECONDS_PER_DAY)

        ids_sig = tf.TensorSpec([None], tf.int64)
        rows_sig = tf.TensorSpec([None, self.dim], tf.float32)
        scalar = tf.TensorSpec([], tf.int64)
        self._lookup_fn = _exact(lambda i: self._lookup_graph(i), [ids_sig])
        self._assign_fn = _exact(lambda i, v, t: self._write_graph(i, v, t, add=False),
                                 [ids_sig, rows_sig, scalar])
        self._assign_add_fn = _exact(lambda i, v, t: self._write_graph(i, v, t, add=True),
                                     [ids_sig, rows_sig, scalar])
        self._dedup_fn = _exact(lambda i, g: self._dedup_graph(i, g), [ids_sig, rows_sig])
        self._apply_fn = _exact(lambda i, g, lr, gs, t: self._apply_graph(i, g, lr, gs, t), [
            ids_sig, rows_sig, tf.TensorSpec([self.num_segments], tf.float32), scalar, scalar])

    # ---- storage (graph code) -------------------------------------------------------------
    def _variables(self):
        out = [self._row_ids, self._ts]
        for seg in self._segs:
            out += seg.variables()
        return out

    def _reserve(self, need):
        cap = tf.shape(self._row_ids, out_type=tf.int64)[0]

        def grow():
            new_cap = tf.maximum(need, 2 * cap)
            for var in self._variables():
                tail = var.shape[1:].as_list()
                var.assign(tf.concat([var, tf.zeros([new_cap - cap] + tail, var.dtype)], 0))
            return tf.constant(True)

        tf.cond(need > cap, grow, lambda: tf.constant(False))

    def _rows_of(self, ids):
        """Row of every id, -1 when absent (the hash table's output has no static shape)."""
        return tf.reshape(self._index.lookup(ids), tf.shape(ids))

    def _upsert(self, ids):
        """Rows of ids, inserting (init-on-insert) missing ones in first-occurrence order."""
        new_ids, _ = tf.unique(tf.boolean_mask(ids, self._rows_of(ids) < 0))
        k = tf.size(new_ids, out_type=tf.int64)
        base = tf.identity(self._count.read_value())
        self._reserve(base + k)
        new_rows = base + tf.range(k)
        self._index.insert(new_ids, new_rows)
        self._row_ids.scatter_update(tf.IndexedSlices(new_ids, new_rows))
        self._ts.scatter_update(tf.IndexedSlices(tf.zeros([k], tf.int64), new_rows))
        emb0 = tf_ops.initial_embeddings(self.spec.segments, new_ids, self._seed)
        for seg in self._segs:
            s = seg.spec
            seg.emb.scatter_update(tf.IndexedSlices(emb0[:, s.offset:s.offset + s.dim],
                                                    new_rows))
            if s.state_words:
                seg.scatter_state(new_rows, tf.tile(seg.init_state[None, :], [k, 1]))
        self._count.assign_add(k)
        return self._rows_of(ids)

    @staticmethod
    def _rounds(ids):
        """(occurrence rank of every position, number of rounds)."""
        uniq, group = tf_ops.first_occurrence_groups(ids)
        rank = tf_ops.occurrence_rank(group, tf.size(uniq, out_type=tf.int64))
        return rank, tf.reduce_max(tf.concat([rank, [-1]], 0)) + 1

    def _write_graph(self, ids, values, req_time, add):
        rows = self._upsert(ids)
        rank, num_rounds = self._rounds(ids)
        for r in tf.range(num_rounds):
            sel = tf.where(rank == r)[:, 0]
            rr, vv = tf.gather(rows, sel), tf.gather(values, sel)
            for seg in self._segs:
                s = seg.spec
                update = tf.IndexedSlices(vv[:, s.offset:s.offset + s.dim], rr)
                if add:
                    seg.emb.scatter_add(update)
                else:
                    seg.emb.scatter_update(update)
        self._ts.scatter_update(tf.IndexedSlices(tf.fill(tf.shape(rows), req_time), rows))

    def _lookup_graph(self, ids):
        rows = self._rows_of(ids)
        hit = rows >= 0
        safe = tf.where(hit, rows, tf.zeros_like(rows))
        parts = []
        for k, seg in enumerate(self._segs):
            w = tf.gather(seg.emb, safe)
            s = seg.spec
            if s.compressor == "fixed_r8":
                w = tf_ops.fake_quantize(w, s.comp_params["r"])
            elif s.compressor == "one_bit":
                w = tf_ops.hashnet_forward(w, self._scales[k], s.comp_params["amplitude"])
            parts.append(w)
        out = tf.concat(parts, 1)
        return tf.where(hit[:, None], out, tf.zeros_like(out))

    def _dedup_graph(self, ids, grads):
        uniq, group = tf_ops.first_occurrence_groups(ids)
        n = tf.size(uniq, out_type=tf.int64)
        counts = tf.math.unsorted_segment_sum(tf.ones_like(group), group, n)
        return uniq, tf_ops.dedup_sum(grads, group, n), counts

    def _update_scales(self, global_step):
        gs = tf.cast(global_step, tf.float64)
        for k, seg in enumerate(self._segs):
            c = seg.spec.comp_params
            if seg.spec.compressor != "one_bit":
                continue
            scale = tf.minimum(float(c["init_scale"]) * tf.sqrt(1.0 + 0.005 * gs),
                               float(c["max_scale"]))
            due = tf.math.floormod(gs, float(c["step_size"])) == 0
            self._scales[k].assign(tf.where(due, tf.cast(scale, tf.float32), self._scales[k]))

    def _apply_graph(self, ids, grads, lrs, global_step, req_time):
        self._update_scales(global_step)
        rows = self._upsert(ids)
        self._ts.scatter_update(tf.IndexedSlices(tf.fill(tf.shape(rows), req_time), rows))
        rank, num_rounds = self._rounds(ids)
        for r in tf.range(num_rounds):
            sel = tf.where(rank == r)[:, 0]
            self._step(tf.gather(rows, sel), tf.gather(grads, sel), lrs, global_step)

    def _step(self, rows, grads, lrs, global_step):
        """One optimizer step for distinct rows."""
        for k, seg in enumerate(self._segs):
            s = seg.spec
            g = grads[:, s.offset:s.offset + s.dim]
            lr = lrs[k]
            if s.compressor == "one_bit":
                g = tf_ops.hashnet_backward(tf.gather(seg.emb, rows), g, self._scales[k],
                                            s.comp_params["amplitude"])
            if seg.kernel is not None:
                seg.kernel(seg.emb, seg.slots, rows, g, lr, seg.params, seg.scratch)
                continue
            w, st = seg.step(tf.gather(seg.emb, rows), g, seg.gather_state(rows), lr,
                             global_step, seg.params, self._quirks)
            seg.emb.scatter_update(tf.IndexedSlices(w, rows))
            if s.state_words:
                seg.scatter_state(rows, st)

    # ---- admission (host side: the reference filters are Python) -------------------------
    def _admitted(self, ids: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
        if self._filter is None or not len(ids):
            return np.ones(len(ids), bool)
        keep = self._index.lookup(tf.constant(ids)).numpy() >= 0
        for i in np.flatnonzero(~keep).tolist():
            c = 1 if counts is None else int(counts[i])
            keep[i] = not self._filter.should_be_filtered(int(ids[i]), c, in_table=False)
        return keep

    # max_update_ts moves only when an op succeeded (also when every id was filtered).
    def _note_time(self, req_time: int):
        self._max_ts.assign(tf.maximum(self._max_ts, tf.constant(req_time, tf.int64)))

    # ---- ops ----------------------------------------------------------------------------
    def _write(self, fn, ids, values, req_time):
        keep = self._admitted(ids)
        if keep.any():
            fn(ids[keep], values[keep], tf.constant(req_time, tf.int64))
        self._note_time(req_time)

    def _assign(self, ids, values, req_time):
        self._write(self._assign_fn, ids, values, req_time)

    def _assign_add(self, ids, values, req_time):
        self._write(self._assign_add_fn, ids, values, req_time)

    def _lookup(self, ids):
        return self._lookup_fn(ids).numpy()

    def _apply_gradients(self, ids, grads, global_step, enable_dedup, req_time, lrs):
        if enable_dedup:
            uniq, summed, counts = (t.numpy() for t in self._dedup_fn(ids, grads))
            keep = self._admitted(uniq, counts)
            step_ids, step_grads = uniq[keep], summed[keep]
        else:
            keep = self._admitted(ids)
            step_ids, step_grads = ids[keep], grads[keep]
        if len(step_ids):
            self._apply_fn(step_ids, step_grads, tf.constant(lrs, tf.float32),
                           tf.constant(global_step, tf.int64), tf.constant(req_time, tf.int64))
        self._note_time(req_time)

    def _size(self):
        return int(self._count.numpy())

    def _max_update_ts(self):
        return int(self._max_ts.numpy())

    # ---- EntryDump ----------------------------------------------------------------------
    def _rows_data(self, rows: np.ndarray):
        """(embeddings [m, D], state words [m, W], timestamps [m]) of rows, as numpy."""
        rows = tf.constant(rows, tf.int64)
        emb = tf.concat([tf.gather(seg.emb, rows) for seg in self._segs], 1).numpy()
        states = [seg.gather_state(rows) for seg in self._segs]
        state = tf.concat(states, 1).numpy() if states else np.zeros((len(rows), 0), F)
        return emb, state, tf.gather(self._ts, rows).numpy()

    def _dumps(self, rows: np.ndarray, ids: np.ndarray | None) -> list[bytes]:
        emb, state, ts = self._rows_data(rows)
        return [entry_codec.encode_entry(self.spec, emb[j], state[j], ts[j],
                                         None if ids is None else ids[j])
                for j in range(len(rows))]

    def _lookup_entry(self, ids):
        rows = self._index.lookup(tf.constant(ids)).numpy()
        hit = np.flatnonzero(rows >= 0)
        out = [b""] * len(ids)
        for j, payload in zip(hit.tolist(), self._dumps(rows[hit], None)):
            out[j] = payload
        return out

    def _sorted_rows(self):
        """(rows sorted by id, their ids, their TTL-keep mask), computed in TF."""
        n = self._count.read_value()
        ids = self._row_ids[:n]
        order = tf.argsort(ids, stable=True)
        sorted_ids = tf.gather(ids, order)
        u = tf.bitcast(sorted_ids, tf.uint64)
        if self.spec.fid_version == 1:
            slot = tf.bitwise.right_shift(u, tf.constant(54, tf.uint64))
        else:
            slot = tf.bitwise.bitwise_and(tf.bitwise.right_shift(u, tf.constant(48, tf.uint64)),
                                          tf.constant(0x7FFF, tf.uint64))
        age = self._max_ts - tf.gather(self._ts, order)
        keep = age < tf.gather(self._expire, tf.cast(slot, tf.int64))   # TTL: drop age >= expire
        return order.numpy().astype(np.int64), sorted_ids.numpy(), keep.numpy()

    def _save(self, basename, nshards):
        if nshards == -1:
            nshards = shards.auto_nshards(self._size())
        rows, ids, keep = self._sorted_rows()
        rows, ids = rows[keep], ids[keep]
        which = shards.shard_of(ids, nshards)
        payloads = self._dumps(rows, ids)
        per_shard = [[] for _ in range(nshards)]
        for s, payload in zip(which.tolist(), payloads):
            per_shard[s].append(payload)
        return shards.write_shards(basename, per_shard)

    def _save_as_tensor(self, shard_idx, num_shards, limit, offset):
        rows, ids, _ = self._sorted_rows()
        mine = shards.shard_of(ids, num_shards) == shard_idx
        rows, ids = rows[mine][offset:offset + limit], ids[mine][offset:offset + limit]
        return offset + len(rows), self._dumps(rows, ids)

    # ---- restore --------------------------------------------------------------------------
    def _stage_restore(self, basename):
        """Parse and check every record (entry_codec.stage_entries), then build the restored
        rows in numpy: (ids, emb, state, ts, max ts). Every id appears once; a record's
        embedding overwrites the freshly initialised row (a shorter one keeps the init tail)."""
        staged = entry_codec.stage_entries(self.spec, basename, self._quirks)
        ids = staged.ids
        if not len(ids):
            return ids, np.zeros((0, self.dim), F), staged.states, staged.stamps, 0
        if all(len(num) == self.dim for num in staged.nums):
            emb = np.stack(staged.nums)
        else:
            emb = tf_ops.initial_embeddings(self.spec.segments, tf.constant(ids),
                                            self._seed).numpy()
            for i, num in enumerate(staged.nums):
                emb[i, :len(num)] = num
        return ids, emb, staged.states, staged.stamps, int(staged.stamps.max())

    def _commit_restore(self, staged):
        ids, emb, state, ts, max_ts = staged       # everything is parsed and validated
        n = self._count.read_value()
        self._index.remove(self._row_ids[:n])
        self._count.assign(0)
        k = len(ids)
        self._reserve(tf.constant(k, tf.int64))
        rows = tf.range(k, dtype=tf.int64)
        self._index.insert(tf.constant(ids), rows)
        self._row_ids.scatter_update(tf.IndexedSlices(tf.constant(ids), rows))
        self._ts.scatter_update(tf.IndexedSlices(tf.constant(ts), rows))
        for seg in self._segs:
            s = seg.spec
            seg.emb.scatter_update(tf.IndexedSlices(emb[:, s.offset:s.offset + s.dim], rows))
            if s.state_words:
                seg.scatter_state(rows, state[:, s.state_offset:s.state_offset + s.state_words])
        self._count.assign(k)
        self._note_time(max_ts)
