"""hashtable-lab engines: one interface (engines.api), several engines behind a registry.

    import engines
    engines.available()                      # -> [EngineInfo(name, available, reason, caps)]
    eng = engines.get("numpy")               # raises engines.EngineUnavailable(reason)
    t = eng.create_table(engines.table_config(dim=8, optimizer="adagrad"))

Importing this package loads no engine: each is imported (and CUDA probed) only when
`available()` or `get()` asks for it, so CPU-only machines and asv's workers stay safe.
"""
from __future__ import annotations

import importlib
from typing import Callable

from engines.api import Capabilities, Engine, EngineInfo, HashFilter, Requirements, Table
from engines.errors import CheckpointError, EngineUnavailable
from engines.config import TableSpec, parse_table_config, table_config
from engines.lr import PolynomialDecay

__all__ = [
    "Capabilities", "CheckpointError", "Engine", "EngineInfo", "EngineUnavailable", "HashFilter",
    "Requirements", "Table", "TableSpec", "PolynomialDecay", "available", "get", "names",
    "parse_table_config",
    "register", "table_config", "unregister",
]

# name -> "module:attribute" of an Engine subclass. The class may define a classmethod
# `probe()` that raises EngineUnavailable(reason) when it cannot run here.
_BUILTIN = {
    "numpy": "engines.reference.numpy_engine:NumpyEngine",
    "native-cpu": "engines.native.cpu:NativeCpuEngine",
    "native-gpu": "engines.native.gpu:NativeGpuEngine",
    "tensorflow": "engines.reference.tf_engine:TensorFlowEngine",
    "tfra": "engines.tfra.engine:TfraEngine",
    "tf-native": "engines.tfops.engine:TfNativeEngine",
}
_EXTRA: dict[str, Callable[..., Engine]] = {}


def register(name: str, factory: Callable[..., Engine]) -> None:
    """Add an engine (e.g. a test-only one). `factory(**options)` returns an Engine."""
    if name in _BUILTIN:
        raise ValueError(f"name: {name!r} is a built-in engine")
    _EXTRA[name] = factory


def unregister(name: str) -> None:
    _EXTRA.pop(name, None)


def names() -> list[str]:
    return list(_BUILTIN) + list(_EXTRA)


def _load_class(name: str):
    target = _BUILTIN[name]
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except EngineUnavailable:
        raise
    except ImportError as exc:
        raise EngineUnavailable(f"cannot import {module_name}: {exc}") from exc
    cls = getattr(module, attr)
    probe = getattr(cls, "probe", None)
    if probe is not None:
        probe()
    return cls


def get(name: str, **options) -> Engine:
    """An engine instance. Unknown names raise ValueError; unusable ones EngineUnavailable."""
    if name in _EXTRA:
        return _EXTRA[name](**options)
    if name not in _BUILTIN:
        raise ValueError(f"name: unknown engine {name!r}; known: {names()}")
    return _load_class(name)(**options)


def available() -> list[EngineInfo]:
    """Every engine, whether it can run here (or why not) and what it declares."""
    infos = []
    for name in names():
        try:
            if name in _EXTRA:
                caps = _EXTRA[name]().capabilities
            else:
                caps = _load_class(name).capabilities
        except EngineUnavailable as exc:
            infos.append(EngineInfo(name, False, exc.reason, None))
            continue
        infos.append(EngineInfo(name, True, "", caps))
    return infos
