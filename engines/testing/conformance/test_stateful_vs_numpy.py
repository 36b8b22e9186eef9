"""Stateful cross-engine test: the same random op sequences on the numpy reference engine and on
native-cpu with 1 and 2 threads. After every step: equal size and max_update_ts, lookups and
lookup_entry within 4 ulp of numpy (storage ops are exact by construction: they copy floats),
and the two native tables bit-identical. Saves restore into the same or the other engine."""
from __future__ import annotations

import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import engines
from native_compare import assert_dumps_close, assert_floats_close

pytest.importorskip("engines.native._native_cpu")

OPTIMIZERS = sorted(engines.api.OPTIMIZERS)
SLOTS = (0, 1, 5)
# A small id pool so ops hit the same ids often: slots matter for TTL and filter thresholds.
ID_POOL = [s << 48 | k for s in SLOTS for k in (1, 2, 3, 1 << 20)] + [-7, -(1 << 62), 0]
DAY = 86400


@st.composite
def segment_specs(draw):
    opt = draw(st.sampled_from(OPTIMIZERS))
    seg = dict(dim=draw(st.integers(1, 4)), optimizer=opt,
               initializer=draw(st.sampled_from(["zeros", "ones", "constants",
                                                 "random_uniform"])),
               compressor=draw(st.sampled_from([None, "fp32", "fp16", "fixed_r8", "one_bit"])))
    if seg["initializer"] == "constants":
        seg["constant"] = draw(st.sampled_from([0.5, -2.0]))
    if seg["compressor"] == "one_bit":
        seg["step_size"] = draw(st.integers(1, 3))
    if seg["compressor"] == "fixed_r8":
        seg["r"] = draw(st.sampled_from([0.5, 4.0]))
    if opt in ("adagrad", "adadelta", "adam", "amsgrad", "momentum", "rmsprop", "rmspropv2",
               "group_adagrad") and draw(st.booleans()):
        seg["weight_decay_factor"] = 0.01
    if opt in ("adam", "amsgrad", "momentum") and draw(st.booleans()):
        seg["use_nesterov"] = True
    if opt == "ftrl" and draw(st.booleans()):
        seg["l1_regularization_strength"] = 0.01
        seg["l2_regularization_strength"] = 0.1
    if opt == "group_adagrad" and draw(st.booleans()):
        seg["l2_regularization_strength"] = 0.05
    return seg


ids_strategy = st.lists(st.sampled_from(ID_POOL), min_size=0, max_size=12).map(
    lambda x: np.array(x, np.int64))


