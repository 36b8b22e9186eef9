"""A test-only engine with a known slowdown, for measuring the gate's power
(scripts/gate_power.py, tests/lab): `test-slow-lookup` wraps another engine (default
native-cpu) and, on every `lookup`, also looks up the first `fraction` of the batch again. The
extra work is real (more hash probes and copies in wall-clock time, more instructions and
cache traffic under callgrind), the results are unchanged, and nothing in the shipped engines
changes. Importing this module registers the engine (the simulated mode's child process
imports it by name for that).
"""
from __future__ import annotations

import numpy as np

import engines

NAME = "test-slow-lookup"


class SlowLookupTable:
    """A table whose lookup does `1 + fraction` lookups' worth of work."""

    # Bound once, so that calling them costs no __getattr__ detour: only lookup may change.
    DIRECT = ("assign", "assign_add", "lookup_entry", "apply_gradients", "size", "save",
              "restore")

    def __init__(self, inner, fraction: float):
        self._inner = inner
        self._fraction = fraction
        for name in self.DIRECT:
            setattr(self, name, getattr(inner, name))

    def lookup(self, ids):
        out = self._inner.lookup(ids)
        extra = int(len(ids) * self._fraction)
        if extra:
            self._inner.lookup(np.asarray(ids)[:extra])
        return out

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _inner(table):
    return table._inner if isinstance(table, SlowLookupTable) else table


class SlowLookupEngine(engines.Engine):
    """Everything of `base`, except that tables look up slower (fused lookups are unchanged).
    An Engine subclass, as the registry requires; every call goes to `base`."""

    name = NAME

    def __init__(self, base: str = "native-cpu", fraction: float = 0.25, **options):
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction: must be in (0, 1], got {fraction}")
        self._base = engines.get(base, **options)
        self._fraction = fraction
        self.capabilities = self._base.capabilities

    def create_table(self, *args, **kwargs):
        # The base engine's create_table: its own checks, and tables and filters that agree
        # on the engine they belong to.
        return SlowLookupTable(self._base.create_table(*args, **kwargs), self._fraction)

    def _create_table(self, *args, **kwargs):     # Engine's hook (create_table above skips it)
        return SlowLookupTable(self._base._create_table(*args, **kwargs), self._fraction)

    def create_hash_filter(self, *args, **kwargs):
        return self._base.create_hash_filter(*args, **kwargs)

    def fused_lookup(self, tables, *args, **kwargs):
        return self._base.fused_lookup([_inner(t) for t in tables], *args, **kwargs)

    def fused_apply_gradients(self, tables, *args, **kwargs):
        return self._base.fused_apply_gradients([_inner(t) for t in tables], *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._base, name)


def register() -> None:
    engines.register(NAME, lambda **options: SlowLookupEngine(**options))


register()
