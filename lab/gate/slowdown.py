"""A test-only engine with a known slowdown, for measuring the gate's power
(scripts/gate_power.py, tests/lab): `test-slow-lookup` wraps another engine (default
native-cpu) and, on every `lookup`, also looks up the first `fraction` of the batch again. The
extra work is real (more hash probes and copies in wall-clock time, more instructions and
cache traffic under callgrind), the results are unchanged, and nothing in the shipped engines
changes. Importing this module registers the engine (the simulated mode's child process
imports it by name for that).
"""
from __future__ import annotations

import weakref

import numpy as np

import engines

NAME = "test-slow-lookup"


def _slow_lookup_class(cls: type, fraction: float) -> type:
    """A subclass of the table class `cls` whose only change is a lookup that also looks up
    the first `fraction` of its batch again.

    Every other call then takes exactly the wrapped engine's path, as long as the instance is
    built as one (`slowed`): CPython specialises attribute reads for the class and layout it
    sees, and both a forwarding wrapper object and a reassigned `__class__` made `size` (a
    50,000-cycle call) count 1.15-1.25x under callgrind: false regressions in the study."""
    def lookup(self, ids, out=None):
        result = cls.lookup(self, ids, out)
        extra = int(len(ids) * fraction)
        if extra:
            cls.lookup(self, np.asarray(ids)[:extra])
        return result

    return type(f"SlowLookup{cls.__name__}", (cls,),
                {"__slots__": (), "lookup": lookup, "slowdown_fraction": fraction,
                 "__doc__": f"{cls.__name__} with {1 + fraction:g}x the lookup work."})


def slowed(table, fraction: float):
    """A copy of `table` made an instance of its class's slow-lookup subclass from the start
    (one subclass per class and fraction), sharing its state (e.g. the compiled table).

    The original is dropped. Refused for tables that clean up on deletion or that something
    already references weakly (the copy would not share that)."""
    cls = type(table)
    if hasattr(cls, "__del__") or weakref.getweakrefcount(table):
        raise ValueError(f"table: {cls.__name__} cannot be slowed down (it is tracked or "
                         f"cleaned up on deletion)")
    key = (cls, fraction)
    if key not in _SLOW_CLASSES:
        _SLOW_CLASSES[key] = _slow_lookup_class(*key)
    copy = object.__new__(_SLOW_CLASSES[key])
    for name, value in vars(table).items():        # the order the class's __init__ set them
        setattr(copy, name, value)
    return copy


_SLOW_CLASSES: dict[tuple[type, float], type] = {}


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
        return slowed(self._base.create_table(*args, **kwargs), self._fraction)

    def _create_table(self, *args, **kwargs):     # Engine's hook (create_table above skips it)
        return slowed(self._base._create_table(*args, **kwargs), self._fraction)

    def create_hash_filter(self, *args, **kwargs):
        return self._base.create_hash_filter(*args, **kwargs)

    def fused_lookup(self, tables, *args, **kwargs):     # the base's own fused path
        return self._base.fused_lookup(tables, *args, **kwargs)

    def fused_apply_gradients(self, tables, *args, **kwargs):
        return self._base.fused_apply_gradients(tables, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._base, name)


def register() -> None:
    engines.register(NAME, lambda **options: SlowLookupEngine(**options))


register()
