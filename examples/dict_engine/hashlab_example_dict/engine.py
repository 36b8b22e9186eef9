"""DictEngine: one dict per table, id -> _Entry. Storage ops copy floats, so they match the
lab's numpy reference bit for bit; SGD and Adagrad use float32 numpy arithmetic in the order
the lab's semantics page gives, so they match too."""
from __future__ import annotations

import dataclasses

import numpy as np

from engines.api import Capabilities, Engine, Table
from engines.protos import embedding_hash_table_pb2 as pb

F = np.float32


@dataclasses.dataclass
class _Entry:
    emb: np.ndarray            # float32[dim]
    state: np.ndarray          # float32[dim] Adagrad accumulator, empty for SGD
    ts: int = 0                # uint32 seconds of the last write


class DictTable(Table):
    def __init__(self, spec, learning_rates):
        super().__init__(spec, learning_rates)
        (self._segment,) = spec.segments          # the engine declares one segment only
        self._entries: dict[int, _Entry] = {}
        self._max_ts = 0

    # ---- helpers --------------------------------------------------------------------------
    def _new_entry(self) -> _Entry:
        seg = self._segment
        fill = {"zeros": 0.0, "ones": 1.0}.get(seg.initializer)
        if fill is None:                           # "constants"
            fill = seg.init_params["constant"]
        state_size = seg.dim if seg.optimizer == "adagrad" else 0
        state = np.full(state_size, F(seg.opt_params.get("initial_accumulator_value", 0.0)),
                        np.float32)
        return _Entry(np.full(seg.dim, F(fill), np.float32), state)

    def _upsert(self, key: int, req_time: int) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = self._new_entry()
        entry.ts = req_time % (1 << 32)
        return entry

    def _step(self, entry: _Entry, grad: np.ndarray, lr: float) -> None:
        eta = F(lr)
        if self._segment.optimizer == "sgd":
            entry.emb -= eta * grad
            return
        decay = F(self._segment.opt_params["weight_decay_factor"])
        g = grad + decay * entry.emb
        entry.state += g * g
        entry.emb -= (eta / np.sqrt(entry.state)) * g

    # ---- the ops the engine declares ------------------------------------------------------
    def _assign(self, ids, values, req_time):
        self._max_ts = max(self._max_ts, req_time)
        for key, row in zip(ids.tolist(), values):
            self._upsert(key, req_time).emb[:] = row

    def _assign_add(self, ids, values, req_time):
        self._max_ts = max(self._max_ts, req_time)
        for key, row in zip(ids.tolist(), values):
            entry = self._upsert(key, req_time)
            entry.emb += row

    def _lookup(self, ids):
        out = np.zeros((len(ids), self.dim), np.float32)
        for i, key in enumerate(ids.tolist()):
            entry = self._entries.get(key)
            if entry is not None:
                out[i] = entry.emb
        return out

    def _lookup_entry(self, ids):
        return [self._dump(self._entries[key]) if key in self._entries else b""
                for key in ids.tolist()]

    def _apply_gradients(self, ids, grads, global_step, enable_dedup, req_time, lrs):
        self._max_ts = max(self._max_ts, req_time)
        if enable_dedup:            # one step per id, gradients summed in occurrence order
            summed: dict[int, np.ndarray] = {}
            for key, row in zip(ids.tolist(), grads):
                if key in summed:
                    summed[key] += row
                else:
                    summed[key] = row.copy()
            steps = summed.items()
        else:
            steps = zip(ids.tolist(), grads)
        for key, grad in steps:
            self._step(self._upsert(key, req_time), grad, lrs[0])

    def _size(self):
        return len(self._entries)

    def _max_update_ts(self):
        return self._max_ts

    def _dump(self, entry: _Entry) -> bytes:
        dump = pb.EntryDump()
        dump.num.extend(entry.emb.tolist())
        single = dump.opt.dump.add()
        if self._segment.optimizer == "sgd":
            single.sgd.SetInParent()
        else:
            single.adagrad.norm.extend(entry.state.tolist())
        dump.last_update_ts_sec = entry.ts
        return dump.SerializeToString()

    # ---- not declared: the lab never calls these on this engine ----------------------------
    def _save(self, basename, nshards):
        raise NotImplementedError("example-dict does not save checkpoints")

    def _stage_restore(self, basename):
        raise NotImplementedError("example-dict does not restore checkpoints")

    def _commit_restore(self, staged):
        raise NotImplementedError("example-dict does not restore checkpoints")

    def _save_as_tensor(self, shard_idx, num_shards, limit, offset):
        raise NotImplementedError("example-dict does not export entries")


class DictEngine(Engine):
    name = "example-dict"
    capabilities = Capabilities(
        ops=frozenset({"assign", "assign_add", "lookup", "lookup_entry", "apply_gradients",
                       "size"}),
        optimizers=frozenset({"sgd", "adagrad"}),
        initializers=frozenset({"zeros", "ones", "constants"}),
        compressors=frozenset({"fp32"}),
        filters=frozenset(),
        fused=True, ttl=False, dedup=True, multi_segment=False, quirks=False)

    def _create_table(self, spec, learning_rates, hash_filter, seed, monolith_quirks):
        if hash_filter is not None:
            raise ValueError("hash_filter: example-dict has no hash filters")
        return DictTable(spec, learning_rates)
