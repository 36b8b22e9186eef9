"""`native-cpu`: the C++ engine. Python only validates (engines/api.py) and passes arrays.

Every table op releases the GIL inside C++; see engines/native/README.md for the threading and
concurrency contract.
"""
from __future__ import annotations

import os

from engines import api
from engines import validation as _v
from engines.native.common import NativeTable, config_text, load_module
from engines.native.filters import NativeHashFilter


def native_module():
    """The compiled extension; EngineUnavailable when it was not built."""
    return load_module("_native_cpu", " (pip install -e . builds it)")


class NativeCpuTable(NativeTable):
    def __init__(self, engine, spec, learning_rates, hash_filter, seed, quirks):
        super().__init__(spec, learning_rates)
        self._init_lrs()
        self._t = native_module().Table(engine._pool,
                                        None if hash_filter is None else hash_filter._f,
                                        config_text(spec, seed, quirks))

    def _lookup(self, ids):
        return self._t.lookup(ids)


class NativeCpuEngine(api.Engine):
    name = "native-cpu"
    capabilities = api.Capabilities(threads=True)

    def __init__(self, threads: int | None = None):
        if threads is None:
            threads = os.cpu_count() or 1
        threads = _v.check_int(threads, "threads")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if threads > 1024:
            raise ValueError(f"threads must be <= 1024, got {threads}")
        self.threads = threads
        self._pool = native_module().Pool(threads)

    @classmethod
    def probe(cls) -> None:
        native_module()

    def _create_table(self, spec, learning_rates, hash_filter, seed, monolith_quirks):
        return NativeCpuTable(self, spec, learning_rates, hash_filter, seed, monolith_quirks)

    def _create_hash_filter(self, spec):
        return NativeHashFilter(spec, native_module())
