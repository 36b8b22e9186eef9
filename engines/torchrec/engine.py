"""The "torchrec" engine: PyTorch's answer to a table keyed by raw int64 ids, as a peer, out of
process (torch, FBGEMM and TorchRec live in their own venv; see docs/toolchain.md).

A table is TorchRec's managed-collision module (`MCHManagedCollisionModule`: ids -> rows of a
fixed-size table) over FBGEMM's CPU embedding table, trained by FBGEMM's fused optimizers
(EXACT_SGD, EXACT_ADAGRAD); what the worker adds around them, and why, is in
engines/torchrec/worker.py. FBGEMM's zero-collision hash (`HashZchManagedCollisionModule`)
is inference-only on the CPU and cannot insert, so it is not what runs here.

Declared: lookup, assign / assign_add, apply_gradients with SGD and Adagrad, size; dedup;
threads (torch's intra-op pool, one worker per thread count). Known divergences: both optimizers round differently (FBGEMM
contracts multiply-adds into FMAs). Options: `threads`, `capacity` (the module's starting
number of rows; it doubles before a write that would not fit, so nothing is evicted).
"""
from __future__ import annotations

import os

from engines import api
from engines.peer.engine import PeerEngine, PeerTable
from engines.torchrec.env import VENV

_CAPABILITIES = api.Capabilities(
    ops=frozenset({"assign", "assign_add", "lookup", "apply_gradients", "size"}),
    optimizers=frozenset({"sgd", "adagrad"}),
    initializers=frozenset({"zeros", "ones", "constants"}),
    compressors=frozenset({"fp32"}),
    filters=frozenset(), fused=False, ttl=False, dedup=True, multi_segment=False,
    quirks=False, threads=True)

DEFAULT_CAPACITY = 1024
THREADS_VAR = "HASHLAB_TORCHREC_THREADS"     # the worker's torch.set_num_threads


class TorchrecTable(PeerTable):
    no_checkpoints = ("TorchRec checkpoints are state_dict tensors; Monolith's per-entry "
                      "timestamps and sharded EntryDump files have no counterpart there")

    def stats(self) -> dict:
        """The worker's view of the table: `capacity` (ids it holds before the next rebuild),
        `rebuilds` (how often it grew), `threads` (torch's intra-op threads),
        `omp_wait_policy` (the worker's OMP_WAIT_POLICY)."""
        return {k: v for k, v in self._call("stats")[0].items()
                if k in ("capacity", "rebuilds", "threads", "omp_wait_policy")}


class TorchrecEngine(PeerEngine):
    name = "torchrec"
    capabilities = _CAPABILITIES
    table_class = TorchrecTable
    venv = VENV
    worker_script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
    label = "TorchRec worker"
    # Declared bound of both divergences, |engine - reference| <= BOUND * max(1, |reference|)
    # (engines.Divergence: that relative bound, or that absolute one below 1), checked by
    # tests/peer/test_torchrec_engine.py and by the parity runner; measured worst cases in the
    # texts.
    divergence_bound = 1e-5
    known_divergences = {
        "sgd": api.Divergence(
            "FBGEMM's EXACT_SGD computes w + (-lr)*g as one fused multiply-add (one rounding); "
            "Monolith rounds lr*g first. Per step the results differ by at most half an ulp of "
            "lr*g. Declared bound: |dw| <= 1e-5 * max(1, |w|). Measured worst: 6.6e-7 after 20 "
            "steps of 2,000 gradients on 300 ids (lr 0.1), 4.8e-7 in the catalog's "
            "default-size optimizer_sweep; in ulps of the result up to 4,132, where w - lr*g "
            "nearly cancels to zero.",
            max_rel=divergence_bound, abs_floor=divergence_bound),
        "adagrad": api.Divergence(
            "FBGEMM's EXACT_ADAGRAD (element-wise, as Monolith's) accumulates n += g*g as a "
            "fused multiply-add and orders lr*g/sqrt(n) its own way; Monolith computes "
            "w -= (lr/sqrt(n))*g. Weight decay is fed as g + wd*w (Monolith's rule). Declared "
            "bound: |dw| <= 1e-5 * max(1, |w|). Measured worst: 3.6e-7 after 20 steps of 2,000 "
            "gradients on 300 ids (lr 0.1, with and without weight decay), 3.0e-7 in the "
            "catalog's default-size optimizer_sweep; in ulps of the result up to 5,909, where w "
            "nearly cancels to zero. monolith_optimize (lr 0.001) stays within 4 ulp.",
            max_rel=divergence_bound, abs_floor=divergence_bound),
    }

    def __init__(self, python: str | None = None, worker_script: str | None = None,
                 timeout: float = 600.0, shared: bool = True, threads: int | None = None,
                 capacity: int = DEFAULT_CAPACITY):
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        self.threads = threads
        self.capacity = capacity
        # torch's intra-op pool is per process and costly to resize, so each thread count
        # gets a worker of its own that sets it once at start. Its OpenMP threads wait
        # passively between ops unless the caller chose otherwise: with the active default they
        # spin after every op and, on a shared machine or beside another worker, take the
        # cores the next op needs (measured: docs/perf_anchors.md §10).
        env = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        if threads:
            env[THREADS_VAR] = str(threads)
        super().__init__(python, worker_script, timeout, shared, worker_env=env)

    def _table_args(self, spec) -> dict:
        # the module keeps one row for ids it does not hold
        return dict(super()._table_args(spec), capacity=self.capacity + 1)

