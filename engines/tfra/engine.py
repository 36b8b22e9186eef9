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


class TfraTable(PeerTable):
    no_checkpoints = "TFRA has no Monolith-format equivalent"


class TfraEngine(PeerEngine):
    name = "tfra"
    capabilities = _CAPABILITIES
    table_class = TfraTable
    venv = VENV
    worker_script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
    label = "TFRA worker"
    known_divergences = {
        "adagrad": api.Divergence(
            "TFRA trains with TF's v1 Adagrad kernel (ResourceSparseApplyAdagrad): "
            "w -= lr*g*rsqrt(n), with Eigen's rsqrt (not correctly rounded); Monolith computes "
            "w -= (lr/sqrt(n))*g. A few ulp per step, more for weights that cancel to near "
            "zero (measured at most 1.5e-7 absolute per step in the quick and default "
            "profiles' optimizer_sweep, 1.2e-3 relative next to zero). TF's "
            "Adagrad has no weight decay: the worker feeds it g + wd*w (Monolith's scalar "
            "rule).",
            max_ulp=4, max_rel=1e-5, abs_floor=5e-7, per_step=True),
    }

    def __init__(self, python: str | None = None, worker_script: str | None = None,
                 timeout: float = 600.0, shared: bool = True, threads: int | None = None):
        # `threads` is accepted so scenarios can pass it uniformly; TF sizes its own pools.
        self.threads = threads
        super().__init__(python, worker_script, timeout, shared)

