"""The TorchRec worker: runs inside the TorchRec venv, serves the "torchrec" engine over
stdin/stdout.

Standalone on purpose: it imports the standard library, numpy, torch, FBGEMM and TorchRec, plus
the worker-side modules of engines/peer/ by path (not our package). A table is what a TorchRec
model trains with a managed-collision embedding:
- ids -> rows: `MCHManagedCollisionModule` (TorchRec's managed collision on a sorted identity
  tensor, LFU eviction). FBGEMM's `zero_collision_hash` (the module `HashZchManagedCollision-
  Module`) cannot be used: its CPU kernel is inference-only and refuses inserts ("Expected
  readonly to be true"). Training-mode forwards insert; eval-mode forwards only remap, a missing
  id going to the module's reserved last row;
- rows: FBGEMM's `SplitTableBatchedEmbeddingBagsCodegen` on the CPU (no pooling), trained by
  its fused backward: EXACT_SGD or EXACT_ADAGRAD (element-wise, Monolith's Adagrad).

What the adapter adds around them, and why (docs/toolchain.md, "The TorchRec peer"):
- `eviction_interval=1`, so a write inserts its new ids at once (Monolith inserts on write;
  TorchRec's usual interval delays inserts and maps new ids to the shared last row meanwhile);
  the rows `evict()` reports are (re)initialised, as TorchRec's managed-collision embeddings do;
- capacity: the module holds `zch_size - 1` ids and would evict the least frequent beyond that.
  Before a write that would not fit, the adapter rebuilds module and table at twice the size
  (every id re-inserted, rows carried over), so nothing is ever evicted; a write whose ids do
  not all land in rows of their own is an error, never a silent collision;
- the module's history buffer is sized by its first batch and silently drops the ids of a
  larger one; the adapter re-sizes it (the buffer is empty between writes at interval 1);
- id 2**63 - 1 is the module's empty-slot marker: the adapter keeps that one id in a row of its
  own after the module's rows;
- FBGEMM's table takes dims that are multiples of 4 only: rows are padded to the next multiple
  (pad columns get zero gradients, an accumulator of 1, and are never returned);
- Monolith's occurrence semantics (engines/peer/occurrences.py): without dedup one optimizer
  step per round of k-th occurrences, with dedup one per id on its ordered f32 sum; weight
  decay as g' = g + wd*w fed to the optimizer (Monolith's rule; FBGEMM's own L2 mode differs).
"""
from __future__ import annotations

import os
import sys

# engines/peer's worker-side modules, last on the path so they shadow none of the peer's own.
sys.path.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peer"))
import serve  # noqa: E402  (engines/peer/serve.py, loaded as a plain module)
from occurrences import dedup, occurrence_rounds  # noqa: E402

import numpy as np  # noqa: E402

INT64_MAX = np.iinfo(np.int64).max


