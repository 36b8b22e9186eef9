"""Fixtures of the lab tests: tiny scenarios and deliberately broken test-only engines."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import engines
from engines.reference.numpy_engine import NumpyEngine, NumpyTable
from lab.scenarios import IdSpec, OpSpec, Scenario, TableDef


def tiny_storage() -> Scenario:
    """Storage ops only: every output must be bit-exact."""
    return Scenario(
        name="tiny_storage", tables=(TableDef(config={"dim": 4, "optimizer": "sgd"}),),
        ops=(OpSpec("assign_add"), OpSpec("lookup"), OpSpec("lookup_entry"), OpSpec("size")),
        prefill=40, batch_size=32, ids=IdSpec(kind="uniform", vocab=80), steps=2, warmup=0)


def tiny_training() -> Scenario:
    """Adagrad updates, lookups and a checkpoint round trip."""
    return Scenario(
        name="tiny_training",
        tables=(TableDef(config={"dim": 4, "optimizer": "adagrad"}),),
        ops=(OpSpec("apply_gradients", args={"enable_dedup": True}), OpSpec("lookup"),
             OpSpec("save"), OpSpec("restore", args={"fresh": True}), OpSpec("lookup")),
        prefill=20, batch_size=48, ids=IdSpec(kind="zipf", a=1.3, vocab=60), steps=3,
        warmup=1)


class _OneUlpTable(NumpyTable):
    def _lookup(self, ids):
        out = super()._lookup(ids)
        return np.nextafter(out, np.float32(np.inf))     # every value 1 ulp too large


class OneUlpLookupEngine(NumpyEngine):
    """Broken on purpose: lookups come back 1 ulp off."""
    name = "test-one-ulp-lookup"

    def _create_table(self, spec, learning_rates, hash_filter, seed, monolith_quirks):
        return _OneUlpTable(self, spec, learning_rates, hash_filter, seed, monolith_quirks)


class _SkippingTable(NumpyTable):
    def _apply_gradients(self, ids, grads, global_step, *rest):
        if global_step % 2 == 1:                         # odd steps are silently dropped
            return
        super()._apply_gradients(ids, grads, global_step, *rest)


class SkippingAdagradEngine(NumpyEngine):
    """Broken on purpose: apply_gradients does nothing at odd global steps."""
    name = "test-skipping-apply"

    def _create_table(self, spec, learning_rates, hash_filter, seed, monolith_quirks):
        return _SkippingTable(self, spec, learning_rates, hash_filter, seed, monolith_quirks)


NUDGE_ULP = 10


class _NudgingTable(NumpyTable):
    def _apply_gradients(self, ids, grads, *rest):
        super()._apply_gradients(ids, grads, *rest)
        rows = self._rows_of(np.unique(ids))
        w = self._emb[rows[rows >= 0]]
        for _ in range(NUDGE_ULP):                     # every updated weight 10 ulp up
            w = np.nextafter(w, np.float32(np.inf))
        self._emb[rows[rows >= 0]] = w


class NudgingEngine(NumpyEngine):
    """Diverges on purpose, by a known amount: every optimizer step leaves the updated weights
    NUDGE_ULP ulp above the reference's (as a kernel that rounds differently would)."""
    name = "test-nudging"


NudgingEngine._create_table = lambda self, spec, lrs, hf, seed, quirks: _NudgingTable(
    self, spec, lrs, hf, seed, quirks)


@pytest.fixture
def broken_engines():
    """Register the broken engines for one test; yields their names."""
    made = {OneUlpLookupEngine.name: OneUlpLookupEngine,
            SkippingAdagradEngine.name: SkippingAdagradEngine,
            NudgingEngine.name: NudgingEngine}
    for name, cls in made.items():
        engines.register(name, lambda cls=cls, **opts: cls(**opts))
    yield list(made)
    for name in made:
        engines.unregister(name)


class NoLookupEntryEngine(NumpyEngine):
    """Declares every op except lookup_entry (which the parity runner must then skip)."""
    name = "test-no-lookup-entry"
    capabilities = dataclasses.replace(NumpyEngine.capabilities,
                                       ops=NumpyEngine.capabilities.ops - {"lookup_entry"})


@pytest.fixture
def no_lookup_entry_engine():
    engines.register(NoLookupEntryEngine.name, lambda **opts: NoLookupEntryEngine(**opts))
    yield NoLookupEntryEngine.name
    engines.unregister(NoLookupEntryEngine.name)


@pytest.fixture
def storage_scenario():
    return tiny_storage()


@pytest.fixture
def training_scenario():
    return tiny_training()
