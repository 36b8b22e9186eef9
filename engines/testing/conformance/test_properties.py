"""Hypothesis properties on random op sequences, on every engine."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engines
from engines.testing.helpers import require

pytestmark = pytest.mark.conformance_area("ops")

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

small_ids = st.lists(st.integers(-5, 5) | st.sampled_from([-2**63, 2**63 - 1, 1 << 48]),
                     min_size=0, max_size=12)


def dyadic_rows(n, dim, draw):
    """Gradients that are small multiples of 1/8: SGD sums of them are exact in f32."""
    vals = draw(st.lists(st.integers(-16, 16), min_size=n * dim, max_size=n * dim))
    return (np.array(vals, np.float32) / 8).reshape(n, dim)


@SETTINGS
@given(data=st.data())
def test_sgd_dedup_equals_no_dedup(engine, data):
    require(engine, dedup=True)
    keys = np.array(data.draw(small_ids), np.int64)
    grads = dyadic_rows(len(keys), 3, data.draw)
    cfg = engines.table_config(dim=3)
    a = engine.create_table(cfg, learning_rates=(0.5,))
    b = engine.create_table(cfg, learning_rates=(0.5,))
    a.apply_gradients(keys, grads, enable_dedup=True)
    b.apply_gradients(keys, grads, enable_dedup=False)
    probe = np.unique(keys)
    assert a.size() == b.size() == len(probe)
    np.testing.assert_array_equal(a.lookup(probe), b.lookup(probe))


@pytest.mark.conformance_area("checkpoints")
@SETTINGS
@given(data=st.data())
def test_save_restore_round_trip_is_identity(engine, data, tmp_path_factory):
    require(engine, op=("save", "restore", "lookup_entry", "save_as_tensor"), optimizer="adam")
    cfg = engines.table_config(dim=2, optimizer="adam", expire_days=10**6)   # no TTL drops
    t = engine.create_table(cfg, learning_rates=(0.01,))
    for _ in range(data.draw(st.integers(1, 4))):
        keys = np.array(data.draw(small_ids), np.int64)
        grads = dyadic_rows(len(keys), 2, data.draw)
        op = data.draw(st.sampled_from(["assign", "assign_add", "apply"]))
        req = data.draw(st.integers(0, 2**32 - 1))
        if op == "apply":
            t.apply_gradients(keys, grads, req_time=req,
                              enable_dedup=data.draw(st.booleans()))
        else:
            getattr(t, op)(keys, grads, req_time=req)
    base = str(tmp_path_factory.mktemp("rt") / "t")
    t.save(base, nshards=data.draw(st.integers(1, 3)))
    u = engine.create_table(cfg, learning_rates=(0.01,))
    u.restore(base)
    probe = np.arange(-6, 7, dtype=np.int64)
    probe = np.r_[probe, [-2**63, 2**63 - 1, 1 << 48]].astype(np.int64)
    assert u.size() == t.size()
    assert u.lookup_entry(probe) == t.lookup_entry(probe)
    # restore raises max_update_ts to the newest restored entry (core §2.9)
    from engines.protos import embedding_hash_table_pb2 as pb
    _, dumps = t.save_as_tensor(0, 1, 1000, 0)
    newest = max((pb.EntryDump.FromString(d).last_update_ts_sec for d in dumps), default=0)
    assert u.max_update_ts == newest


@SETTINGS
@given(data=st.data())
def test_lookup_never_inserts_and_matches_last_write(engine, data):
    t = engine.create_table(engines.table_config(dim=1))
    expected = {}
    for _ in range(data.draw(st.integers(1, 5))):
        keys = data.draw(small_ids)
        vals = data.draw(st.lists(st.integers(-100, 100), min_size=len(keys),
                                  max_size=len(keys)))
        t.assign(np.array(keys, np.int64), np.array(vals, np.float32).reshape(-1, 1))
        expected.update(zip(keys, vals))
        probe = np.array(data.draw(small_ids), np.int64)
        got = t.lookup(probe).ravel()
        assert got.tolist() == [float(expected.get(int(k), 0)) for k in probe]
        assert t.size() == len(expected)