class Table:
    def __init__(self, lib, dim, optimizer, lr, init_value, accumulator, weight_decay,
                 capacity):
        self.lib, self.torch = lib, lib.torch
        if optimizer not in ("sgd", "adagrad"):
            raise ValueError(f"optimizer {optimizer!r} is not served by the TorchRec worker")
        self.dim, self.optimizer, self.lr = dim, optimizer, lr
        self.row_dim = -(-dim // 4) * 4         # FBGEMM: embedding_dim % 4 == 0
        self.init_value = np.float32(init_value)
        self.accumulator = np.float32(accumulator)
        self.weight_decay = np.float32(weight_decay)
        self.has_max_id = False
        self.rebuilds = 0
        self._build(max(2, int(capacity)))

    # ---- module and table ------------------------------------------------------------------
    def _build(self, zch_size: int):
        lib = self.lib
        self.zch_size = zch_size
        self.miss_row = zch_size - 1          # the module's row for ids it does not hold
        self.max_row = zch_size               # the adapter's row for id 2**63 - 1
        self.mc = lib.MCH(zch_size=zch_size, device=lib.cpu,
                          eviction_policy=lib.LFU(), eviction_interval=1)
        opt = lib.Opt.EXACT_SGD if self.optimizer == "sgd" else lib.Opt.EXACT_ADAGRAD
        self.tbe = lib.TBE([(zch_size + 1, self.row_dim, lib.HOST, lib.CPU)], optimizer=opt,
                           learning_rate=self.lr, eps=0.0, pooling_mode=lib.NONE,
                           weights_precision=lib.FP32)
        self.weights = self.tbe.split_embedding_weights()[0]          # views of the table
        self.weights.zero_()                  # the miss row stays zero: a missing id reads 0
        self.state = (self.tbe.split_optimizer_states()[0][0].view(zch_size + 1, self.row_dim)
                      if self.optimizer == "adagrad" else None)

    def _features(self, ids_t):
        lib = self.lib
        return {"f": lib.JT(values=ids_t, lengths=self.torch.tensor([len(ids_t)]))}

    def _remap(self, ids_t, train: bool):
        self.mc.train(train)
        if train:
            buffer = self.mc._input_history_buffer_size
            if buffer != -1 and len(ids_t) > buffer:
                # TorchRec sized the buffer by the first batch and would drop the overflow.
                self.mc._init_history_buffers(self._features(ids_t))
        return self.mc(self._features(ids_t))["f"].values()

    def _real_size(self) -> int:
        return int(self.zch_size - 1 - int(self.mc.open_slots().item()))

    def size(self) -> int:
        return self._real_size() + int(self.has_max_id)

    def _rows(self, ids: np.ndarray, insert: bool):
        """Table rows (a torch int64 tensor) of `ids` (numpy int64). With insert, every id gets
        a row of its own first (new rows initialised); without, a missing id gets the zero
        miss row."""
        torch = self.torch
        real = ids != INT64_MAX
        rows = torch.full((len(ids),), self.miss_row, dtype=torch.int64)
        ids_t = torch.from_numpy(ids)
        if real.any():
            real_ids = ids_t[torch.from_numpy(real)]
            if insert:
                uniq = torch.unique(real_ids)
                new = int((self._remap(uniq, False) == self.miss_row).sum())
                if new and self._real_size() + new > self.zch_size - 1:
                    self._grow(self._real_size() + new)
                before = self._real_size()
                got = self._remap(real_ids, True)
                fresh = self.mc.evict()
                fresh = fresh if fresh is not None else torch.empty(0, dtype=torch.int64)
                if (got == self.miss_row).any() or self._real_size() != before + new \
                        or len(fresh) != new:
                    raise RuntimeError(
                        f"TorchRec's managed collision did not give every id a row of its own "
                        f"({new} new ids, {len(fresh)} rows handed out, size {before} -> "
                        f"{self._real_size()} of {self.zch_size - 1})")
                self._init_rows(fresh)
            else:
                got = self._remap(real_ids, False)
            rows[torch.from_numpy(real)] = got
        if not real.all():
            if insert and not self.has_max_id:
                self._init_rows(torch.tensor([self.max_row]))
                self.has_max_id = True
            if self.has_max_id:
                rows[torch.from_numpy(~real)] = self.max_row
        return rows

    def _init_rows(self, rows):
        self.weights[rows] = float(self.init_value)
        if self.state is not None:
            self.state[rows, :self.dim] = float(self.accumulator)
            self.state[rows, self.dim:] = 1.0       # pad columns: no 0/0 on zero gradients

    def _grow(self, needed: int):
        """Rebuild module and table with room for `needed` ids (at least twice the size),
        every id re-inserted through the new module and its rows carried over."""
        torch = self.torch
        old_mc, old_weights, old_state = self.mc, self.weights, self.state
        old_max_row, count = self.max_row, self._real_size()
        ids = old_mc._mch_sorted_raw_ids[:count].clone()       # sorted: the markers are last
        old_rows = old_mc._mch_remapped_ids_mapping[:count].clone()
        size = self.zch_size
        while size - 1 < needed:
            size *= 2
        self._build(size)
        new_rows = self._remap(ids, True) if count else torch.empty(0, dtype=torch.int64)
        self.mc.evict()
        if count and (new_rows == self.miss_row).any():
            raise RuntimeError("TorchRec's managed collision lost ids while the table grew")
        with torch.no_grad():
            self.weights[new_rows] = old_weights[old_rows]
            self.weights[self.max_row] = old_weights[old_max_row]
            if self.state is not None:
                self.state[new_rows] = old_state[old_rows]
                self.state[self.max_row] = old_state[old_max_row]
        self.rebuilds += 1

    # ---- ops ---------------------------------------------------------------------------------
    def _forward(self, rows):
        offsets = self.torch.arange(len(rows) + 1, dtype=self.torch.int64)
        return self.tbe(rows, offsets)                 # one id per sample, no pooling

    def lookup(self, ids):
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        with self.torch.no_grad():
            out = self._forward(self._rows(ids, insert=False)).numpy()
        return out if self.row_dim == self.dim else np.ascontiguousarray(out[:, :self.dim])

    def assign(self, ids, values, add):
        if not len(ids):
            return
        rows = self._rows(ids, insert=True)
        values = self.torch.from_numpy(values)
        with self.torch.no_grad():
            for sel in occurrence_rounds(ids):      # duplicates: sequential, last write wins
                sel_t = self.torch.from_numpy(sel)
                r = rows[sel_t]
                new = values[sel_t]
                if add:
                    new = self.weights[r, :self.dim] + new
                self.weights[r, :self.dim] = new

    def apply_gradients(self, ids, grads, enable_dedup, lr):
        if not len(ids):
            return
        rows = self._rows(ids, insert=True)
        self.tbe.set_learning_rate(lr)
        if enable_dedup:
            uniq, first = np.unique(ids, return_index=True)
            first = np.sort(first)                   # first occurrences, in batch order
            _, summed = dedup(ids, grads)            # the same order
            self._step(rows[self.torch.from_numpy(first)], summed)
        else:
            for sel in occurrence_rounds(ids):
                self._step(rows[self.torch.from_numpy(sel)], grads[sel])

    def _step(self, rows, grads):
        torch = self.torch
        if self.weight_decay:
            with torch.no_grad():
                w = self.weights[rows, :self.dim].numpy()
            grads = grads + self.weight_decay * w            # Monolith: g' = g + wd*w
        if self.row_dim != self.dim:
            padded = np.zeros((len(grads), self.row_dim), np.float32)
            padded[:, :self.dim] = grads
            grads = padded
        self._forward(rows).backward(torch.from_numpy(np.ascontiguousarray(grads)))


class Library:
    """torch, FBGEMM and TorchRec, imported on the first request (after the pipe is up)."""

    def __init__(self):
        import fbgemm_gpu
        import torch
        import torchrec
        from fbgemm_gpu.split_embedding_configs import EmbOptimType, SparseType
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import PoolingMode
        from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
            ComputeDevice, EmbeddingLocation, SplitTableBatchedEmbeddingBagsCodegen)
        from torchrec.modules.mc_modules import LFU_EvictionPolicy, MCHManagedCollisionModule
        from torchrec.sparse.jagged_tensor import JaggedTensor
        self.torch, self.fbgemm_gpu, self.torchrec = torch, fbgemm_gpu, torchrec
        self.MCH, self.LFU, self.JT = MCHManagedCollisionModule, LFU_EvictionPolicy, JaggedTensor
        self.TBE, self.Opt, self.FP32 = SplitTableBatchedEmbeddingBagsCodegen, EmbOptimType, \
            SparseType.FP32
        self.HOST, self.CPU, self.NONE = EmbeddingLocation.HOST, ComputeDevice.CPU, \
            PoolingMode.NONE
        self.cpu = torch.device("cpu")
        threads = os.environ.get("HASHLAB_TORCHREC_THREADS")   # the engine's `threads`
        if threads:
            torch.set_num_threads(int(threads))


class Worker(serve.TableHost):
    def __init__(self):
        super().__init__()
        self.lib = Library()

    def hello(self, args, arrays):
        lib = self.lib
        return {"torch": lib.torch.__version__, "fbgemm_gpu": lib.fbgemm_gpu.__version__,
                "torchrec": lib.torchrec.__version__, "numpy": np.__version__,
                "python": sys.version.split()[0], "pid": os.getpid()}, {}

    def make_table(self, args):
        return Table(self.lib, int(args["dim"]), args["optimizer"], float(args["lr"]),
                     float(args["init_value"]), float(args["accumulator"]),
                     float(args.get("weight_decay", 0.0)), int(args.get("capacity", 1024)))

    def stats(self, args, arrays):
        t = self._table(args)
        return {"capacity": t.zch_size - 1, "rebuilds": t.rebuilds,
                "threads": t.lib.torch.get_num_threads(),
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}, {}


if __name__ == "__main__":
    serve.main(Worker)
