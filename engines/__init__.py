"""hashtable-lab engines: one interface (engines.api), several engines behind a registry.

    import engines
    engines.available()                      # -> [EngineInfo(name, available, reason, caps)]
    eng = engines.get("numpy")               # raises engines.EngineUnavailable(reason)
    t = eng.create_table(engines.table_config(dim=8, optimizer="adagrad"))

Engines are the built-ins, installed plug-ins (entry-point group `hashtable_lab.engines`, see
docs/your_engine.md) and engines registered at run time; `engines.get("module:Factory")` loads
one that is not installed. Importing this package loads no engine: each is imported (and CUDA
probed) only when `available()` or `get()` asks for it, so CPU-only machines and asv's workers
stay safe.
"""
from __future__ import annotations

from engines.api import (Capabilities, Divergence, Engine, EngineInfo, HashFilter,
                         Requirements, Table)
from engines.errors import CheckpointError, CheckpointWarning, EngineUnavailable
from engines.config import TableSpec, parse_table_config, table_config
from engines.lr import PolynomialDecay
from engines.registry import (BrokenPlugin, available, get, info, names, register, rejected,
                              unregister)

__all__ = [
    "BrokenPlugin", "Capabilities", "CheckpointError", "CheckpointWarning", "Divergence",
    "Engine", "EngineInfo", "EngineUnavailable", "HashFilter", "Requirements", "Table",
    "TableSpec", "PolynomialDecay", "available", "get", "info", "names", "parse_table_config",
    "register", "rejected", "table_config", "unregister",
]
