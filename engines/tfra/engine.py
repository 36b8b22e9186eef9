"""The "tfra" engine: TensorFlow Recommenders-Addons' dynamic embedding as a peer, out of
process (TFRA cannot be imported next to our TF 2.21; see docs/toolchain.md).

Tables live in a worker process started with the TFRA venv's python (engines/tfra/env.py);
this side validates input (engines.api), ships arrays over a versioned pipe protocol and
keeps only `max_update_ts`, the metadata TFRA has no notion of. It declares what TFRA does:
lookup, assign / assign_add (TFRA upsert), apply_gradients with SGD and Adagrad through
`de.DynamicEmbeddingOptimizer`, size. Timing: `last_worker_seconds` is the op inside the
worker, `last_ipc_seconds` the rest of the round trip.
"""
from __future__ import annotations

import atexit
import os
import weakref

import numpy as np

from engines import api
from engines.tfra import env
from engines.tfra.client import WORKER_SCRIPT, WorkerClient
from engines.tfra.protocol import ProtocolError, WorkerDied

_CAPABILITIES = api.Capabilities(
    ops=frozenset({"assign", "assign_add", "lookup", "apply_gradients", "size"}),
    optimizers=frozenset({"sgd", "adagrad"}),
    initializers=frozenset({"zeros", "ones", "constants"}),
    compressors=frozenset({"fp32"}),
    filters=frozenset(), fused=False, ttl=False, dedup=True, multi_segment=False,
    quirks=False)

_SHARED: dict[tuple[str, str], WorkerClient] = {}


def _shared_client(python: str, script: str, timeout: float) -> WorkerClient:
    """One worker per (python, script) for the whole process: starting TF takes seconds, and
    test suites create many engines. A dead worker is replaced on the next request for one."""
    key = (python, script)
    client = _SHARED.get(key)
    if client is None or not client.alive():
        client = WorkerClient(python, script, timeout=timeout)
        _SHARED[key] = client
    return client


@atexit.register
def _close_shared():
    for client in _SHARED.values():
        client.close()
    _SHARED.clear()


class TfraEngine(api.Engine):
    name = "tfra"
    capabilities = _CAPABILITIES
    known_divergences = {
        "adagrad": "TFRA trains with TF's v1 Adagrad kernel (ResourceSparseApplyAdagrad): "
                   "w -= lr*g*rsqrt(n), with Eigen's rsqrt (not correctly rounded); Monolith "
                   "computes w -= (lr/sqrt(n))*g. About 1 ulp per step. TF's Adagrad has no weight "
                   "decay: the worker feeds it g + wd*w (Monolith's scalar rule).",
    }

    @classmethod
    def probe(cls) -> None:
        python = env.venv_python()
        if python is None:
            raise api.EngineUnavailable(
                f"no tfra venv configured: run `hashlab env create tfra --path P` or set "
                f"{env.ENV_VAR}")
        if not os.path.exists(python):
            raise api.EngineUnavailable(f"tfra venv not found at {env.default_path()}; run "
                                        f"`hashlab env create tfra`")

    def __init__(self, python: str | None = None, worker_script: str = WORKER_SCRIPT,
                 timeout: float = 600.0, shared: bool = True, threads: int | None = None):
        # `threads` is accepted so scenarios can pass it uniformly; TF sizes its own pools.
        if python is None:
            self.probe()
            python = env.venv_python()
        self.threads = threads
        try:
            if shared:
                self.client = _shared_client(python, worker_script, timeout)
            else:
                self.client = WorkerClient(python, worker_script, timeout=timeout)
        except (WorkerDied, ProtocolError, OSError) as exc:
            # A worker that cannot start makes the engine unavailable here, with the reason
            # (its stderr tail), instead of an exception that ends the caller's command.
            raise api.EngineUnavailable(f"the TFRA worker ({python}) did not start: "
                                        f"{exc}") from exc
        self._owns_client = not shared
        self.versions = dict(self.client.versions)

    @property
    def last_worker_seconds(self) -> float:
        return self.client.last_worker_seconds

    @property
    def last_ipc_seconds(self) -> float:
        return self.client.last_ipc_seconds

    def close(self) -> None:
        """Stop the worker if this engine started its own (shared=False)."""
        if self._owns_client:
            self.client.close()

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




class TfraTable(api.Table):
    def __init__(self, engine: TfraEngine, spec, learning_rates, table_id: int):
        super().__init__(spec, learning_rates)
        self.engine_name = engine.name
        self._client = engine.client
        self._id = table_id
        self._max_ts = 0
        # Not a request from the finalizer: it can run inside another request of this thread.
        weakref.finalize(self, self._client.forget_table, table_id)

    @property
    def last_worker_seconds(self) -> float:
        return self._client.last_worker_seconds

    @property
    def last_ipc_seconds(self) -> float:
        return self._client.last_ipc_seconds

    def _call(self, op, args=None, arrays=None):
        return self._client.request(op, dict(args or {}, table=self._id), arrays)

    # max_update_ts moves only when the worker did the op.
    def _assign(self, ids, values, req_time):
        self._call("assign", {"add": False}, {"ids": ids, "values": values})
        self._max_ts = max(self._max_ts, req_time)

    def _assign_add(self, ids, values, req_time):
        self._call("assign", {"add": True}, {"ids": ids, "values": values})
        self._max_ts = max(self._max_ts, req_time)

    def _lookup(self, ids):
        _, out = self._call("lookup", arrays={"ids": ids})
        return out["values"].astype(np.float32, copy=False)

    def _apply_gradients(self, ids, grads, global_step, enable_dedup, req_time, lrs):
        self._call("apply_gradients", {"enable_dedup": enable_dedup, "lr": float(lrs[0])},
                   {"ids": ids, "grads": grads})
        self._max_ts = max(self._max_ts, req_time)

    def _size(self):
        return self._call("size")[0]["size"]

    def _max_update_ts(self):
        return self._max_ts

    def _not_declared(self, op):
        raise NotImplementedError(f"engine 'tfra' does not declare {op} (TFRA has no "
                                  f"Monolith-format equivalent)")

    def _lookup_entry(self, ids):
        self._not_declared("lookup_entry")

    def _save(self, basename, nshards):
        self._not_declared("save")

    def _stage_restore(self, basename):
        self._not_declared("restore")

    def _commit_restore(self, staged):
        self._not_declared("restore")

    def _save_as_tensor(self, shard_idx, num_shards, limit, offset):
        self._not_declared("save_as_tensor")
