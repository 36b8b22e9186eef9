"""The "tensorflow" engine: table state in TensorFlow, ops as TF ops in tf.function.

    engines.get("tensorflow")                 # Monolith's formulas in TF math (conformant)
    engines.get("tensorflow", kernels="tf")   # TF's own sparse training kernels where TF has one

This module does not import TensorFlow, so `engines.available()` answers at once and can report
"tensorflow is not installed" on machines without it (the GPU machine has none); the table
lives in tf_table, which imports TensorFlow (quietly, through tf_runtime).
Design and measured divergences: engines/reference/TF_ENGINE.md.
"""
from __future__ import annotations

import dataclasses
import importlib.util

from engines import api

KERNEL_MODES = ("monolith", "tf")


class TensorFlowEngine(api.Engine):
    name = "tensorflow"
    # Default mode: every op, optimizer, filter (the reference filters), fused block loop,
    # TTL, dedup and quirks, bit-identical to the numpy reference.
    capabilities = api.Capabilities()
    # optimizer -> engines.Divergence: why this engine's results differ from the reference
    # and by how much at most (empty by default)
    known_divergences: dict = {}

    @classmethod
    def probe(cls) -> None:
        # Looked up, not imported: loading TensorFlow takes seconds, and listing engines
        # must not pay for it (tf_table imports it when the first table is built).
        if importlib.util.find_spec("tensorflow") is None:
            raise api.EngineUnavailable("tensorflow is not installed (install the project's "
                                        "`tf` extra)")

    def __init__(self, kernels: str = "monolith", threads: int | None = None):
        # `threads` is accepted so scenarios can pass it uniformly; TF sizes its own pools.
        if kernels not in KERNEL_MODES:
            raise ValueError(f"kernels must be one of {KERNEL_MODES}, got {kernels!r}")
        self.probe()
        self.kernels = kernels
        self.threads = threads
        if kernels == "tf":
            from engines.reference import tf_kernels
            # TF's kernels cannot express Monolith's quirks (FTRL sign bit, AVX weight decay).
            self.capabilities = dataclasses.replace(api.Capabilities(), quirks=False)
            self.known_divergences = dict(tf_kernels.DIVERGENCES)

    def _create_table(self, spec, learning_rates, hash_filter, seed, monolith_quirks):
        if monolith_quirks and not self.capabilities.quirks:
            raise ValueError("monolith_quirks: not available with kernels='tf' (TF's training "
                             "kernels cannot reproduce Monolith's bugs); use the default mode")
        from engines.reference.tf_table import TensorFlowTable
        return TensorFlowTable(self, spec, learning_rates, hash_filter, seed, monolith_quirks,
                               kernels=self.kernels == "tf")

    def _create_hash_filter(self, spec):
        # Admission runs on the host with the numpy reference filters (TF has no equivalent
        # structure); the table asks the filter only about ids it does not hold.
        from engines.reference.filters import make_reference_filter
        return make_reference_filter(spec)