class NativeVsNumpy(RuleBasedStateMachine):
    @initialize(segs=st.lists(segment_specs(), min_size=1, max_size=3),
                quirks=st.booleans(), seed=st.integers(0, 2 ** 64 - 1),
                fid_version=st.sampled_from([1, 2]), expire=st.sampled_from([None, 0, 1, 2]),
                filt=st.sampled_from([None, "sliding", "probabilistic", "dummy"]),
                threshold=st.integers(0, 3), fseed=st.integers(0, 5))
    def setup(self, segs, quirks, seed, fid_version, expire, filt, threshold, fseed):
        self.dir = tempfile.mkdtemp(prefix="hashlab-stateful-")
        self.saves = 0
        self.config = engines.table_config(segments=segs, expire_days=expire,
                                           slot_expire_days={5: 3} if expire is not None
                                           else None)
        self.lrs = tuple(0.05 * (k + 1) for k in range(len(segs)))
        self.table_args = dict(learning_rates=self.lrs, seed=seed, monolith_quirks=quirks,
                               fid_version=fid_version)
        self.engines = [engines.get("numpy"), engines.get("native-cpu", threads=1),
                        engines.get("native-cpu", threads=2)]
        self.tables = []
        for eng in self.engines:
            f = (None if filt is None else
                 eng.create_hash_filter(filt, capacity=300, split_num=5,
                                        occurrence_threshold=threshold,
                                        slot_occurrence_thresholds={1: threshold + 1},
                                        seed=fseed))
            self.tables.append(eng.create_table(self.config, hash_filter=f, **self.table_args))
        self.dim = self.tables[0].dim
        self.rng = np.random.default_rng(seed % 1000)

    def teardown(self):
        if hasattr(self, "dir"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def values(self, n):
        return (self.rng.standard_normal((n, self.dim)) * 2).astype(np.float32)

    def each(self, fn):
        results = []
        for t in self.tables:
            try:
                results.append(("ok", fn(t)))
            except Exception as exc:  # every engine must fail the same way
                results.append(("error", type(exc).__name__))
        kinds = {r[0] for r in results}
        assert len(kinds) == 1, results
        return results

    @rule(ids=ids_strategy, req_time=st.integers(0, 5 * DAY), add=st.booleans())
    def assign(self, ids, req_time, add):
        vals = self.values(len(ids))
        self.each(lambda t: (t.assign_add if add else t.assign)(ids, vals, req_time=req_time))

    @rule(ids=ids_strategy, dedup=st.booleans(), step=st.integers(0, 6),
          req_time=st.integers(0, 5 * DAY), own_lrs=st.booleans())
    def apply_gradients(self, ids, dedup, step, req_time, own_lrs):
        grads = self.values(len(ids))
        lrs = [0.3 / (k + 1) for k in range(len(self.lrs))] if own_lrs else None
        self.each(lambda t: t.apply_gradients(ids, grads, global_step=step, enable_dedup=dedup,
                                              req_time=req_time, learning_rates=lrs))

    @precondition(lambda self: self.saves < 4)
    @rule(source=st.integers(0, 2), nshards=st.sampled_from([-1, 1, 3]),
          restore_into=st.sampled_from(["same", "all-from-source"]))
    def save_restore(self, source, nshards, restore_into):
        self.saves += 1
        bases = [f"{self.dir}/s{self.saves}-{k}" for k in range(len(self.tables))]
        paths = [t.save(b, nshards) for t, b in zip(self.tables, bases)]
        # The two native saves are byte-identical; numpy's within the ulp bound.
        n1 = [open(p, "rb").read() for p in paths[1]]
        assert n1 == [open(p, "rb").read() for p in paths[2]]
        if restore_into == "same":
            for t, b in zip(self.tables, bases):
                t.restore(b)
        else:
            for t in self.tables:
                t.restore(bases[source])

    @rule(shard=st.integers(0, 2), limit=st.integers(1, 5), offset=st.integers(0, 8))
    def save_as_tensor(self, shard, limit, offset):
        res = self.each(lambda t: t.save_as_tensor(shard, 3, limit, offset))
        (o0, d0), (o1, d1), (o2, d2) = (r[1] for r in res)
        assert o0 == o1 == o2 and (o1, d1) == (o2, d2)
        for a, b in zip(d0, d1):
            assert_dumps_close(a, b, "save_as_tensor")

    @invariant()
    def same_state(self):
        if not hasattr(self, "tables"):
            return
        probe = np.array(ID_POOL + [12345], np.int64)
        ref, n1, n2 = self.tables
        assert ref.size() == n1.size() == n2.size()
        assert ref.max_update_ts == n1.max_update_ts == n2.max_update_ts
        e0, e1, e2 = (t.lookup_entry(probe) for t in self.tables)
        assert e1 == e2, "native thread counts disagree"
        for k, (a, b) in enumerate(zip(e0, e1)):
            assert_dumps_close(a, b, f"lookup_entry id {probe[k]}")
        l0, l1, l2 = (t.lookup(probe) for t in self.tables)
        assert l1.tobytes() == l2.tobytes()
        assert_floats_close(l0, l1, "lookup")


NativeVsNumpy.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_native_vs_numpy = NativeVsNumpy.TestCase
