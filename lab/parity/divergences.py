"""Known, intended divergences from the numpy reference, each with its declared bound.

Two sources, merged per engine:
- the engine's own `known_divergences` attribute (a dict `key -> engines.Divergence`), which
  engine authors set (the TensorFlow engine's `kernels="tf"` mode lists the optimizers whose
  TF kernel rounds differently; the TFRA peer lists Adagrad);
- this module's registry (`register`), for divergences the lab itself knows about.

A key is an op name ("apply_gradients"), an optimizer name ("adagrad") or "op:optimizer"
("apply_gradients:adagrad"). A failing comparison whose op or table optimizers match a key is
compared again within the divergence's bound (engines.Divergence: ulp, relative error, per
optimizer step or in total): within it, the op is `known_divergence`; beyond it, `fail`. A
divergence declared without a bound (a bare explanation, as before bounds existed) never
excuses a mismatch: the runner reports it as a failure that names the missing bound.
"""
from __future__ import annotations

from typing import Iterable

from engines.api import Divergence

_REGISTRY: dict[str, dict[str, Divergence]] = {}


def register(engine_name: str, key: str, divergence: Divergence) -> None:
    """Record that `engine_name` intentionally differs from the reference on `key`, within
    `divergence`'s bound."""
    if not isinstance(divergence, Divergence):
        raise TypeError(f"divergence: an engines.Divergence (why and bound), got "
                        f"{type(divergence).__name__}")
    _REGISTRY.setdefault(engine_name, {})[key] = divergence


def unregister(engine_name: str, key: str | None = None) -> None:
    if key is None:
        _REGISTRY.pop(engine_name, None)
    else:
        _REGISTRY.get(engine_name, {}).pop(key, None)


def known_for(engine, engine_name: str | None = None) -> dict:
    """Every known divergence of an engine instance: its attribute, then the registry."""
    name = engine_name or getattr(engine, "name", "")
    merged = dict(getattr(engine, "known_divergences", None) or {})
    merged.update(_REGISTRY.get(name, {}))
    return merged


def match(known: dict, op: str, optimizers: Iterable[str]) -> list[tuple[str, object]]:
    """[(key, declaration)] of every divergence covering a mismatch of `op` on tables with
    `optimizers` (an op over several tables, a fused one, can meet several), most specific
    first; empty when none does. A declaration is an engines.Divergence, or whatever an
    engine declared without a bound."""
    found = []
    for key in [op] + [k for opt in optimizers for k in (f"{op}:{opt}", opt)]:
        if key in known and key not in [k for k, _ in found]:
            found.append((key, known[key]))
    return found


def explanation(declared) -> str:
    return declared.why if isinstance(declared, Divergence) else str(declared)
