"""Known, intended divergences from the numpy reference.

Two sources, merged per engine:
- the engine's own `known_divergences` attribute (a dict `key -> explanation`), which engine
  authors set (the TensorFlow engine's `kernels="tf"` mode lists the optimizers whose TF
  kernel rounds differently; the TFRA peer lists Adagrad);
- this module's registry (`register`), for divergences the lab itself knows about.

A key is an op name ("apply_gradients"), an optimizer name ("adagrad") or "op:optimizer"
("apply_gradients:adagrad"). A failing comparison whose op or table optimizers match a key
is reported as `known_divergence` with the explanation instead of `fail`.
"""
from __future__ import annotations

from typing import Iterable

_REGISTRY: dict[str, dict[str, str]] = {}


def register(engine_name: str, key: str, explanation: str) -> None:
    """Record that `engine_name` intentionally differs from the reference on `key`."""
    if not explanation:
        raise ValueError("explanation: say why the engine differs")
    _REGISTRY.setdefault(engine_name, {})[key] = explanation


def unregister(engine_name: str, key: str | None = None) -> None:
    if key is None:
        _REGISTRY.pop(engine_name, None)
    else:
        _REGISTRY.get(engine_name, {}).pop(key, None)


def known_for(engine, engine_name: str | None = None) -> dict[str, str]:
    """Every known divergence of an engine instance: its attribute, then the registry."""
    name = engine_name or getattr(engine, "name", "")
    merged = dict(getattr(engine, "known_divergences", None) or {})
    merged.update(_REGISTRY.get(name, {}))
    return merged


def match(known: dict[str, str], op: str, optimizers: Iterable[str]) -> str | None:
    """The explanation covering a mismatch of `op` on tables with `optimizers`, or None."""
    candidates = [op] + [k for opt in optimizers for k in (f"{op}:{opt}", opt)]
    for key in candidates:
        if key in known:
            return f"{key}: {known[key]}"
    return None
