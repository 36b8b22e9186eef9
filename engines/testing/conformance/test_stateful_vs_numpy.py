"""Stateful cross-engine test: the same random op sequences on the numpy reference and on the
engine under test, drawn from what the engine declares (optimizers, initialisers, compressors,
filters, TTL, segments, quirks, dedup, checkpoint ops). After every step: equal size and
max_update_ts, lookups and lookup_entry within 4 ulp of numpy (storage ops are exact by
construction: they copy floats). Saves restore into the same or the other engine. An engine that
declares threads also runs a twin with another thread count, which must stay bit-identical."""
from __future__ import annotations

import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule, run_state_machine_as_test)

import engines
from engines.testing.compare import assert_dumps_close, assert_floats_close
from engines.testing.plugin import STATEFUL_EXAMPLES

pytestmark = pytest.mark.conformance_area("cross-engine")

SLOTS = (0, 1, 5)
# A small id pool so ops hit the same ids often: slots matter for TTL and filter thresholds.
ID_POOL = [s << 48 | k for s in SLOTS for k in (1, 2, 3, 1 << 20)] + [-7, -(1 << 62), 0]
DAY = 86400
WITH_STATE_OPTIONS = ("adagrad", "adadelta", "adam", "amsgrad", "momentum", "rmsprop",
                      "rmspropv2", "group_adagrad")


def exact_optimizers(engine) -> list[str]:
    """The declared optimizers, less those the engine lists in `known_divergences` (keys
    "adagrad" or "apply_gradients:adagrad", as the lab's parity runner reads them)."""
    diverging = {key.rpartition(":")[2] for key in getattr(engine, "known_divergences", None) or {}}
    return sorted(engine.capabilities.optimizers - diverging)


def segment_specs(caps, optimizers):
    """Segment configs the engine declares."""
    @st.composite
    def draw_segment(draw):
        opt = draw(st.sampled_from(optimizers))
        seg = dict(dim=draw(st.integers(1, 4)), optimizer=opt,
                   initializer=draw(st.sampled_from(sorted(caps.initializers))),
                   compressor=draw(st.sampled_from([None, *sorted(caps.compressors)])))
        if seg["initializer"] == "constants":
            seg["constant"] = draw(st.sampled_from([0.5, -2.0]))
        if seg["compressor"] == "one_bit":
            seg["step_size"] = draw(st.integers(1, 3))
        if seg["compressor"] == "fixed_r8":
            seg["r"] = draw(st.sampled_from([0.5, 4.0]))
        if opt in WITH_STATE_OPTIONS and draw(st.booleans()):
            seg["weight_decay_factor"] = 0.01
        if opt in ("adam", "amsgrad", "momentum") and draw(st.booleans()):
            seg["use_nesterov"] = True
        if opt == "ftrl" and draw(st.booleans()):
            seg["l1_regularization_strength"] = 0.01
            seg["l2_regularization_strength"] = 0.1
        if opt == "group_adagrad" and draw(st.booleans()):
            seg["l2_regularization_strength"] = 0.05
        return seg
    return draw_segment()


ids_strategy = st.lists(st.sampled_from(ID_POOL), min_size=0, max_size=12).map(
    lambda x: np.array(x, np.int64))


