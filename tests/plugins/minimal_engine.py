"""A minimal engine for the conformance plugin's own test (issue 20, row 7): SGD and the storage
ops, nothing else: one optimizer (sgd), one initializer (zeros), one compressor (fp32), no hash
filters, no fused ops, no TTL, no dedup, one segment, no quirks, no threads. Loaded as
`minimal_engine:MinimalEngine`.

Its arithmetic is the numpy reference's (so what it declares it computes right), and it refuses
everything it does not declare, loudly: a conformance test that builds something the engine did
not declare fails here instead of passing by accident. The suite must run every test it can
and skip the rest, naming the capability.
"""
from __future__ import annotations

from engines.api import TABLE_OPS, Capabilities
from engines.protos.embedding_hash_table_pb2 import SlotExpireTimeConfig
from engines.reference.numpy_engine import NumpyEngine, NumpyTable

NO_EXPIRY = SlotExpireTimeConfig().default_expire_time     # the proto's default: 36500 days

CAPABILITIES = Capabilities(
    ops=TABLE_OPS, optimizers=frozenset({"sgd"}), initializers=frozenset({"zeros"}),
    compressors=frozenset({"fp32"}), filters=frozenset(), fused=False, ttl=False, dedup=False,
    multi_segment=False, quirks=False, threads=False)


class MinimalTable(NumpyTable):
    def _apply_gradients(self, ids, grads, global_step, enable_dedup, req_time, lrs):
        if enable_dedup:
            raise NotImplementedError("engine test-minimal does not declare dedup")
        super()._apply_gradients(ids, grads, global_step, enable_dedup, req_time, lrs)


class MinimalEngine(NumpyEngine):
    name = "test-minimal"
    capabilities = CAPABILITIES

    def __init__(self):                          # no options: it declares no threads
        super().__init__()

    def _create_table(self, spec, learning_rates, hash_filter, seed, monolith_quirks):
        if spec.slot_expire_days or spec.default_expire_days != NO_EXPIRY:
            raise NotImplementedError("engine test-minimal does not declare TTL")
        if hash_filter is not None:
            raise NotImplementedError("engine test-minimal does not declare hash filters")
        return MinimalTable(self, spec, learning_rates, hash_filter, seed, monolith_quirks)
