"""What every out-of-process peer engine shares: the venv probe, one worker per interpreter,
tables that live in the worker, and the split of an op's time into the worker's and the pipe's.

A peer subclasses `PeerEngine` (setting `name`, `venv`, `worker_script`, `label`,
`table_class` and its capabilities) and `PeerTable` (saying why the checkpoint ops are not
declared). The workers answer the same table requests (engines/peer/serve.py, `TableHost`):
`create_table`, `assign` (with `add`), `lookup`, `apply_gradients`, `size`, `drop_table`. This
side validates input (engines.api), ships arrays over the versioned pipe protocol and keeps
only `max_update_ts`, the metadata the peers have no notion of.
"""
from __future__ import annotations

import atexit
import os
import weakref

import numpy as np

from engines import api
from engines.peer.client import WorkerClient
from engines.peer.protocol import ProtocolError, WorkerDied
from engines.peer.venv import PeerVenv

_SHARED: dict[tuple, WorkerClient] = {}


def _shared_client(python: str, script: str, timeout: float, label: str,
                   env: dict[str, str]) -> WorkerClient:
    """One worker per (python, script, environment) for the whole process: starting TF or
    torch takes seconds, and test suites create many engines. A dead worker is replaced on the
    next request for one."""
    key = (python, script, tuple(sorted(env.items())))
    client = _SHARED.get(key)
    if client is None or not client.alive():
        client = WorkerClient(python, script, timeout=timeout, label=label, env=env)
        _SHARED[key] = client
    return client


@atexit.register
def _close_shared():
    for client in _SHARED.values():
        client.close()
    _SHARED.clear()


class PeerEngine(api.Engine):
    venv: PeerVenv
    worker_script: str
    label: str = "peer worker"          # names the worker in errors ("TFRA worker")
    table_class: type                   # a PeerTable subclass

    @classmethod
    def probe(cls) -> None:
        python = cls.venv.python()
        name = cls.venv.name
        if python is None:
            raise api.EngineUnavailable(
                f"no {name} venv configured: run `hashlab env create {name} --path P` or set "
                f"{cls.venv.env_var}")
        if not os.path.exists(python):
            raise api.EngineUnavailable(f"{name} venv not found at {cls.venv.default_path()}; "
                                        f"run `hashlab env create {name}`")

    def __init__(self, python: str | None = None, worker_script: str | None = None,
                 timeout: float = 600.0, shared: bool = True,
                 worker_env: dict[str, str] | None = None):
        """`worker_env` is added to the worker's environment (settings it reads at start, such
        as its thread count); engines with different ones get different workers."""
        worker_env = dict(worker_env or {})
        if python is None:
            self.probe()
            python = self.venv.python()
        script = worker_script or self.worker_script
        try:
            if shared:
                self.client = _shared_client(python, script, timeout, self.label, worker_env)
            else:
                self.client = WorkerClient(python, script, timeout=timeout, label=self.label,
                                           env=worker_env)
        except (WorkerDied, ProtocolError, OSError) as exc:
            # A worker that cannot start makes the engine unavailable here, with the reason
            # (its stderr tail), instead of an exception that ends the caller's command.
            raise api.EngineUnavailable(f"the {self.label} ({python}) did not start: "
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

    def _table_args(self, spec) -> dict:
        """What `create_table` sends besides dim and learning rate; peers add their own."""
        seg = spec.segments[0]
        init = {"zeros": 0.0, "ones": 1.0}.get(seg.initializer)
        if init is None:
            init = float(seg.init_params["constant"])
        return {"optimizer": seg.optimizer, "init_value": init,
                "accumulator": float(seg.opt_params.get("initial_accumulator_value", 0.0)),
                "weight_decay": float(seg.opt_params.get("weight_decay_factor", 0.0))}

    def _create_table(self, spec, learning_rates, hash_filter, seed, monolith_quirks):
        if monolith_quirks:
            raise ValueError(f"monolith_quirks: engine {self.name!r} cannot reproduce "
                             f"Monolith's bugs")
        reply, _ = self.client.request("create_table", {
            "dim": spec.dim, "lr": float(learning_rates[0]), **self._table_args(spec)})
        return self.table_class(self, spec, learning_rates, reply["table"])


class PeerTable(api.Table):
    """A table that lives in the worker, named there by `table_id`."""

    def __init__(self, engine: PeerEngine, spec, learning_rates, table_id: int):
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

    def _written(self, req_time: int) -> None:
        """max_update_ts moves only when the worker did the op."""
        self._max_ts = max(self._max_ts, req_time)

    def _max_update_ts(self):
        return self._max_ts

    # The checkpoint ops: no peer declares them (each says why in `no_checkpoints`).
    no_checkpoints = ""

    def _not_declared(self, op):
        raise NotImplementedError(f"engine {self.engine_name!r} does not declare {op}"
                                  + (f" ({self.no_checkpoints})" if self.no_checkpoints
                                     else ""))

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