class EngineVsNumpy(RuleBasedStateMachine):
    """`engine` under test, `twin` (None, or the same engine with another thread count: it must
    stay bit-identical) and `reference` (numpy) each hold one table per example."""

    def __init__(self, engine, twin, reference):
        super().__init__()
        self.engine, self.twin, self.reference = engine, twin, reference

    @property
    def caps(self):
        return self.engine.capabilities

    def has(self, op: str) -> bool:
        return op in self.caps.ops

    @initialize(data=st.data(), seed=st.integers(0, 2 ** 64 - 1),
                fid_version=st.sampled_from([1, 2]), threshold=st.integers(0, 3),
                fseed=st.integers(0, 5))
    def setup(self, data, seed, fid_version, threshold, fseed):
        caps = self.caps
        self.dir = tempfile.mkdtemp(prefix="hashlab-stateful-")
        self.saves = 0
        segs = data.draw(st.lists(segment_specs(caps, exact_optimizers(self.engine)),
                                  min_size=1, max_size=3 if caps.multi_segment else 1),
                         label="segments")
        expire = data.draw(st.sampled_from([None, 0, 1, 2]) if caps.ttl else st.none(),
                           label="expire_days")
        filt = data.draw(st.sampled_from([None, *sorted(caps.filters)]), label="filter")
        quirks = data.draw(st.booleans() if caps.quirks else st.just(False), label="quirks")
        self.config = engines.table_config(segments=segs, expire_days=expire,
                                           slot_expire_days={5: 3} if expire is not None
                                           else None)
        self.lrs = tuple(0.05 * (k + 1) for k in range(len(segs)))
        table_args = dict(learning_rates=self.lrs, seed=seed, monolith_quirks=quirks,
                          fid_version=fid_version)
        self.tables = []
        for eng in (self.reference, self.engine, self.twin):
            if eng is None:
                continue
            f = (None if filt is None else
                 eng.create_hash_filter(filt, capacity=300, split_num=5,
                                        occurrence_threshold=threshold,
                                        slot_occurrence_thresholds={1: threshold + 1},
                                        seed=fseed))
            self.tables.append(eng.create_table(self.config, hash_filter=f, **table_args))
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
        dedup = dedup and self.caps.dedup
        lrs = [0.3 / (k + 1) for k in range(len(self.lrs))] if own_lrs else None
        self.each(lambda t: t.apply_gradients(ids, grads, global_step=step, enable_dedup=dedup,
                                              req_time=req_time, learning_rates=lrs))

    @precondition(lambda self: self.saves < 4 and self.has("save") and self.has("restore"))
    @rule(source=st.integers(0, 1), nshards=st.sampled_from([-1, 1, 3]),
          restore_into=st.sampled_from(["same", "all-from-source"]))
    def save_restore(self, source, nshards, restore_into):
        self.saves += 1
        bases = [f"{self.dir}/s{self.saves}-{k}" for k in range(len(self.tables))]
        paths = [t.save(b, nshards) for t, b in zip(self.tables, bases)]
        if self.twin is not None:              # twins write byte-identical files
            assert [open(p, "rb").read() for p in paths[1]] == \
                [open(p, "rb").read() for p in paths[2]]
        if restore_into == "same":
            for t, b in zip(self.tables, bases):
                t.restore(b)
        else:
            for t in self.tables:
                t.restore(bases[source])

    @precondition(lambda self: self.has("save_as_tensor"))
    @rule(shard=st.integers(0, 2), limit=st.integers(1, 5), offset=st.integers(0, 8))
    def save_as_tensor(self, shard, limit, offset):
        (o0, d0), *others = (r[1] for r in self.each(
            lambda t: t.save_as_tensor(shard, 3, limit, offset)))
        for o1, d1 in others:
            assert o1 == o0 and len(d1) == len(d0)
            for a, b in zip(d0, d1):
                assert_dumps_close(a, b, "save_as_tensor")
        assert len(set(map(repr, others))) <= 1, "twins disagree"

    @invariant()
    def same_state(self):
        if not hasattr(self, "tables"):
            return
        probe = np.array(ID_POOL + [12345], np.int64)
        ref, *rest = self.tables
        for t in rest:
            assert t.size() == ref.size()
            assert t.max_update_ts == ref.max_update_ts
        if self.has("lookup_entry"):
            e0, *others = (t.lookup_entry(probe) for t in self.tables)
            assert all(e == others[0] for e in others), "twins disagree"
            for k, (a, b) in enumerate(zip(e0, others[0])):
                assert_dumps_close(a, b, f"lookup_entry id {probe[k]}")
        l0, *others = (t.lookup(probe) for t in self.tables)
        assert len({o.tobytes() for o in others}) == 1, "twins disagree"
        assert_floats_close(l0, others[0], "lookup")


def test_stateful_vs_numpy(engine, engine_param, make_engine, numpy_engine, request):
    """Random op sequences on the engine and on numpy agree after every step."""
    if not exact_optimizers(engine):
        pytest.skip(f"engine {engine.name}: every declared optimizer is a known divergence")
    twin = None
    if engine.capabilities.threads:
        twin = make_engine(threads=2 if engine_param.options.get("threads") == 1 else 1)
    examples = request.config.getoption("hashlab_stateful_examples",
                                        default=STATEFUL_EXAMPLES)
    run_state_machine_as_test(lambda: EngineVsNumpy(engine, twin, numpy_engine),
                              settings=settings(
                                  max_examples=examples, stateful_step_count=25, deadline=None,
                                  suppress_health_check=[HealthCheck.too_slow,
                                                         HealthCheck.filter_too_much]))
