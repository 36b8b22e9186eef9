"""Hypothesis state machine: native-gpu (or HASHLAB_STATEFUL_ENGINE) against the numpy reference
over random sequences of writes, lookups, dedup/no-dedup updates and save/restore. SGD with
dyadic gradients keeps every sum exact, so results must be bit-identical."""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import engines

ENGINE = os.environ.get("HASHLAB_STATEFUL_ENGINE", "native-gpu")
DIM = 3
keys = st.lists(st.integers(-6, 6) | st.sampled_from([-2**63, 2**63 - 1, 1 << 48]),
                min_size=0, max_size=16)


def _rows(draw_ints, n):
    return (np.array(draw_ints, np.float32) / 8).reshape(n, DIM)


class VersusNumpy(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        try:
            eng = engines.get(ENGINE)
        except engines.EngineUnavailable as exc:
            pytest.skip(exc.reason)
        cfg = engines.table_config(dim=DIM, initializer="random_uniform", minval=-1, maxval=1)
        self.cfg = cfg
        self.eng = eng
        self.a = eng.create_table(cfg, learning_rates=(0.5,), seed=9)
        self.b = engines.get("numpy").create_table(cfg, learning_rates=(0.5,), seed=9)
        self.tmp = tempfile.mkdtemp(prefix="stateful-")
        self.n_saves = 0

    @rule(data=st.data(), op=st.sampled_from(["assign", "assign_add"]),
          req=st.integers(0, 2**33))
    def write(self, data, op, req):
        k = np.array(data.draw(keys), np.int64)
        v = _rows(data.draw(st.lists(st.integers(-16, 16), min_size=len(k) * DIM,
                                     max_size=len(k) * DIM)), len(k))
        getattr(self.a, op)(k, v, req_time=req)
        getattr(self.b, op)(k, v, req_time=req)

    @rule(data=st.data(), dedup=st.booleans(), step=st.integers(0, 5))
    def apply(self, data, dedup, step):
        k = np.array(data.draw(keys), np.int64)
        g = _rows(data.draw(st.lists(st.integers(-16, 16), min_size=len(k) * DIM,
                                     max_size=len(k) * DIM)), len(k))
        self.a.apply_gradients(k, g, global_step=step, enable_dedup=dedup, req_time=step)
        self.b.apply_gradients(k, g, global_step=step, enable_dedup=dedup, req_time=step)

    @rule(nshards=st.integers(1, 3))
    def save_restore(self, nshards):
        self.n_saves += 1
        base = os.path.join(self.tmp, f"t{self.n_saves}")
        self.a.save(base, nshards=nshards)
        fresh = self.eng.create_table(self.cfg, learning_rates=(0.5,), seed=9)
        fresh.restore(base)
        self.a = fresh
        self.b.save(base + "ref", nshards=nshards)
        ref = engines.get("numpy").create_table(self.cfg, learning_rates=(0.5,), seed=9)
        ref.restore(base + "ref")
        self.b = ref

    @invariant()
    def same_state(self):
        if not hasattr(self, "a"):
            return
        probe = np.array(list(range(-7, 8)) + [-2**63, 2**63 - 1, 1 << 48], np.int64)
        assert self.a.size() == self.b.size()
        assert self.a.max_update_ts == self.b.max_update_ts
        np.testing.assert_array_equal(self.a.lookup(probe), self.b.lookup(probe))
        assert self.a.lookup_entry(probe) == self.b.lookup_entry(probe)


VersusNumpy.TestCase.settings = settings(max_examples=30, stateful_step_count=12,
                                         deadline=None)
TestVersusNumpy = VersusNumpy.TestCase
