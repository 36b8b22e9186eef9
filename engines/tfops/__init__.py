"""Monolith's TensorFlow op surface over the native C++ core (`tf-native` engine).

    from engines.tfops import HashTable, ShardedHashTable, create_hash_filter
    from engines.tfops import fused_lookup, fused_apply_gradient, cluster, listeners

The op library is compiled on first use (engines/tfops/build.py). Names are resolved lazily,
so importing this package does not import TensorFlow. See docs/tfops.md.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "HashTable": "engines.tfops.hash_table",
    "fused_lookup": "engines.tfops.hash_table",
    "fused_apply_gradient": "engines.tfops.hash_table",
    "HASH_TABLE_GRAPH_KEY": "engines.tfops.hash_table",
    "ShardedHashTable": "engines.tfops.sharded",
    "HashFilter": "engines.tfops.hash_filter",
    "create_hash_filter": "engines.tfops.hash_filter",
    "create_dummy_hash_filter": "engines.tfops.hash_filter",
    "intercept_gradient": "engines.tfops.hash_filter",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'engines.tfops' has no attribute {name!r}")
