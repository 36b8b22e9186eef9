"""The "tfra" engine: TensorFlow Recommenders-Addons' dynamic embedding as a peer, out of
process (TFRA cannot be imported next to our TF 2.21; see docs/toolchain.md).

Tables live in a worker process started with the TFRA venv's python (engines/tfra/env.py;
the machinery every peer shares is engines/peer/). It declares what TFRA does:
lookup, assign / assign_add (TFRA upsert), apply_gradients with SGD and Adagrad through
`de.DynamicEmbeddingOptimizer`, size. Timing: `last_worker_seconds` is the op inside the
worker, `last_ipc_seconds` the rest of the round trip.
"""
from __future__ import annotations

import os

import numpy as np

from engines import api
from engines.peer.engine import PeerEngine, PeerTable
from engines.tfra.env import VENV

_CAPABILITIES = api.Capabilities(
    ops=frozenset({"assign", "assign_add", "lookup", "apply_gradients", "size"}),
    optimizers=frozenset({"sgd", "adagrad"}),
    initializers=frozenset({"zeros", "ones", "constants"}),
    compressors=frozenset({"fp32"}),
    filters=frozenset(), fused=False, ttl=False, dedup=True, multi_segment=False,
    quirks=False)


class TfraEngine(PeerEngine):
    name = "tfra"
    capabilities = _CAPABILITIES
    venv = VENV
    worker_script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
    label = "TFRA worker"
    known_divergences = {
        "adagrad": "TFRA trains with TF's v1 Adagrad kernel (ResourceSparseApplyAdagrad): "
                   "w -= lr*g*rsqrt(n), with Eigen's rsqrt (not correctly rounded); Monolith "
                   "computes w -= (lr/sqrt(n))*g. About 1 ulp per step. TF's Adagrad has no weight "
                   "decay: the worker feeds it g + wd*w (Monolith's scalar rule).",
    }

    def __init__(self, python: str | None = None, worker_script: str | None = None,
                 timeout: float = 600.0, shared: bool = True, threads: int | None = None):
        # `threads` is accepted so scenarios can pass it uniformly; TF sizes its own pools.
        self.threads = threads
        super().__init__(python, worker_script, timeout, shared)

    def _create_table(self, spec, learning_rates, hash_filter, seed, monolith_quirks):
        if monolith_quirks:
            raise ValueError("monolith_quirks: engine 'tfra' cannot reproduce Monolith's bugs")
        seg = spec.segments[0]
        init = {"zeros": 0.0, "ones": 1.0}.get(seg.initializer)
        if init is None:
            init = float(seg.init_params["constant"])
        accumulator = float(seg.opt_params.get("initial_accumulator_value", 0.0))
        reply, _ = self.client.request("create_table", {
            "dim": spec.dim, "optimizer": seg.optimizer, "lr": float(learning_rates[0]),
            "init_value": init, "accumulator": accumulator,
            "weight_decay": float(seg.opt_params.get("weight_decay_factor", 0.0))})
        return TfraTable(self, spec, learning_rates, reply["table"])


class TfraTable(PeerTable):
    def _assign(self, ids, values, req_time):
        self._call("assign", {"add": False}, {"ids": ids, "values": values})
        self._written(req_time)

    def _assign_add(self, ids, values, req_time):
        self._call("assign", {"add": True}, {"ids": ids, "values": values})
        self._written(req_time)

    def _lookup(self, ids):
        _, out = self._call("lookup", arrays={"ids": ids})
        return out["values"].astype(np.float32, copy=False)

    def _apply_gradients(self, ids, grads, global_step, enable_dedup, req_time, lrs):
        self._call("apply_gradients", {"enable_dedup": enable_dedup, "lr": float(lrs[0])},
                   {"ids": ids, "grads": grads})
        self._written(req_time)

    def _size(self):
        return self._call("size")[0]["size"]

    _NO_FORMAT = "TFRA has no Monolith-format equivalent"

    def _lookup_entry(self, ids):
        self._not_declared("lookup_entry", self._NO_FORMAT)

    def _save(self, basename, nshards):
        self._not_declared("save", self._NO_FORMAT)

    def _stage_restore(self, basename):
        self._not_declared("restore", self._NO_FORMAT)

    def _commit_restore(self, staged):
        self._not_declared("restore", self._NO_FORMAT)

    def _save_as_tensor(self, shard_idx, num_shards, limit, offset):
        self._not_declared("save_as_tensor", self._NO_FORMAT)
