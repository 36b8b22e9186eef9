"""Example hashtable-lab engine: an embedding table on a Python dict.

The lab imports this module only when it needs the engine (the entry point in pyproject.toml
names `DictEngine`). engines.api validates every argument before calling the `_`-prefixed
methods below, so they see clean numpy arrays: ids int64[n], values/grads float32[n, dim].
"""
from hashlab_example_dict.engine import DictEngine, DictTable

__all__ = ["DictEngine", "DictTable"]
