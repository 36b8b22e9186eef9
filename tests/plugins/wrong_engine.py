"""A deliberately wrong engine for the conformance plugin's own test: the numpy engine, except
that assign_add overwrites (behaves like assign). Loaded as `wrong_engine:WrongAssignAddEngine`."""
from __future__ import annotations

from engines.reference.numpy_engine import NumpyEngine, NumpyTable


class _WrongTable(NumpyTable):
    def _assign_add(self, ids, values, req_time):
        self._assign(ids, values, req_time)            # the bug: no addition


class WrongAssignAddEngine(NumpyEngine):
    name = "test-wrong-assign-add"

    def _create_table(self, spec, learning_rates, hash_filter, seed, monolith_quirks):
        return _WrongTable(self, spec, learning_rates, hash_filter, seed, monolith_quirks)
